"""Issue 9: a changelog record the table cannot decode (another program, an older version).

An older version of the app wrote a text value for key ``a`` into the counts
changelog. With ``table_changelog_decode_errors="skip"`` a worker that
recovers the partition logs the record and leaves it out: ``a`` keeps its
count, and later events of ``a`` count on from it. Applied as it is (the bug),
``a`` would hold the bytes and its next event would fail.
"""

from collections import Counter

import detstream

app = detstream.App(
    "foreign", broker="kafka://localhost:9092", topic_partitions=2,
    processing_guarantee="exactly_once", table_changelog_decode_errors="skip",
)
words = app.topic("words", key_type=str, value_type=str, partitions=2)
counts = app.Table("counts", default=int, key_type=str, value_type=int)


@app.agent(words)
async def count(stream):
    async for word in stream:
        counts[word] += 1


#: ``a`` early and late only: between, a worker that recovers its partition has the
#: foreign record as ``a``'s latest changelog value.
WORDS = ["a"] * 5 + [f"k{i % 7}" for i in range(300)] + ["a"] * 5


def sim_scenario(sim):
    sim.topic("words", partitions=2)
    sim.producer("words", [(w, w) for w in WORDS], keyed=True, every=0.05, name="feed")
    sim.producer("foreign-counts-changelog", [('"a"', "five, I think")], keyed=True,
                 start=8.0, name="older-version")

    @sim.check
    def counts_are_exact(result):
        assert result.table("counts") == dict(Counter(WORDS))
