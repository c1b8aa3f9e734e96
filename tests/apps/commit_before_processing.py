"""A planted bug: the agent acks each event *before* processing it.

The ack lets the offset be committed while the update is still pending; a
crash in that window loses the update for good. The simulator must catch it.
"""

import asyncio
from collections import Counter

import detstream

app = detstream.App("planted", broker="kafka://localhost:9092", topic_partitions=4)
words = app.topic("words", value_type=str, partitions=4, internal=True)
counts = app.Table("counts", default=int)


@app.agent(words)
async def count(stream):
    async for event in stream.noack().events():
        event.ack()  # BUG: acked (and soon committed) before the work is done
        await asyncio.sleep(0.4)  # e.g. an enrichment call
        counts[event.value] += 1


WORDS = ["alpha", "beta", "gamma", "delta"] * 40


def sim_scenario(sim):
    sim.producer("words", [(w.encode(), w) for w in WORDS], keyed=True, every=0.05, name="feed")

    @sim.check
    def no_update_lost(result):
        expected = Counter(result.produced("words"))
        table = result.table("counts")
        low = {w: (table.get(w, 0), n) for w, n in expected.items() if table.get(w, 0) < n}
        assert not low, f"lost updates (table, input): {low}"
