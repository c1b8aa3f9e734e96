"""A poison pill under ``mode.CrashingSupervisor``: the worker crash-loops.

One order in the input makes the agent raise. With ``CrashingSupervisor`` the
app crashes, the process exits, its supervisor restarts it, and it reads the
same uncommitted record again: the partition never gets past it. Faust users
meet this in production; the simulator should show it (and the fix is the
default OneForOneSupervisor, which logs, acks and goes on).
"""

import mode

import detstream

app = detstream.App("poison", broker="kafka://localhost:9092", topic_partitions=2)
orders = app.topic("orders", value_type=str, partitions=2, internal=True)
totals = app.Table("totals", default=int)


@app.agent(orders, supervisor_strategy=mode.CrashingSupervisor)
async def total(stream):
    async for order in stream:
        if order == "poison":
            raise ValueError("cannot price a poison order")
        totals[order] += 1


ORDERS = ["tea", "cake", "tea", "poison", "cake", "tea"] * 3


def sim_scenario(sim):
    sim.producer("orders", [(o.encode(), o) for o in ORDERS], keyed=True, every=0.2, name="shop")
