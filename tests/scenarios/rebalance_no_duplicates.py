"""Faust pain point: duplicate processing after a rebalance / scale-out
(faust-streaming/faust#502, #221, robinhood/faust#115).

Faust dropped the acked-but-uncommitted offsets of revoked partitions, so the
new owner re-processed them. detstream commits on revoke while the generation
still allows it: with only graceful membership changes (join, leave, restart)
the counts must be exact — not one duplicate.
"""

from collections import Counter

import detstream

app = detstream.App("rebalance-dups", broker="kafka://localhost:9092", topic_partitions=6)
words = app.topic("words", value_type=str, partitions=6, internal=True)
counts = app.Table("counts", default=int)


@app.agent(words)
async def count(stream):
    async for word in stream:
        counts[word] += 1


WORDS = [f"w{i % 17}" for i in range(400)]


def sim_scenario(sim):
    sim.producer("words", [(w.encode(), w) for w in WORDS], keyed=True, every=0.03, name="feed")

    @sim.check
    def exact_counts(result):
        assert result.table("counts") == dict(Counter(result.produced("words")))
