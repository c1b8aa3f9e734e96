"""The conductor chooses what a commit is once, when it starts, from the processing guarantee."""

from __future__ import annotations

import asyncio

import pytest

from detstream.engine.committer import PlainCommitter
from detstream.engine.transactions import TransactionalCommitter
from sim.testing import simulate
from tests.unit.test_table_recovery import feed, word_count_app


@pytest.mark.parametrize(
    ("guarantee", "committer"),
    [("at_least_once", PlainCommitter), ("exactly_once", TransactionalCommitter)],
)
def test_the_committer_follows_the_guarantee_and_commits_the_processed_offsets(
    tmp_path, guarantee, committer
):
    async def main(cluster):
        app, counts = word_count_app(
            cluster, "w1", store="memory://", datadir=tmp_path, processing_guarantee=guarantee
        )
        before = app.conductor.committer
        await app.start()
        try:
            await asyncio.sleep(1)
            await feed(cluster, ["a", "b", "a"])
            await asyncio.sleep(5)  # past broker_commit_interval
            chosen = app.conductor.committer
            consumer = app.conductor.consumer
            committed = {tp: await consumer.committed(tp) for tp in sorted(app.conductor.assignment())
                         if tp.topic == "words"}
            return before, chosen, counts.as_dict(), committed
        finally:
            await app.stop()

    before, chosen, table, committed = simulate(main, seed=1)
    assert before is None and isinstance(chosen, committer)
    assert table == {"a": 2, "b": 1}
    assert sum(o or 0 for o in committed.values()) == 3  # every word's offset, in either protocol


class _Consumer:
    """What PlainCommitter asks of its consumer: the doubt, the generation, the commit."""

    def __init__(self) -> None:
        self.membership_in_doubt = False
        self.generation = 1
        self.commits: list[dict] = []

    async def commit(self, offsets) -> None:
        self.commits.append(dict(offsets))


class _Producer:
    failed = None

    def __init__(self) -> None:
        self.flushes = 0

    async def flush(self) -> None:
        self.flushes += 1


def test_an_at_least_once_commit_waits_while_the_membership_is_in_doubt():
    """A worker the group may have expelled unbeknown to it (no heartbeat answered in half a
    session) neither flushes its cached table writes nor commits: they would land after its
    partitions' new owner's. Held commits are told once per doubt; once a heartbeat is answered
    the next commit sends everything held."""
    from detstream._types import TP
    from detstream.engine.acks import OffsetTracker

    tp = TP("words", 0)
    tracker = OffsetTracker()
    tracker.delivered_batch(tp, [0, 1])
    tracker.acked(tp, 0)
    tracker.acked(tp, 1)
    consumer, producer, tables, held = _Consumer(), _Producer(), [], []
    committer = PlainCommitter(
        tracker=tracker, consumer=consumer, producer=producer,
        flush_tables=lambda: tables.append("flushed"), log=None, on_doubt=lambda: held.append(1),
    )

    async def commits():
        consumer.membership_in_doubt = True
        first, second = await committer.commit(), await committer.commit()
        assert (tables, producer.flushes, consumer.commits, held) == ([], 0, [], [1])
        consumer.membership_in_doubt = False
        return first, second, await committer.commit()

    assert asyncio.run(commits()) == (False, False, True)
    assert tables == ["flushed"] and producer.flushes == 1 and consumer.commits == [{tp: 2}]
