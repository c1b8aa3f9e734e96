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
