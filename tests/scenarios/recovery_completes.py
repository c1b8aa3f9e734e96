"""Faust pain point: table recovery hangs ("No event received for active tp")
(robinhood/faust#218, #147; faust-streaming/faust#47, #176).

Thousands of keys in the changelog, workers crashing and restarting: every
recovery must finish and the agents must resume; the run's settle phase
fails loudly (a liveness violation with the lagging partition) instead of
hanging if one does not.
"""

from collections import Counter

import detstream

app = detstream.App("recovery", broker="kafka://localhost:9092", topic_partitions=4)
events = app.topic("events", value_type=str, partitions=4, internal=True)
seen = app.Table("seen", default=int)


@app.agent(events)
async def track(stream):
    async for key in stream:
        seen[key] += 1


KEYS = [f"user-{i}" for i in range(3000)]


def sim_scenario(sim):
    sim.producer("events", [(k.encode(), k) for k in KEYS], keyed=True, every=0.002, name="feed")

    @sim.check
    def every_key_recovered(result):
        table = result.table("seen")
        assert set(table) == set(Counter(result.produced("events")))
