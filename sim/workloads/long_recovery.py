"""Long table recoveries and busy standbys: a changelog many fetches long, every write in it.

A counter over 600 keys (16 of them hot), with the changelog write
cache off (``table_changelog_cache_size=0``: every write is its own
changelog record, several per key per fetch) and small fetches
(``broker_max_poll_records=40``). So recovering a partition takes dozens of
fetches, and a standby applies batches that hold several values of one key.
A worker that takes partitions over (a crash, a rebalance) must replay
every record of that span, in order: a recovery that stops early, starts
late or skips a record, or a standby that keeps a stale value, leaves a
count off, and with exactly-once every count must equal the input's.
A short session timeout (8 s) moves a crashed worker's partitions while the
others still hold their standby copies, so takeovers promote standbys.
"""

from collections import Counter

import detstream

app = detstream.App(
    "long-recovery", broker="kafka://localhost:9092", topic_partitions=8,
    processing_guarantee="exactly_once", table_standby_replicas=1,
    table_changelog_cache_size=0, broker_max_poll_records=40,
    broker_session_timeout=8.0, broker_heartbeat_interval=1.0, broker_rebalance_timeout=8.0,
)
hits = app.topic("hits", value_type=str, partitions=8, internal=True)
counts = app.Table("counts", default=int)

KEYS = [f"page-{i}" for i in range(600)]
#: every other hit goes to one of 16 hot pages, so fetched batches hold several writes of a key.
HITS = [KEYS[(i // 2) % 16] if i % 2 == 0 else KEYS[(i * 7) % len(KEYS)] for i in range(3000)]


@app.agent(hits)
async def count(stream):
    async for page in stream:
        counts[page] += 1


def sim_scenario(sim):
    sim.producer("hits", [(h.encode(), h) for h in HITS], keyed=True, every=0.004, name="feed")

    @sim.check
    def counts_equal_input(result):
        expected = Counter(result.produced("hits"))
        table = result.table("counts")
        wrong = {k: (table.get(k, 0), n) for k, n in expected.items() if table.get(k, 0) != n}
        assert not wrong, f"{len(wrong)} counts differ from the input (table, input), e.g. " \
            f"{dict(list(wrong.items())[:5])}"
