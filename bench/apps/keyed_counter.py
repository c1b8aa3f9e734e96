"""A keyed counter over many partitions: the app bench/sim_scale.py runs with many workers.

``SCALE_PARTITIONS`` (default 1000) partitions of input, a table counting
per key; the scenario feeds keyed records for the run's duration.
"""

import os

import detstream

PARTITIONS = int(os.environ.get("SCALE_PARTITIONS", "1000"))
#: the scenario's feed: this many keyed records, one every FEED_EVERY virtual seconds.
RECORDS = 4 * PARTITIONS
FEED_EVERY = 0.005

app = detstream.App("scale", broker="kafka://localhost:9092", topic_partitions=PARTITIONS,
                    table_standby_replicas=0)
clicks = app.topic("clicks", key_type=str, value_type=int, partitions=PARTITIONS)
counts = app.Table("counts", default=int, key_type=str, value_type=int)


@app.agent(clicks)
async def count(stream):
    async for key, value in stream.items():
        counts[key] += value


def sim_scenario(sim):
    keys = [f"k{i}" for i in range(RECORDS)]
    sim.topic("clicks", partitions=PARTITIONS)
    sim.producer("clicks", [(key, 1) for key in keys], keyed=True, every=FEED_EVERY, name="feed")
