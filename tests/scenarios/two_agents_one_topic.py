"""No false alarm: two agents read one topic (Faust's streams guide: each gets every event).

Both agents count per key in a table of their own; one awaits a little per
event, so the two streams start the same records at different times. The
worker's first start of a record is its ``deliver`` line, the other
stream's a ``deliver-shared`` one: the checks of processing order,
recovery and fencing hold for both, and neither table may lose or double
a count under exactly-once.
"""

import asyncio
from collections import Counter

import detstream

app = detstream.App("two-agents-one-topic", broker="kafka://localhost:9092",
                    topic_partitions=4, processing_guarantee="exactly_once")
clicks = app.topic("clicks", key_type=str, value_type=int, partitions=4)
fast_counts = app.Table("fast-counts", default=int, key_type=str, value_type=int)
slow_counts = app.Table("slow-counts", default=int, key_type=str, value_type=int)


@app.agent(clicks)
async def count_fast(stream):
    async for key, value in stream.items():
        fast_counts[key] += value


@app.agent(clicks)
async def count_slow(stream):
    async for key, value in stream.items():
        await asyncio.sleep(0.001)
        slow_counts[key] += value


KEYS = [f"k{i % 13}" for i in range(300)]


def sim_scenario(sim):
    sim.topic("clicks", partitions=4)
    sim.producer("clicks", [(key, 1) for key in KEYS], keyed=True, every=0.01, name="feed")

    @sim.check
    def both_tables_count_every_click(result):
        expected = dict(Counter(KEYS))
        assert result.table("fast-counts") == expected
        assert result.table("slow-counts") == expected
