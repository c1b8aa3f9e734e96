"""Exactly-once commits: consumer offsets and the records their processing produced, atomically.

With ``processing_guarantee='exactly_once'`` the app has one transactional
producer (``App.transactional_id``) whose transaction is always open, and its
consumer reads ``read_committed``. A commit (every ``broker_commit_interval``,
on revoke, on stop) is:

1. *quiesce*: streams start no new event, and the commit waits until every
   event already started is acked. A transaction must hold exactly the
   output of the offsets it commits: the output of an event in progress
   would be committed without its offset and produced again when the event
   is redone. (Faust committed whatever was acked and so duplicated such
   output; Kafka Streams gets this for free by processing one record at a
   time between commits.) Events waiting in stream buffers are not waited
   for: they start after the commit. An event still unfinished after the
   bound (a stuck agent) makes the app abort the transaction, drop its
   partitions and crash, so that the group gives them to a worker that works.
2. take the acked offsets; for a partition with nothing in flight, the
   consumer's position (past transaction markers), so a transactional input
   is not left one offset behind forever;
3. send the tables' cached changelog records (``changelog_cache``), flush,
   ``send_offsets_to_transaction`` with the consumer's group metadata,
   ``commit_transaction``, begin the next transaction; resume delivery.

If the commit fails because the group no longer accepts this member's offsets
(a rebalance replaced it: KIP-447 zombie fencing), the transaction is
aborted: its records and offsets never become visible, and the worker drops
its partitions (their tables too) for the next owner to redo the work from
the last committed offsets. It never commits offsets outside a transaction.
A fenced producer (another instance took the transactional id) crashes the
app: it is the zombie.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from detstream.errors import CommitFailedError

if TYPE_CHECKING:
    from detstream._types import TP

    from .conductor import Conductor


class TransactionalCommitter:
    """The conductor's commit under exactly-once."""

    def __init__(self, conductor: Conductor) -> None:
        self.conductor = conductor
        self.host = conductor.host
        #: the commit loop, a revoke and the stop may all want to commit: one at a time.
        self._lock = asyncio.Lock()

    async def commit(self) -> bool:
        """Commit the open transaction with the offsets it covers; False if it was aborted.

        Counted in the conductor's stats (``/metrics``) when it had something
        to commit; the latency includes the wait for events in progress.
        """
        stats = self.conductor.stats
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            done = await self._commit()
        except Exception:
            stats.commit_failed()
            raise
        if done is False:
            stats.commit_failed()
        elif done:
            stats.committed(loop.time() - began)
        return done is not False

    async def _commit(self) -> bool | None:
        """True: committed; False: aborted; None: nothing to commit."""
        conductor = self.conductor
        async with self._lock:
            consumer = conductor.consumer
            if consumer is None:
                return None
            conductor.hold_starts()
            try:
                if not await self._quiesce():
                    await self._abandon("an agent did not finish its event in time to commit")
                    return False
                offsets = await self._offsets()
                self.host.tables.flush_changelogs()  # the cached table writes join this transaction
                producer = self.host.producer
                if not offsets and not producer.in_transaction:
                    return None
                sensors = conductor.sensors
                state = sensors.on_commit_initiated(consumer) if sensors.enabled else None
                try:
                    await producer.commit_transaction(offsets, consumer.group_metadata())
                except CommitFailedError as exc:
                    self.host.log.warning(
                        "transaction aborted, its offsets were refused (%s): the partitions' "
                        "next owner redoes the work", exc,
                    )
                    conductor.fenced(exc)
                    return False
                except Exception:
                    conductor.lose_partitions()
                    raise
                conductor.tracker.committed(offsets)
                if state is not None:
                    sensors.on_commit_completed(consumer, state)
                    if sensors.offsets_watched:
                        sensors.on_tp_commit(offsets)
                return True
            finally:
                conductor.release_starts()

    async def commit_on_release(self, *, idle: bool = True) -> None:
        """Commit from a rebalance callback or the stop, which must not raise.

        ``idle`` False: some event of the partitions being given up is still
        running (the wait for it timed out), so the transaction holds part of
        its output: abort instead of committing it.
        """
        try:
            if idle:
                await self.commit()
            else:
                async with self._lock:
                    await self._abandon("events still running when their partitions were given up")
        except Exception as exc:
            self.host.log.error("exactly-once commit failed: %r; the app is crashing", exc)
            self.host.tracer.record("engine-error", error=type(exc).__name__)
            self.conductor.lose_partitions()
            await self.host.crash(exc)

    async def _abandon(self, reason: str) -> None:
        """A stuck agent: abort the transaction, drop every partition, crash the app.

        The stuck event's output so far is in the transaction without its
        offset, so it must not commit; and if the event ever goes on, its
        output would join a later transaction. Crashing lets the group give
        the partitions to a worker that works.
        """
        self.host.log.error("aborting the transaction: %s; dropping the partitions", reason)
        self.host.tracer.record("txn-abandoned", reason=reason)
        await self.host.producer.abort_transaction(RuntimeError(reason))
        self.conductor.lose_partitions()
        if not self.host.crashed:
            await self.host.crash(RuntimeError(f"exactly-once: {reason}"))

    async def _quiesce(self) -> bool:
        """Wait until every started event of an assigned partition is acked; False on timeout."""
        conductor = self.conductor
        conf = self.host.conf
        bound = min(
            0.95 * float(conf.broker_session_timeout), 0.5 * float(conf.producer_transaction_timeout)
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while any(conductor.unfinished_in(tp) > 0 for tp in conductor.active_sources()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await conductor.wait_for_progress(remaining)
        return True

    async def _offsets(self) -> dict[TP, int]:
        conductor = self.conductor
        consumer = conductor.consumer
        assert consumer is not None
        tracker = conductor.tracker
        for tp in sorted(conductor.active_sources()):
            position = await consumer.position(tp)
            # Checked after the await: a batch the fetch loop took meanwhile (positions
            # moved past records it holds) marks its partitions undelivered.
            if tp in conductor.assignment() and tp not in conductor.undelivered:
                if not tracker.in_flight(tp):
                    tracker.advance(tp, position)
        return tracker.to_commit()
