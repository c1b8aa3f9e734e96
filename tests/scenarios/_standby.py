"""The app of the standby-takeover scenarios, built per variant (store, standby replicas).

Words counted per key on 4 partitions by 2 workers; the scenario files kill
one worker and check that the table is exact after the other takes over.
"""

from collections import Counter

import detstream

WORDS = [f"k{i % 31}" for i in range(1000)]


def build(*, replicas: int, store: str):
    app = detstream.App(
        "standby", broker="kafka://localhost:9092", store=store, topic_partitions=4,
        table_standby_replicas=replicas,
    )
    words = app.topic("words", value_type=str, partitions=4, internal=True)
    counts = app.Table("counts", default=int)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    def sim_scenario(sim):
        sim.producer("words", [(w.encode(), w) for w in WORDS], keyed=True, every=0.02, name="feed")

        @sim.check
        def no_count_lost(result):
            expected = Counter(result.produced("words"))
            table = result.table("counts")
            low = {w: (table.get(w, 0), n) for w, n in expected.items() if table.get(w, 0) < n}
            assert not low, f"lost updates (table, input): {low}"
            if not result.crashes:
                assert table == dict(expected)

    return app, sim_scenario
