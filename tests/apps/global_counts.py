"""A GlobalTable on RocksDB that every worker reads whole, under worker crashes.

Each key is counted by the worker owning its source partition; every worker
follows the whole changelog. A killed worker must restart on its data
directory (its RocksDB files closed by the crash, not left locked) and read
only what it does not have yet.
"""

import json
from collections import Counter

import detstream

app = detstream.App(
    "global-counts", broker="kafka://localhost:9092", store="rocksdb://", topic_partitions=4,
    processing_guarantee="exactly_once",
)
events = app.topic("events", value_type=str, partitions=4, internal=True)
seen = app.GlobalTable("seen", default=int)


@app.agent(events)
async def count(stream):
    async for key in stream:
        seen[key] += 1


KEYS = [f"k{i % 13}" for i in range(300)]


def sim_scenario(sim):
    sim.producer("events", [(k.encode(), k) for k in KEYS], keyed=True, every=0.05, name="feed")

    @sim.check
    def changelog_counts_equal_input(result):
        folded = {}
        for record in result.records("global-counts-seen-changelog"):
            key = json.loads(record.key)
            if record.value is None:
                folded.pop(key, None)
            else:
                folded[key] = json.loads(record.value)
        assert folded == dict(Counter(result.produced("events")))
