"""Faust pain point: consumers silently stall ("Stream stopped processing",
"Has not committed TP at all") — faust-streaming/faust#175, #640, robinhood/faust#458.

An agent blocks forever on one poison value. A real worker would look alive
while one partition stops moving. The simulator must *report* it: the run's
liveness check fails naming the stuck partition and its lag.
"""

import asyncio

import detstream

app = detstream.App("stall", broker="kafka://localhost:9092", topic_partitions=2)
jobs = app.topic("jobs", value_type=str, partitions=2, internal=True)


@app.agent(jobs)
async def work(stream):
    async for job in stream:
        if job == "poison":
            await asyncio.Event().wait()  # waits for something that never happens


def sim_scenario(sim):
    items = [(b"a", "ok-1"), (b"a", "poison"), (b"a", "ok-2"), (b"b", "ok-3")]
    sim.producer("jobs", items, keyed=True, every=0.5, name="feed")
