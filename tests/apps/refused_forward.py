"""Output forwarded without awaiting it, refused by the broker for a while: nothing may be lost.

As ``refused_output.py``, but the agent forwards its receipts (``send_soon``:
the agent does not wait for the ack) and the refusal comes from the leader
(the receipts topic's ``max.message.bytes``), so it arrives asynchronously,
at any point relative to the worker's commits. Each refused receipt must
fail its order's event before a commit can pass it; at_least_once then
redoes the order after the worker restarts.
"""

import asyncio

import detstream

#: virtual time at which the upstream incident ends.
INCIDENT_END = 9.0

app = detstream.App(
    "refused-forward", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="at_least_once", broker_commit_interval=0.5,
)
orders = app.topic("orders", value_type=str, partitions=4, internal=True)
receipts = app.topic("receipts", key_type=str, value_type=str, internal=True,
                     config={"max.message.bytes": "10000"})


def note_for(order: str) -> str:
    """The upstream's note: one order in three gets a 20 kB one during the incident."""
    bloated = asyncio.get_running_loop().time() < INCIDENT_END and int(order.split("-")[1]) % 3 == 0
    return "n" * (20_000 if bloated else 8)


@app.agent(orders)
async def receipt(stream):
    async for order in stream:
        receipts.send_soon(key=order, value=f"{order}:{note_for(order)}")


ORDERS = [f"order-{i}" for i in range(100)]


def sim_scenario(sim):
    sim.producer("orders", [(o.encode(), o) for o in ORDERS], keyed=True, every=0.1, name="shop")

    @sim.check
    def every_order_has_a_receipt(result):
        receipted = {r.key.decode() for r in result.records("receipts")}
        missing = sorted(set(result.produced("orders")) - receipted)
        assert not missing, f"{len(missing)} orders without a receipt, e.g. {missing[:5]}"
