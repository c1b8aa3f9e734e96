"""The conductor chooses what a commit is once, when it starts, from the processing guarantee."""

from __future__ import annotations

import asyncio

import pytest

from detstream._types import RecordMetadata
from detstream.engine.committer import PlainCommitter
from detstream.engine.producer import ProducerBuffer
from detstream.engine.transactions import TransactionalCommitter
from detstream.errors import MembershipInDoubtError
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

    async def flush(self, unless=None, poll=1.0) -> bool:
        self.flushes += 1
        return True


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


class _UnackedClient:
    """A producer client whose sends are acknowledged once ``acked`` is set."""

    def __init__(self) -> None:
        self.acked = asyncio.Event()

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic, *, key, value, partition=None, timestamp=None, headers=()):
        await self.acked.wait()
        return RecordMetadata(topic, 0, 0, 0.0)


def _stuck_commit(doubt_for: float):
    """A commit whose flush is stuck; the membership goes in doubt 0.5 s in, for ``doubt_for`` s,
    then the writes are acknowledged 5 s in. What the commit did, and when it ended."""
    from detstream._types import TP
    from detstream.engine.acks import OffsetTracker

    tp = TP("words", 0)
    tracker = OffsetTracker()
    tracker.delivered_batch(tp, [0])
    tracker.acked(tp, 0)
    consumer, client = _Consumer(), _UnackedClient()

    async def main(cluster):
        producer = ProducerBuffer(client)
        producer.send_soon("counts-changelog", key=b"k", value=b"1")  # the event's table write
        committer = PlainCommitter(tracker=tracker, consumer=consumer, producer=producer,
                                   flush_tables=lambda: None, log=None, doubt_poll=1.0)
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, setattr, consumer, "membership_in_doubt", True)
        loop.call_later(0.5 + doubt_for, setattr, consumer, "membership_in_doubt", False)
        loop.call_later(5.0, client.acked.set)
        try:
            done = await committer.commit()
        except MembershipInDoubtError:
            return "crashed", loop.time(), consumer.commits
        return done, loop.time(), consumer.commits

    return simulate(main)


def test_a_commit_whose_flush_is_unacknowledged_when_the_doubt_holds_crashes_the_app():
    """At least once, writes still in flight when the group may expel the member would land after
    the new owner's (a host cut off from the network): the commit raises, at the second
    look in doubt (1 s and 2 s in), so that the process ends and takes them with it."""
    assert _stuck_commit(doubt_for=60.0) == ("crashed", 2.0, [])


def test_a_doubt_gone_by_the_next_look_lets_the_commit_finish():
    """A woken paused process sees its doubt once, then its heartbeat is answered: no crash."""
    from detstream._types import TP

    assert _stuck_commit(doubt_for=0.8) == (True, 5.0, [{TP("words", 0): 1}])
