"""An agent that starts a task of its own which outlives the App's stop.

The program's own tasks are its business: ``detstream worker`` exits after
the stop and they die with the process. The simulator kills them there too
(trace ``exit-killed``) and does not judge them; only tasks of the runtime
still running after a stop fail ``stopped-app-idle``.
"""

import asyncio

import detstream

app = detstream.App("lingering-task", broker="kafka://localhost:9092", topic_partitions=2)
events = app.topic("events", value_type=str, partitions=2)


async def _remember(value):
    await asyncio.sleep(10_000)  # far past any stop


@app.agent(events)
async def note(stream):
    async for value in stream:
        asyncio.ensure_future(_remember(value))


def sim_scenario(sim):
    sim.producer("events", ["a", "b", "c"], every=0.5, name="feed")
