"""A table keyed by raw message keys: a topic without ``key_type``, so keys are bytes.

After a crash the table partitions are rebuilt from the changelog on other
workers; the keys must come back as bytes (``b"k1"``, not ``"k1"``), or the
recovered table differs from the live one and later counts start again at 1.
"""

from collections import Counter

import detstream

app = detstream.App("bytes-keys", broker="kafka://localhost:9092", topic_partitions=4)
clicks = app.topic("clicks", partitions=4)  # no key_type: event keys arrive as bytes
counts = app.Table("counts", default=int)

KEYS = [f"k{i % 7}".encode() for i in range(200)] + [b"\xff\x00raw"] * 5


@app.agent(clicks)
async def count(stream):
    async for key, _ in stream.items():
        counts[key] += 1


def sim_scenario(sim):
    sim.topic("clicks", partitions=4)
    sim.producer("clicks", [(key, 1) for key in KEYS], keyed=True, every=0.05, name="feed")

    @sim.check
    def keys_stay_bytes(result):
        table = result.table("counts")
        assert set(table) == set(KEYS), sorted(table, key=repr)
        expected = Counter(KEYS)
        for key, value in table.items():
            assert value >= expected[key], (key, value)
            if not result.crashes:
                assert value == expected[key], (key, value)
