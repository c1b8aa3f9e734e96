"""Faust pain point: wrong or lost counts after kill -9 with RocksDB tables
(robinhood/faust#340, faust-streaming/faust#333).

A worker is killed mid-stream and restarted on the same data directory. Its
RocksDB partitions must resume from the stored changelog offset without
losing an update (at-least-once may count twice, never less).
"""

from collections import Counter

import detstream

app = detstream.App("kill9", broker="kafka://localhost:9092", store="rocksdb://", topic_partitions=4)
words = app.topic("words", value_type=str, partitions=4, internal=True)
counts = app.Table("counts", default=int)


@app.agent(words)
async def count(stream):
    async for word in stream:
        counts[word] += 1


WORDS = [f"k{i % 23}" for i in range(500)]


def sim_scenario(sim):
    sim.producer("words", [(w.encode(), w) for w in WORDS], keyed=True, every=0.03, name="feed")

    @sim.check
    def no_count_lost(result):
        expected = Counter(result.produced("words"))
        table = result.table("counts")
        low = {w: (table.get(w, 0), n) for w, n in expected.items() if table.get(w, 0) < n}
        assert not low, f"lost updates (table, input): {low}"
        if not result.crashes:
            assert table == dict(expected)
