"""What a commit is: the seam between the conductor and its two commit protocols.

The conductor decides *when* to commit (every ``broker_commit_interval``, on
revoke, on stop); a ``Committer``, chosen once when the conductor starts,
decides *what* a commit is. At-least-once it is :class:`PlainCommitter`
(flush what the acked events produced, then commit their offsets);
exactly-once it is ``transactions.TransactionalCommitter``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from detstream.errors import CommitFailedError, FencedInstanceIdError, MembershipInDoubtError
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant

from .acks import OffsetTracker
from .stats import ConsumerStats

if TYPE_CHECKING:
    from detstream._types import TP
    from detstream.transport.base import Consumer

    from .host import SensorHooks
    from .producer import ProducerBuffer


#: re-opens committing before the flush: offsets go to the group while the output of their
#: events may still be in the producer's buffer, and a crash then loses that output.
COMMIT_BEFORE_FLUSH = register_mutant(
    "commit-before-flush",
    "the at-least-once commit sends the offsets before the producer flush, not after it",
)

#: commits while the group may have expelled this member unbeknown to it: a zombie's cached
#: table writes then land after its partitions' new owner's, and counts go back.
COMMIT_IN_DOUBT = register_mutant(
    "commit-in-doubt",
    "the at-least-once commit flushes table writes while the membership is in doubt",
)

#: re-opens a commit's flush held while the member is cut off (its host's network down): the
#: group expels it, the partitions' new owner writes, and the held writes land on top when the
#: network heals (short_session_counter with a host cut off for 11 s).
FLUSH_WAITS_IN_DOUBT = register_mutant(
    "flush-waits-in-doubt",
    "an at-least-once commit goes on waiting for its flush after its membership went in doubt",
)


class Log(Protocol):
    """The part of a logger a committer uses (the app's ``mode`` logger, or ``logging``'s)."""

    def error(self, msg: str, /, *args: object) -> None: ...

    def warning(self, msg: str, /, *args: object) -> None: ...


class Committer(Protocol):
    async def commit(self) -> bool:
        """Commit the work done so far; False if the commit was refused (fenced, failed send)."""

    async def commit_on_release(self, *, idle: bool) -> None:
        """Commit before giving partitions up (revoke, stop); never raises.

        ``idle`` False: an event of those partitions is still running (the
        wait for it timed out).
        """


class PlainCommitter:
    """At-least-once: flush produced records, then commit every acked offset.

    Not after a send an event made was refused (``ProducerBuffer.failed``):
    that event is acked, but its output is missing, so no offset may pass
    it; the app is crashing (``send_failures``) and the event is redone
    from the last commit. Checked after the flush, which settles every
    send of the events whose offsets were taken.

    Not while the group may have expelled this member without its knowing
    (``Consumer.membership_in_doubt``: a paused process, a blocked loop, a
    cut from the group coordinator): the table writes cached since the last
    commit stay cached, and no offset is sent, until a heartbeat is
    answered (the next commit flushes them) or the consumer learns it was
    expelled (they are dropped with the partitions, which their next owner
    redoes from the last commit). A zombie's flush would land in changelogs
    the partitions' new owner writes too, after its writes, and a count
    would go back. Outputs other than changelogs are still sent meanwhile:
    at least once allows them twice.
    """

    def __init__(
        self,
        *,
        tracker: OffsetTracker,
        consumer: Consumer,
        producer: ProducerBuffer,
        flush_tables: Callable[[], object],
        log: Log,
        on_fenced: Callable[[CommitFailedError], object] = lambda error: None,
        on_doubt: Callable[[], object] = lambda: None,
        stats: ConsumerStats | None = None,
        sensors: SensorHooks | None = None,
        doubt_poll: float = 1.0,
    ) -> None:
        self.tracker = tracker
        self.consumer = consumer
        self.producer = producer
        self.flush_tables = flush_tables
        self.log = log
        #: the group refused our offsets (we were expelled, or a rebalance moved on without
        #: us, or another process took our group instance): stop processing the partitions,
        #: which are another member's now.
        self.on_fenced = on_fenced
        #: commits began to be held back: the membership is in doubt (once per such time).
        self.on_doubt = on_doubt
        #: the last commit was held back.
        self.held = False
        #: commits and their latency (``/metrics``).
        self.stats = stats if stats is not None else ConsumerStats()
        #: told when a commit with offsets begins and when it succeeded.
        self.sensors = sensors
        #: seconds between looks at the doubt while a commit's flush waits (the heartbeat interval).
        self.doubt_poll = doubt_poll

    async def commit(self) -> bool:
        if self.in_doubt():
            if not self.held:
                self.held = True
                self.on_doubt()
            return False
        self.held = False
        offsets = self.tracker.to_commit()
        self.flush_tables()  # also with no offset to commit: timers write tables
        if not offsets:
            return True
        if mutant_on(COMMIT_BEFORE_FLUSH):
            return await self._commit_then_flush(offsets)
        loop = asyncio.get_running_loop()
        began = loop.time()
        sensors = self.sensors
        state = None
        if sensors is not None and sensors.enabled:
            state = sensors.on_commit_initiated(self.consumer)
        try:
            done = await self._flush_and_commit(offsets)
        except Exception:
            self.stats.commit_failed()
            raise
        if done:
            self.stats.committed(loop.time() - began)
            if state is not None and sensors is not None:
                sensors.on_commit_completed(self.consumer, state)
                if sensors.offsets_watched:
                    sensors.on_tp_commit(offsets)
        else:
            self.stats.commit_failed()
        return done

    def in_doubt(self) -> bool:
        """Whether commits, and the table writes they flush, wait: the membership is in doubt."""
        return self.consumer.membership_in_doubt and not mutant_on(COMMIT_IN_DOUBT)

    async def _flush_and_commit(self, offsets: dict[TP, int]) -> bool:
        producer = self.producer
        generation = self.consumer.generation
        await self._flush_unless_in_doubt()
        if producer.failed is not None:
            taken = ", ".join(f"{tp.topic}[{tp.partition}]@{o}" for tp, o in sorted(offsets.items()))
            self.log.error("not committing %s: %s", taken, producer.failed)
            return False
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:
            if self.consumer.generation > generation and not isinstance(exc, FencedInstanceIdError):
                # We joined a newer generation while this commit was on its way: the group
                # refused offsets of the one before, and what we hold now was assigned since.
                # Giving that up would leave it unprocessed: nobody rebalances it. (Between
                # generations, -1, we were expelled or are rejoining: that is fencing.)
                self.log.warning("commit of an earlier generation rejected: %s", exc)
                return False
            self.log.warning(
                "commit rejected: %s; giving the partitions up until the group assigns them "
                "again (their next owner redoes the uncommitted work)", exc,
            )
            self.on_fenced(exc)
            return False
        self.tracker.committed(offsets)
        return True

    async def _flush_unless_in_doubt(self) -> None:
        """The commit's flush, unless the membership goes in doubt before it is acknowledged.

        Then ``MembershipInDoubtError``: the app crashes, and the process's
        end aborts its connections, so that no write of the flush lands after
        the partitions' next owner wrote (writes held by a network cut of the
        worker's host, which also holds its heartbeats; they would land when
        it heals). The doubt must hold at two looks in a row: a process
        woken from a pause finds its acknowledgements and its heartbeat's
        answer in its socket, and is not caught by its first look.
        """
        in_doubt_before = False

        def still_in_doubt() -> bool:
            nonlocal in_doubt_before
            now = self.in_doubt() and not mutant_on(FLUSH_WAITS_IN_DOUBT)
            before, in_doubt_before = in_doubt_before, now
            return before and now

        if not await self.producer.flush(unless=still_in_doubt, poll=self.doubt_poll):
            raise MembershipInDoubtError(
                "changelog and output writes of a commit still unacknowledged while no "
                "heartbeat was answered for half of broker_session_timeout: the group may give "
                "the partitions to another worker, and a write landing after its writes would "
                "undo them; the app stops so that the writes die with its connections (their "
                "events are redone from the last commit)"
            )

    async def _commit_then_flush(self, offsets: dict[TP, int]) -> bool:
        """The ``commit-before-flush`` mutant's commit (never in normal runs)."""
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError:
            return False
        self.tracker.committed(offsets)
        await self.producer.flush()
        return True

    async def commit_on_release(self, *, idle: bool) -> None:
        """Commit what was acked; the events still running are redone by the next owner."""
        await self.commit()
