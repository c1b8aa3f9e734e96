"""The conductor: fetches from the broker, routes to streams, commits offsets.

It is the app's rebalance listener. On revoke it stops handing out messages
of the revoked partitions, waits for the events already being processed,
commits what was acked and flushes the producer, so the next owner starts
exactly after the last processed event (Faust dropped this bookkeeping and
reprocessed; we commit while the generation still allows it).

On assign it *opens* partitions only once they are safe: a record of a newly
assigned partition reaches an agent only after the listener finished and
every table partition (and standby promotion) it needs is recovered. Kafka
clients may deliver records of a new assignment before or while the listener
runs (aiokafka installs the assignment and keeps fetching while it awaits the
listener); such records are dropped, and the partition is sought back to its
committed offset when it opens. Opening happens only where the fetch loop
holds no fetched batch, so no record fetched before the open is delivered
after it.

Exactly-once (``processing_guarantee='exactly_once'``) changes only what a
commit is; see ``transactions.TransactionalCommitter``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from detstream._types import TP, ConsumerRecord
from detstream.errors import CommitFailedError, FencedInstanceIdError, MembershipInDoubtError
from detstream.events import Message
from detstream.futures import current_task_cancelling
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant
from detstream.stopping import DONE, IN_DOUBT, TIMED_OUT, finish_unless_in_doubt

from .acks import OffsetTracker
from .committer import Committer, PlainCommitter
from .lease import PartitionLease
from .listener_guard import GuardedListener
from .stats import ConsumerStats
from .transactions import TransactionalCommitter

#: re-opens issue 9's takeover bug: records reach agents before their tables are recovered.
DELIVERY_BEFORE_RECOVERY = register_mutant(
    "delivery-before-recovery",
    "a newly assigned partition's records reach agents before its tables are recovered",
)

#: re-opens the zoo's rpc_ask find: a partition opened while the fetch loop dropped records
#: of it (during the offset lookup) is never sought back, and those records are skipped.
OPEN_OVER_DROPPED = register_mutant(
    "open-over-dropped",
    "opening partitions forgets records the fetch loop dropped during the start-offset lookup",
)

#: the revoked partitions' tables are dropped before the commit that flushes their writes:
#: their offsets are committed and the cached table writes never reach the changelog.
REVOKE_DROPS_TABLE_WRITES = register_mutant(
    "revoke-drops-table-writes",
    "on revoke, tables give their partitions up before the commit flushes their cached writes",
)

#: re-opens the zombie that keeps processing: a member whose commit the group refused goes
#: on with its partitions (and writes their changelogs) after their new owner took them.
FENCED_KEEPS_PROCESSING = register_mutant(
    "fenced-keeps-processing",
    "a member whose offsets the group refused goes on processing its partitions",
)

#: re-opens what ``--driver aiokafka`` found (standby_takeover, chaos seed 3117): a member the
#: group expelled flushes its cached table writes at the revoke aiokafka calls before rejoining,
#: into changelogs whose new owner recovered from them and wrote since.
EXPELLED_REVOKE_FLUSHES = register_mutant(
    "expelled-revoke-flushes",
    "an expelled member's revoke flushes its cached table writes and commits, as a live one's",
)

#: a worker whose group instance another process took (static membership: FENCED_INSTANCE_ID)
#: goes on with what it holds, as after any refused commit, instead of stopping for good.
INSTANCE_FENCING_IGNORED = register_mutant(
    "instance-fencing-ignored",
    "a worker fenced as a static group instance keeps its partitions and goes on processing",
)

#: re-opens what the sim driver's stop found (take_batches, chaos seed 33): an assignment whose
#: join completed while the consumer stopped is taken, and records are lost.
ASSIGNED_WHILE_STOPPING = register_mutant(
    "assigned-while-stopping-taken",
    "the conductor takes an assignment the listener brings while the consumer stops",
)

#: re-opens what short_session_counter found (chaos seed 128): a worker stopping while cut off
#: from its group waits for its final commit until the stop budget, then leaves the group with
#: its changelog writes still pending, and a retry lands after the partitions' new owner wrote.
STOP_WAITS_IN_DOUBT = register_mutant(
    "stop-waits-in-doubt",
    "a stopping member waits for its final commit while its membership is in doubt",
)

#: exactly-once: seconds without input after which an open transaction holding work is
#: committed (Kafka Streams' commit interval under exactly-once is 100 ms).
IDLE_COMMIT_AFTER = 0.1

#: seconds between looks for new topics an ``app.topic(pattern=...)`` matches. Kafka's
#: clients refresh metadata every 5 minutes; a new topic should be picked up sooner.
PATTERN_REFRESH = 30.0

if TYPE_CHECKING:
    from detstream.transport.base import Consumer, IsolationLevel

    from .buffer import SubscriberBuffer
    from .host import EngineHost


class Conductor:
    """Owns the app's group consumer and the path from fetch to ack to commit."""

    fetch_timeout = 1.0

    def __init__(self, host: EngineHost) -> None:
        #: the application this conductor runs (see ``host.EngineHost``: all it may reach).
        self.host = host
        #: where steps go; kept, as a delivery records one (the host keeps it bound).
        self.tracer = host.tracer
        #: told of each record delivered and acked, when a sensor is registered.
        self.sensors = host.sensors
        self.tracker = OffsetTracker()
        #: records received, commits, rebalances: what ``/metrics`` reads besides the state here.
        self.stats = ConsumerStats()
        self.consumer: Consumer | None = None
        #: partitions of the assignment in force (what revocation and commits are about).
        self._active: set[TP] = set()
        #: assigned partitions whose records may reach streams (tables recovered); rebound, not
        #: mutated, so a snapshot stays what it was.
        self._ready: frozenset[TP] = frozenset()
        #: assigned source partitions to open once the listener is done and tables recovered.
        self._opening: set[TP] = set()
        #: partitions that had fetched records dropped while not open: their consumer
        #: position is past records nobody processed, so opening seeks them back.
        self._skipped: set[TP] = set()
        #: False while the fetch loop holds a fetched batch (opening must wait for it).
        self._between_batches = True
        self._generation = -1
        #: the last generation whose assignment this worker took (listener done, recovery
        #: started): behind the group's while a rebalance is being taken.
        self.taken_generation = -1
        #: the last generation ``on_rebalance_complete`` was sent for.
        self._completed = -1
        #: the lease of each partition delivered so far (its messages report to it).
        self._leases: dict[TP, PartitionLease] = {}
        self._idle = asyncio.Event()
        #: ``_wait_idle`` calls waiting on ``_idle`` now (only they need it set).
        self.idle_waits = 0
        self._tasks: list[asyncio.Task[None]] = []
        #: clear while an exactly-once commit quiesces: no new event may start.
        self.starting = asyncio.Event()
        self.starting.set()
        #: the same as ``not starting.is_set()`` (the lease's flag, read per event without a call).
        self.quiescing = False
        #: set at every ack and assignment change (what a quiescing commit waits for).
        self.progress = asyncio.Event()
        #: exactly-once: set when a fetch found no input while a transaction holds work, so
        #: the commit loop commits now, not at the end of its interval (see ``_commit_loop``).
        self._commit_soon = asyncio.Event()
        #: set once the first assignment's tables are recovered and its partitions open:
        #: the app is operational (Faust starts tasks and timers then).
        self.operational = asyncio.Event()
        #: ``wait_for_progress`` calls waiting now (only they need ``progress`` set per ack).
        self.progress_waits = 0
        #: partitions of the batch in hand whose records are not all delivered yet.
        self.undelivered: set[TP] = set()
        #: what a commit is; chosen at start (the guarantee may be configured late).
        self.committer: Committer | None = None
        #: the committer, if it is the exactly-once one (recovery reads markers then).
        self.transactions: TransactionalCommitter | None = None
        #: existing topics that an ``app.topic(pattern=...)`` matches (refreshed periodically).
        self.pattern_matches: set[str] = set()
        #: what the consumer calls on rebalances: this conductor, a failure crashing the app.
        self.listener = GuardedListener(self)
        #: ``stop`` began: an assignment the consumer's listener brings now is not taken.
        self.stopping = False
        #: another process took this worker's group instance: the app's crash (for good).
        self._fenced_crash: asyncio.Task[None] | None = None
        #: a rebalance began (revoke, or a first assignment) and has not ended yet.
        self._in_rebalance = False
        #: the generation the rebalance in progress took (None: not taken yet).
        self._rebalance_generation: int | None = None

    # -- lifecycle ------------------------------------------------------------
    @property
    def tasks(self) -> list[asyncio.Task[None]]:
        """The engine loops running now (fetch, commit, patterns)."""
        return list(self._tasks)

    def subscribed_topics(self) -> set[str]:
        topics = {name for topic in self.host.acking_topics() for name in topic.topics}
        topics |= self.pattern_matches
        return topics | self.host.tables.changelog_topics | {self.host.leader_topic_name}

    def _pattern_topics(self) -> list[Any]:
        return [t for t in self.host.acking_topics() if t.pattern is not None]

    async def _match_patterns(self) -> bool:
        """Look up the broker's topics for ``app.topic(pattern=...)``; True if the set changed."""
        patterned = self._pattern_topics()
        if not patterned:
            return False
        names = await self.host.admin.list_topics()
        matched = {n for n in names if any(t.matches(n) for t in patterned)}
        changed = matched != self.pattern_matches
        self.pattern_matches = matched
        return changed

    async def _pattern_loop(self) -> None:
        """Subscribe to topics created later that a pattern matches (a metadata refresh)."""
        while True:
            await asyncio.sleep(PATTERN_REFRESH)
            if await self._match_patterns():
                self.host.log.info("pattern subscription now covers %s", sorted(self.pattern_matches))
                self.resubscribe()

    async def start(self) -> None:
        host = self.host
        exactly_once = host.exactly_once
        isolation: IsolationLevel = "read_committed" if exactly_once else "read_uncommitted"
        instance = host.conf.consumer_group_instance_id
        if instance is None:  # (a transport of your own need not know the keyword)
            self.consumer = host.transport.create_consumer(
                client_id=host.client_name, group_id=host.conf.id, isolation_level=isolation,
            )
        else:  # static membership: see docs/production.md
            self.consumer = host.transport.create_consumer(
                client_id=host.client_name, group_id=host.conf.id, isolation_level=isolation,
                group_instance_id=instance,
            )
        if exactly_once:
            self.committer = self.transactions = TransactionalCommitter(self)
        else:
            self.committer = PlainCommitter(
                tracker=self.tracker, consumer=self.consumer, producer=host.producer,
                flush_tables=host.tables.flush_changelogs, log=host.log,
                on_fenced=self.fenced, on_doubt=self._commit_held, stats=self.stats,
                sensors=self.sensors, doubt_poll=float(host.conf.broker_heartbeat_interval),
            )
            host.tables.changelogs_held = self.committer.in_doubt
        self._request_standbys()
        conf = host.conf  # where this worker's web views answer: app.router sends requests there
        self.consumer.advertise_url(conf.canonical_url if conf.web_enabled else None)
        await self._match_patterns()
        self.consumer.subscribe(sorted(self.subscribed_topics()), self.listener)
        await self.consumer.start()
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._guard(self._fetch_loop), name=f"{self.host.client_name}-fetch"),
            loop.create_task(self._guard(self._commit_loop), name=f"{self.host.client_name}-commit"),
        ]
        if self._pattern_topics():
            self._tasks.append(loop.create_task(
                self._guard(self._pattern_loop), name=f"{self.host.client_name}-patterns"
            ))

    def resubscribe(self) -> None:
        """Topics were added at runtime (e.g. by ``group_by``): rejoin the group."""
        if self.consumer is not None:
            self._request_standbys()
            self.consumer.subscribe(sorted(self.subscribed_topics()), self.listener)

    def _request_standbys(self) -> None:
        """Ask the group leader for ``table_standby_replicas`` copies of our changelogs."""
        assert self.consumer is not None
        replicas = int(self.host.conf.table_standby_replicas)
        self.consumer.request_standbys(sorted(self.host.tables.changelog_topics), replicas)

    async def stop(self) -> None:
        """Graceful stop: finish events in hand, commit, then leave the group."""
        self.stopping = True
        for task in self._tasks[:1]:
            await _cancel(task)
        await self.host.tables.standbys.stop()
        self._active = set()
        self._assign_leases()
        self._ready = frozenset()
        idle = await self._wait_idle(set(self._leases))
        if not await self._final_commit(idle) and not self.host.exactly_once:
            # at least once nothing fences a pending changelog write: none may land after
            # the group is left (exactly-once, the producer's stop aborts the transaction)
            await self.host.give_up_stopping()
        for task in self._tasks[1:]:
            await _cancel(task)
        self._tasks = []
        if self.consumer is not None:
            await self.consumer.stop()

    async def _final_commit(self, idle: bool) -> bool:
        """The stop's commit, within the stop budget and while the membership is not in doubt.

        False if it was given up: the broker did not answer within the budget,
        or, at least once, no heartbeat was answered for half a session (the
        process is cut off from its group coordinator, and the group may soon
        expel it: ``_stop_in_doubt``). Its work is then redone by the
        partitions' next owner, as after a crash. A commit that failed is not
        given up: the broker answered, and the rest of the stop (aborting the
        open transaction, leaving the group) can talk to it.
        """
        budget = self.host.stop_budget()  # None: unbounded (tests running an App in-process)
        poll = float(self.host.conf.broker_heartbeat_interval)
        try:
            how = await finish_unless_in_doubt(
                self._commit_on_release(idle=idle), budget, self._stop_in_doubt, poll
            )
        except MembershipInDoubtError as exc:  # its flush saw the doubt before the stop did
            if mutant_on(STOP_WAITS_IN_DOUBT):
                self.host.log.error("final commit failed while stopping: %r", exc)
                return True
            how = IN_DOUBT
        except Exception as exc:  # stopping must finish even when the broker is failing
            self.host.log.error("final commit failed while stopping: %r", exc)
            return True
        if how == TIMED_OUT:
            self.tracer.record("stop-gave-up", step="final-commit")
            self.host.log.error(
                "final commit not done within %.1fs while stopping (is the broker reachable?): "
                "given up; the partitions' next owner redoes the uncommitted work", budget,
            )
        elif how == IN_DOUBT:
            self.tracer.record("stop-gave-up", step="final-commit", reason="membership-in-doubt")
            self.host.log.error(
                "final commit given up while stopping: no heartbeat answered for half the "
                "session timeout (is the group coordinator reachable?), so the group may give "
                "the partitions to another member at any moment; nothing more is written, and "
                "their next owner redoes the uncommitted work",
            )
        return how == DONE

    def _stop_in_doubt(self) -> bool:
        """At least once, whether the stop's final commit is given up for the doubt.

        Exactly-once needs no haste: the group refuses a zombie's transactional
        offsets and its transaction aborts, while a commit given up would leave
        the transaction open until the broker's timeout, holding up its
        read_committed readers.
        """
        consumer = self.consumer
        return (not self.host.exactly_once and consumer is not None
                and consumer.membership_in_doubt and not mutant_on(STOP_WAITS_IN_DOUBT))

    async def _guard(self, engine_loop: Callable[[], Awaitable[None]]) -> None:
        """Run an engine loop; if it fails, crash the app loudly instead of dying unseen.

        Takes the loop's function, not a coroutine: a task cancelled before it
        first runs (an app stopped right after start) then leaves no coroutine
        that was never awaited.
        """
        try:
            await engine_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.tracer.record("engine-error", error=type(exc).__name__)
            self.host.log.exception("consumer loop failed: %r; the app is crashing", exc)
            await self.host.crash(exc)

    # -- fetching -------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        assert self.consumer is not None
        tables = self.host.tables
        while True:
            await self._open_ready()
            # exactly-once with a transaction holding work: a short fetch, so that running
            # out of input commits it soon (``_commit_loop``)
            soon = self.transactions is not None and self._transaction_holds_work()
            try:
                batch = await self.consumer.getmany(IDLE_COMMIT_AFTER if soon else self.fetch_timeout)
            except FencedInstanceIdError as exc:
                self.fenced(exc)
                if not mutant_on(INSTANCE_FENCING_IGNORED):
                    return  # the app is crashing
                await asyncio.sleep(self.fetch_timeout)
                continue
            if not batch and soon:
                self._commit_soon.set()
            self._between_batches = False
            generation = self.consumer.generation
            self.undelivered = set(batch)
            filled: list[SubscriberBuffer[Any]] = []
            changelogs = tables.changelog_topics if batch else frozenset()
            for tp in sorted(batch):
                records = batch[tp]
                if tp.topic in changelogs:
                    tables.apply(self.consumer, tp, records)
                else:
                    delivered = self._deliver(tp, records, generation)
                    if delivered:
                        filled += delivered
                        if self.sensors.enabled:
                            self._note_full(tp, delivered)
                self.undelivered.discard(tp)
            if filled and self.sensors.offsets_watched:
                self._note_log_ends(batch)
            if self.transactions is not None and tables.recovering:
                await tables.finish_at_positions(self.consumer)  # markers end changelogs
            self._between_batches = True
            for buffer in filled:  # back-pressure: no next fetch while a stream is behind
                await buffer.wait_for_room()

    def _note_log_ends(self, batch: dict[TP, list[ConsumerRecord]]) -> None:
        """Tell the sensors keeping offsets the log ends the fetch saw (no broker request)."""
        assert self.consumer is not None
        ends = self.consumer.known_offsets(sorted(tp for tp in batch if tp in self._ready))
        for tp, (_, end) in sorted(ends.items()):
            self.sensors.track_tp_end_offset(tp, end)

    def _note_full(self, tp: TP, buffers: list[SubscriberBuffer[Any]]) -> None:
        """Faust's ``on_topic_buffer_full``: ``tp``'s batch left a buffer at its bound, so
        the next fetch waits for that stream (once per batch, however many buffers)."""
        if any(buffer.at_bound() for buffer in buffers):
            self.sensors.on_topic_buffer_full(tp)

    def _deliver(
        self, tp: TP, records: list[ConsumerRecord], generation: int
    ) -> list[SubscriberBuffer[Any]]:
        """Hand a fetched batch of ``tp`` to its streams' buffers, all in this one step.

        No await between the check that ``tp`` is open in ``generation`` and
        the last record going in: a batch is delivered whole under the
        assignment it was fetched in, or dropped whole (see ``buffer``).
        """
        buffers = self.host.subscriber_queues(tp.topic)
        if not buffers or not records:
            return []
        if tp not in self._ready or generation != self._generation:
            self._skipped.add(tp)
            return []
        refcount = len(buffers)
        lease = self._leases.get(tp)
        if lease is None:
            lease = self._leases[tp] = PartitionLease(
                tp, self, self.tracker, self.tracer, self.sensors, self._generation,
                assigned=tp in self._active, quiescing=self.quiescing,
            )
        messages = [
            # by position: a record's seven fields (topic, partition, offset, timestamp, key,
            # value, headers: Message's first seven), then generation, refcount, acked,
            # started, lease, tp
            Message(*record, generation, refcount, False, False, lease, tp)
            for record in records
        ]
        self.tracker.delivered_batch(tp, [record.offset for record in records])
        received = self.stats.received
        received[tp] = received.get(tp, 0) + len(messages)
        sensors = self.sensors
        if sensors.enabled:
            for message in messages:
                sensors.on_message_in(tp, message.offset, message)
        for buffer in buffers:
            buffer.put_batch(messages)
        return buffers

    async def _open_ready(self) -> None:
        """Open the partitions waiting for their tables: their records may reach streams now.

        Partitions that had records dropped while closed are sought back to
        where a new owner starts (the committed offset). The lookup awaits;
        the open itself happens in one step, and only between fetched
        batches, so that no record fetched before it is delivered after it.
        """
        consumer = self.consumer
        recovering = self.host.tables.recovering and not mutant_on(DELIVERY_BEFORE_RECOVERY)
        if not self._opening or recovering or consumer is None:
            return
        generation, tps = self._generation, set(self._opening)
        starts = await consumer.start_offsets(sorted(tps & self._skipped))
        if generation != self._generation or not tps <= self._opening:
            return  # a rebalance replaced this assignment meanwhile
        if not self._between_batches:
            return  # the fetch loop opens them itself once its batch is done
        if (tps & self._skipped) - starts.keys() and not mutant_on(OPEN_OVER_DROPPED):
            # records of a partition were dropped while we looked (the fetch loop ran
            # meanwhile): opening now would step over them; its next turn opens them
            return
        for tp, offset in sorted(starts.items()):
            consumer.seek(tp, offset)
        self._opening -= tps
        self._skipped -= tps
        self._ready = self._ready | tps
        consumer.resume(*tps)
        self.tracer.record("opened", tps=sorted(str(tp) for tp in tps), sought=len(starts))
        await self._rebalance_complete(generation)

    async def _rebalance_complete(self, generation: int) -> None:
        """Faust's ``on_rebalance_complete``: once per generation, when nothing is left to open.

        A failing handler is logged: a print of a table after a rebalance must
        not stop the fetch loop it runs in.
        """
        if self._opening or generation != self._generation or self._completed == generation:
            return
        self._completed = generation
        self.operational.set()
        try:
            await self.host.on_rebalance_complete.send()
        except Exception:
            self.host.log.exception("an on_rebalance_complete handler failed")
        self._rebalance_ended(generation)

    # -- the app's rebalance hooks (Faust's consumer calls them where these are called) ----
    def _rebalance_began(self) -> None:
        """A rebalance starts: at a revoke (every rejoin has one), or at an assignment that
        came without one. A rebalance that never completed is simply replaced."""
        self._in_rebalance = True
        self._rebalance_generation = None
        self.host.on_rebalance_start()

    def _rebalance_returned(self, generation: int) -> None:
        """The listener took the assignment of ``generation`` (tables may still recover)."""
        self._rebalance_generation = generation
        self.host.on_rebalance_return()

    def _rebalance_ended(self, generation: int) -> None:
        """``generation``'s partitions are open: the rebalance that took it is over."""
        if not self._in_rebalance or self._rebalance_generation != generation:
            return
        self._in_rebalance = False
        self.host.on_rebalance_end()

    # -- the sensors' assignment hooks: the driver calls them on the group leader -------
    def on_assignment_start(self, assignor: Any) -> Any:
        sensors = self.sensors
        return sensors.on_assignment_start(assignor) if sensors.enabled else None

    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        if state is not None and self.sensors.enabled:
            self.sensors.on_assignment_completed(assignor, state)

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        if state is not None and self.sensors.enabled:
            self.sensors.on_assignment_error(assignor, state, exc)

    # -- the leases' owner (``lease.LeaseOwner``) ------------------------------------------
    def hold_starts(self) -> None:
        """An exactly-once commit quiesces: fresh messages wait (``may_start``) until released."""
        self._set_quiescing(True)
        self.starting.clear()

    def release_starts(self) -> None:
        self._set_quiescing(False)
        self.starting.set()

    def _set_quiescing(self, quiescing: bool) -> None:
        self.quiescing = quiescing
        for lease in self._leases.values():
            lease.quiescing = quiescing

    async def may_start(self, message: Message) -> None:
        """Return when a stream may start ``message``: not while an exactly-once commit quiesces.

        A message another stream started already may go on (the commit waits
        for it); only fresh ones wait, so the commit never waits for a queue.
        """
        if not message.started and not self.starting.is_set():
            await self.starting.wait()

    def wake_idle(self) -> None:
        self._idle.set()

    def wake_progress(self) -> None:
        self.progress.set()

    def _assign_leases(self) -> None:
        """Every lease learns the assignment in force: the generation, and whether its
        partition is in it (what makes its messages current)."""
        generation, active = self._generation, self._active
        for tp, lease in self._leases.items():
            lease.generation = generation
            lease.assigned = tp in active

    def _forget_unfinished(self, tps: set[TP]) -> None:
        """The partitions were given up: their started messages no longer hold up a commit."""
        for tp in tps:
            lease = self._leases.get(tp)
            if lease is not None:
                lease.unfinished = 0

    def unfinished_in(self, tp: TP) -> int:
        """Messages of ``tp`` a stream started that are not fully acked yet."""
        lease = self._leases.get(tp)
        return 0 if lease is None else lease.unfinished

    async def wait_for_progress(self, timeout: float) -> None:
        """Return at the next ack or assignment change, or after ``timeout`` seconds."""
        self.progress.clear()
        self.progress_waits += 1
        try:
            await asyncio.wait_for(self.progress.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self.progress_waits -= 1

    # -- committing -------------------------------------------------------------
    async def _commit_loop(self) -> None:
        """Commit every ``broker_commit_interval``; exactly-once, also when the input ran out.

        Under exactly-once, what this worker wrote in a transaction is visible
        to read_committed readers (the next agent of a ``group_by``, its own
        repartition topic included) only once the transaction commits: a
        pipeline of several stages would wait a commit interval per stage
        even with nothing else to do. So while the transaction holds records
        or offsets the fetch loop waits at most ``IDLE_COMMIT_AFTER`` for
        input, and a fetch that comes back empty commits the transaction
        then (Kafka Streams shortens its commit interval to 100 ms under
        exactly-once for the same reason). Under load the interval is the only
        trigger.
        """
        interval = float(self.host.conf.broker_commit_interval)
        if self.transactions is None:
            while True:
                await asyncio.sleep(interval)
                await self.commit()
        soon = self._commit_soon
        while True:
            soon.clear()
            try:
                await asyncio.wait_for(soon.wait(), interval)
            except asyncio.TimeoutError:
                pass
            await self.commit()

    def _commit_held(self) -> None:
        """At-least-once, commits wait from now: the group may have expelled us (``PlainCommitter``)."""
        self.tracer.record("commit-held", reason="membership-in-doubt")
        self.host.log.warning(
            "not committing: no heartbeat answered for more than half of "
            "broker_session_timeout (%ss); the group may have expelled this worker "
            "(a paused process, a blocked event loop, a cut from the group coordinator). "
            "Table writes stay cached until a heartbeat is answered",
            self.host.conf.broker_session_timeout,
        )

    def _transaction_holds_work(self) -> bool:
        """Whether the open transaction has records, or acked offsets wait for a commit."""
        return self.host.producer.in_transaction or bool(self.tracker.to_commit())

    async def commit(self) -> bool:
        """Commit the work done so far (see ``committer``); False if fenced or refused."""
        return await self.committer.commit() if self.committer is not None else True

    async def _commit_on_release(self, *, idle: bool) -> None:
        if self.committer is not None:  # else never started: nothing to commit
            await self.committer.commit_on_release(idle=idle)

    async def _wait_idle(self, tps: set[TP]) -> bool:
        """Wait for events in hand on ``tps`` to finish, time-boxed.

        An agent stuck on one event must not hang a rebalance or a shutdown
        (Faust time-boxes these at 95% of the session timeout too): after the
        bound the stuck partitions are named and left uncommitted, so their
        next owner processes the event again.
        """
        bound = 0.95 * float(self.host.conf.broker_session_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        leases = self._leases
        while busy := sorted(str(tp) for tp in tps if tp in leases and leases[tp].processing):
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.tracer.record("wait-idle-timeout", tps=busy)
                self.host.log.error(
                    "events on %s still processing after %.1fs; giving up on them "
                    "(an agent is stuck: its partitions will be processed again by their next owner)",
                    ", ".join(busy), bound,
                )
                return False
            self._idle.clear()
            self.idle_waits += 1
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except asyncio.TimeoutError:
                pass
            finally:
                self.idle_waits -= 1
        return True

    # -- rebalance listener -------------------------------------------------------
    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if revoked and self._expelled():
            await self._partitions_lost(revoked)
            return
        self._rebalance_began()
        self.stats.rebalancing = True
        self._active -= revoked
        self._assign_leases()
        self._ready = self._ready - revoked
        self._opening -= revoked
        self.progress.set()
        idle = await self._wait_idle(revoked)
        if mutant_on(REVOKE_DROPS_TABLE_WRITES):
            self.host.tables.on_revoked(revoked)  # the dirty keys go before the commit flushes them
        await self._commit_on_release(idle=idle)
        self.tracker.forget(revoked)
        self._forget_unfinished(revoked)
        self.host.tables.on_revoked(revoked)
        if revoked:
            self.tracer.record("revoked", tps=sorted(str(tp) for tp in revoked))
        await self.host.on_partitions_revoked.send(set(revoked))

    def _expelled(self) -> bool:
        """At-least-once, a revoke after the group expelled us: the partitions are lost.

        Under exactly-once the revoke's commit is a transaction the group
        refuses (its TxnOffsetCommit names the member), so what it flushed
        is aborted with it; nothing needs to be skipped there.
        """
        consumer = self.consumer
        return (self.transactions is None and consumer is not None and consumer.expelled
                and not mutant_on(EXPELLED_REVOKE_FLUSHES))

    async def _partitions_lost(self, lost: set[TP]) -> None:
        """The group expelled this member (its session expired, or a rebalance went on without
        it), and aiokafka revokes before rejoining: Kafka's ``onPartitionsLost``.

        The partitions are another member's already, which recovered their
        tables from the changelogs: the table writes cached here since the
        last commit must not be flushed there (they would overwrite newer
        values), and no offset is committed. The partitions are lost as
        after a refused commit (``lose_partitions``): their new owner redoes
        the uncommitted work. The app's ``on_partitions_revoked`` signal is
        still sent, as Java's default ``onPartitionsLost`` calls the revoke
        callback.
        """
        self._rebalance_began()
        self.tracer.record("expelled", tps=sorted(str(tp) for tp in lost))
        self.lose_partitions()
        await self.host.on_partitions_revoked.send(set(lost))

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        """Take a new assignment: recover its tables, then open its source partitions.

        Everything before the first await is one step: whatever the consumer
        fetched or fetches meanwhile, no record of the assignment reaches an
        agent until ``_open_ready`` opens its partition.
        """
        if self.stopping and not mutant_on(ASSIGNED_WHILE_STOPPING):  # a join completed while stopping
            self.tracer.record("assigned-while-stopping", tps=sorted(str(tp) for tp in assigned))
            return
        consumer = self.consumer
        assert consumer is not None
        if not self._in_rebalance:  # a driver that assigns without a revoke first
            self._rebalance_began()
        generation = self._generation = consumer.generation
        self._active = set(assigned)
        self._assign_leases()
        self._ready = frozenset()
        changelogs = self.host.tables.changelog_topics  # (made per call: once, not per partition)
        sources = {tp for tp in assigned if tp.topic not in changelogs}
        self._opening = set()
        consumer.pause(*sources)
        standbys = consumer.standby_assignment()
        extra = {"standbys": sorted(str(tp) for tp in standbys)} if standbys else {}
        self.tracer.record(
            "assigned", generation=generation, tps=sorted(str(tp) for tp in assigned), **extra
        )
        if mutant_on(DELIVERY_BEFORE_RECOVERY):
            self._opening = sources  # opened by the fetch loop whatever recovery is doing
        await self.host.tables.on_assigned(consumer, assigned, standbys)
        await self.host.on_partitions_assigned.send(set(assigned))
        self.tracer.record("taken", generation=generation)
        self.taken_generation = generation
        self._rebalance_returned(generation)
        self.stats.rebalances += 1
        if self._active == assigned:  # not lost meanwhile (a fenced commit)
            self.stats.rebalancing = False
        if generation == self._generation and self._active == assigned:
            self._opening = sources - self._ready
            await self._open_ready()
            await self._rebalance_complete(generation)  # nothing was left to open

    def uncommitted(self) -> int:
        """Messages delivered or acked since the last commit (lost from memory by a crash)."""
        return sum(self.tracker.in_flight(tp) for tp in self._active) + len(self.tracker.to_commit())

    def assignment(self) -> set[TP]:
        return set(self._active)

    def source_partitions(self) -> set[TP]:
        """Assigned partitions of topics agents read: neither changelogs nor the leader topic."""
        skip = self.host.tables.changelog_topics | {self.host.leader_topic_name}
        return {tp for tp in self._active if tp.topic not in skip}

    def consumer_offsets(self) -> dict[TP, tuple[int, int]]:
        """(position, log end) of the assigned source partitions, as the consumer knows them.

        No broker request: positions and the log ends the last fetch
        responses reported (a partition not fetched yet is left out). Lag is
        the difference; ``/metrics`` reads it at every scrape.
        """
        consumer = self.consumer
        if consumer is None:
            return {}
        return consumer.known_offsets(sorted(self.source_partitions()))

    def active_sources(self) -> set[TP]:
        """Open partitions whose records go to streams (not changelogs, not the leader topic).

        Only open ones: a partition still waiting for its tables may have a
        consumer position past records that were dropped, not processed.
        """
        return {tp for tp in self._ready if self.host.subscriber_queues(tp.topic)}

    def fenced(self, error: CommitFailedError | None = None) -> None:
        """The group refused our offsets: the partitions are another member's now; give them up.

        We were expelled (a zombie whose session expired while the process ran
        on) or a rebalance moved on without us. A zombie that went on
        processing would write its stale table values into changelogs their
        new owner recovered from. Traced as ``commit-refused`` (the sim's
        ``no-delivery-after-fenced`` check holds the worker to it).

        A ``FencedInstanceIdError`` (from a commit or a fetch) says more:
        another process joined the group with this worker's
        ``consumer_group_instance_id`` and has its place. The consumer can
        neither fetch nor commit again, and rejoining would take the instance
        back from a live process: the partitions are given up at once and the
        app crashes with the error (``detstream worker`` exits 1), as Kafka
        Streams shuts its thread down.
        """
        if isinstance(error, FencedInstanceIdError):
            self._instance_fenced(error)
            return
        self.tracer.record("commit-refused")
        if not mutant_on(FENCED_KEEPS_PROCESSING):
            self.lose_partitions()

    def _instance_fenced(self, error: FencedInstanceIdError) -> None:
        if mutant_on(INSTANCE_FENCING_IGNORED):
            return
        self.lose_partitions()
        if self._fenced_crash is not None or self.stopping:
            return
        self.host.log.error("%s: the app stops (its partitions stay with the other process)", error)
        self._fenced_crash = asyncio.ensure_future(self._crash_fenced(error))

    async def _crash_fenced(self, error: FencedInstanceIdError) -> None:
        if not self.host.crashed:
            await self.host.crash(error)

    def lose_partitions(self) -> None:
        """Stop processing every partition without committing: their next owner redoes the work.

        Exactly-once, after an aborted transaction: its records and offsets
        are gone, so neither this worker's in-memory table state nor its
        positions may be used again. At-least-once, after the group refused a
        commit: the partitions are another member's now (this one was
        expelled, a zombie), and a zombie that went on processing them would
        write its stale table values to their changelogs. The partitions stay lost until the
        rebalance the failed commit announced assigns them again (and
        recovery rebuilds their tables).
        """
        lost = set(self._active)
        self.stats.rebalancing = True  # the partitions come back only through a rebalance
        self._active = set()
        self._assign_leases()
        self._ready = frozenset()
        self._opening = set()
        self.progress.set()
        self.tracker.forget(lost)
        self._forget_unfinished(lost)
        self.host.tables.on_revoked(lost)
        if lost:
            self.tracer.record("lost", tps=sorted(str(tp) for tp in lost))


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it; a cancellation of the *caller* still propagates."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if current_task_cancelling():
            raise
