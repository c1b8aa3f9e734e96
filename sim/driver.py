"""The ``sim://`` transport: detstream's clients talking to a SimCluster.

Each request pays a latency drawn from the cluster's seeded network stream
(``sim.network``: plus delay and drop faults on the process's link);
per-partition order is kept as Kafka's idempotent producer keeps it. The
consumer runs the group protocol in a background task, as aiokafka does, and
calls the engine's rebalance listener around every generation
(``sim.group_member``). The producers
(plain, idempotent and transactional) live in ``sim.producer``; a
``read_committed`` consumer sees what Kafka's does (``sim.transactions``).

Clients handle broker failures as aiokafka does (``sim.kafka_errors``): a
fetch skips partitions whose leader (as the consumer's metadata has it) does
not answer and refreshes its metadata after ``retry_backoff``; group
requests (join, sync, heartbeat, commit, offset fetch) go to the group's
coordinator broker and are retried while it is down or has moved. A fetch
lost by a drop fault returns nothing until the request timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import random
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from detstream import mutants
from detstream._types import TP, ConsumerRecord
from detstream.errors import CommitFailedError, FencedInstanceIdError
from detstream.transport.base import GroupMetadata, IsolationLevel, RebalanceListener

from .admin import SimAdmin
from .cluster import ReadInterest, SimCluster
from .group_member import GroupMember
from .kafka_errors import ConsumerStoppedError, RetriableError, TopicAuthorizationFailedError
from .metadata import ClientMetadata
from .network import LinkConditions
from .producer import MAX_REQUEST_SIZE, Link, SimProducer, SimTransactionalProducer
from .trace import Trace

#: a fetch in flight when its partition was sought is delivered all the same (aiokafka drops it).
STALE_FETCH_AFTER_SEEK = mutants.register(
    "stale-fetch-after-seek",
    "records of a fetch in flight while its partition was sought are returned, from the old position",
)

__all__ = [
    "Link", "SimAdmin", "SimConsumer", "SimProducer", "SimTransactionalProducer", "SimTransport",
    "current_cluster", "standalone_cluster",
]


#: The cluster of the run in progress; set by the runner for its workers.
current_cluster: contextvars.ContextVar[SimCluster | None] = contextvars.ContextVar(
    "detstream_sim_cluster", default=None
)
_standalone: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SimCluster] = (
    weakref.WeakKeyDictionary()
)


def standalone_cluster() -> SimCluster:
    """A cluster for apps using ``sim://`` outside ``detstream sim`` (one per loop)."""
    loop = asyncio.get_running_loop()
    cluster = _standalone.get(loop)
    if cluster is None:
        cluster = SimCluster(Trace(loop.time), rng=random.Random(0))
        _standalone[loop] = cluster
    return cluster


class SimTransport:
    """Transport over a SimCluster; ``name`` labels this client in the trace."""

    def __init__(
        self,
        url: str = "sim://",
        *,
        cluster: SimCluster | None = None,
        name: str = "app",
        app: Any = None,
        conditions: LinkConditions | None = None,
    ):
        self.url = url
        self._cluster = cluster
        self._app = app
        self.name = name
        self.link = Link(name, conditions)
        self.producers: list[SimProducer] = []
        #: group-managed consumers made by this transport (a stall fault pauses them).
        self.consumers: list[SimConsumer] = []

    def stop_budget(self) -> float | None:
        """How long a client's graceful stop may wait for the cluster (the app's ``stop_budget``)."""
        budget = getattr(self._app, "stop_budget", None)
        return budget() if callable(budget) else None

    def stall(self, duration: float, *, hold_group: bool) -> None:
        """A zombie: no heartbeats for ``duration``; with ``hold_group``, no coordinator request.

        Either way fetches and produces go on. Without ``hold_group`` commits
        still reach the coordinator (a process whose heartbeat thread is
        starved); with it, the process lost touch with its group coordinator
        and its commits and TxnOffsetCommit wait for the stall's end, as on
        the wire.
        """
        for consumer in self.consumers:
            consumer.stall(duration)
        if hold_group:
            self.link.hold_group(asyncio.get_running_loop().time() + duration)

    def sever(self) -> None:
        """The process died: nothing this transport's clients do reaches the cluster again."""
        self.link.up = False

    @property
    def cluster(self) -> SimCluster:
        if self._cluster is None:
            self._cluster = current_cluster.get() or standalone_cluster()
        return self._cluster

    def create_producer(
        self, *, client_id: str, transactional_id: str | None = None,
        transaction_timeout: float = 60.0,
    ) -> SimProducer:
        producer: SimProducer
        if transactional_id is not None:
            producer = SimTransactionalProducer(
                self.cluster, self.name, self.link,
                transactional_id=transactional_id, transaction_timeout=transaction_timeout,
                max_request_size=self.max_request_size, stop_budget=self.stop_budget,
            )
        else:
            producer = SimProducer(
                self.cluster, self.name, self.link, idempotent=self.idempotence,
                max_request_size=self.max_request_size, stop_budget=self.stop_budget,
            )
        self.producers.append(producer)
        return producer

    @property
    def max_request_size(self) -> int:
        """The app's ``producer_max_request_size`` (aiokafka's ``max_request_size``)."""
        conf = getattr(self._app, "conf", None)
        return int(getattr(conf, "producer_max_request_size", MAX_REQUEST_SIZE))

    @property
    def idempotence(self) -> bool:
        """The app's ``producer_enable_idempotence`` (aiokafka's ``enable_idempotence``)."""
        conf = getattr(self._app, "conf", None)
        return bool(getattr(conf, "producer_enable_idempotence", False))

    def busy(self) -> bool:
        """Whether a producer of this process has records queued or in flight."""
        return any(producer.busy() for producer in self.producers)

    def create_consumer(
        self, *, client_id: str, group_id: str | None,
        isolation_level: IsolationLevel = "read_uncommitted", group_instance_id: str | None = None,
    ) -> SimConsumer:
        consumer = SimConsumer(
            self.cluster, self.name, group_id=group_id, link=self.link,
            isolation_level=isolation_level, stop_budget=self.stop_budget,
        )
        consumer.group.instance_id = group_instance_id if group_id is not None else None
        self._configure(consumer)
        if group_id is not None:
            self.consumers.append(consumer)
        return consumer

    def _configure(self, consumer: SimConsumer) -> None:
        """The app's consumer settings, as the Kafka driver hands them to aiokafka.

        Records per fetch (``broker_max_poll_records``) and the group timers
        (``broker_session_timeout``, ``broker_heartbeat_interval``,
        ``broker_rebalance_timeout``); the defaults are the app's defaults.
        """
        conf = getattr(self._app, "conf", None)
        setting = functools.partial(getattr, conf)
        consumer.max_records = int(setting("broker_max_poll_records", None) or consumer.max_records)
        consumer.session_timeout = float(setting("broker_session_timeout", consumer.session_timeout))
        consumer.heartbeat_interval = float(setting("broker_heartbeat_interval", consumer.heartbeat_interval))
        consumer.rebalance_timeout = float(setting("broker_rebalance_timeout", consumer.rebalance_timeout))

    def create_admin(self, *, client_id: str) -> SimAdmin:
        return SimAdmin(self.cluster, self.name, self.link)


#: numbers consumers in the order they are made (a run makes them in the same order each time).
_CONSUMERS_MADE = itertools.count()


class SimConsumer:
    """A consumer; group-managed after ``subscribe``, manual after ``assign``."""

    max_records = 500
    heartbeat_interval = 3.0
    session_timeout = 60.0
    rebalance_timeout = 60.0

    def __init__(
        self, cluster: SimCluster, name: str, *, group_id: str | None, link: Link | None = None,
        isolation_level: IsolationLevel = "read_uncommitted",
        stop_budget: Callable[[], float | None] = lambda: None,
    ) -> None:
        #: the future of the fetch waiting in ``getmany`` (resolved to wake it early), if any.
        self._fetch_waiter: asyncio.Future[None] | None = None
        #: resolved when the next fetch that returns records is sent (``fetch_sent``).
        self._sent_waiter: asyncio.Future[None] | None = None
        self._link = link or Link(name)
        #: the order the host's consumers are woken in (``LinkConditions.deny_reads``).
        self.fetcher_order = next(_CONSUMERS_MADE)
        self._link.conditions.fetchers.add(self)
        #: how long ``stop`` may wait for the cluster (the app's stop budget; None: unbounded).
        self._stop_budget = stop_budget
        self._metadata = ClientMetadata(cluster, self._link)
        #: a fetch found a partition's leader gone: refresh metadata before the next one.
        self._metadata_stale = False
        #: a drop fault lost the fetch in flight: no answer before this loop time.
        self._fetch_blocked_until = 0.0
        self._read_committed = isolation_level == "read_committed"
        #: bumped by every seek: a fetch in flight must not move a position set meanwhile.
        self._seeks: dict[TP, int] = {}
        self._cluster = cluster
        self._name = name
        self._group_id = group_id
        self._assigned: set[TP] = set()
        self._paused: set[TP] = set()
        #: the partitions fetched now (assigned, not paused), sorted; None: to be recomputed.
        self._readable: tuple[TP, ...] | None = None
        #: of those, the ones that may have something to read (the others' positions are at
        #: their log's end): grown since the last look, or moved by a seek.
        self._interest = ReadInterest()
        #: (partitions, metadata generation) whose leaders this client's metadata has noted.
        self._noted: tuple[tuple[TP, ...] | None, int] = (None, -1)
        self._positions: dict[TP, int] = {}
        self._task: asyncio.Task[None] | None = None
        #: ``stop`` began: ``getmany`` raises ``ConsumerStoppedError`` (aiokafka's ``_closed``).
        self._stopping = False
        #: the engine was told this static member was fenced (``getmany`` or ``commit`` raised).
        self._told_fenced = False
        #: the group protocol (membership, generation, coordinator requests).
        self.group = GroupMember(
            self, cluster, self._link, self._metadata,
            name=name, group_id=group_id, read_committed=self._read_committed,
        )

    def _assign(self, tps: set[TP]) -> None:
        """A new assignment (from ``assign``, or from the group protocol).

        A fetch waiting in ``getmany`` waits on the partitions it had: one
        that gained partitions is woken to read them too.
        """
        gained = not tps <= self._assigned
        self._assigned = tps
        self._readable = None
        if gained:
            self.wake_fetch()

    # -- what the group protocol needs (group_member.MemberConsumer) -----------------
    def revoke_assignment(self) -> set[TP]:
        revoked = self._assigned
        self._assign(set())
        return revoked

    def install_assignment(self, assigned: set[TP]) -> None:
        self._paused &= assigned
        self._assign(assigned)  # (which recomputes the partitions read)

    def set_position(self, tp: TP, offset: int) -> None:
        self._positions[tp] = offset
        self._interest.grown.add(tp)
        self._seeks[tp] = self._seeks.get(tp, 0) + 1
        self.wake_fetch()

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        if self._group_id is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self.group.coordinate(), name=f"{self._name}-group-coordination"
            )

    async def stop(self) -> None:
        """Leave the group and stop; a rebalance in flight may first run to its listener.

        aiokafka's stop does not cancel its coordination task: it awaits it,
        so a join or sync in flight completes and the listener runs, and may
        call the consumer, which answers as usual except that ``getmany``
        raises ``ConsumerStoppedError``. For a share of the stops that find
        a rebalance in flight (``rebalance_at_stop_share``, drawn from the
        run's ``stops`` stream, and only then) the sim consumer does the
        same, within the app's stop budget; the others cancel it at once.
        Counter and trace line ``rebalance-at-stop``.
        """
        if self._task is not None and self._lets_rebalance_finish():
            await self._finish_rebalance()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.group.leave(self._stop_budget())
        self._assign(set())
        self._cluster.watch(self._interest, frozenset())

    def _lets_rebalance_finish(self) -> bool:
        """Whether this stop lets the rebalance in flight run on (drawn only when there is one)."""
        draws = self._cluster.stop_draws
        if draws is None or not self.group.rebalancing:
            return False
        return draws.random() < self._cluster.config.rebalance_at_stop_share

    async def _finish_rebalance(self) -> None:
        """Wait for the rebalance in flight (its listener included), within the stop budget."""
        assert self._task is not None
        self._cluster.stats["rebalance-at-stop"] += 1
        self._cluster.trace.record(self._name, "rebalance-at-stop", generation=self.group.generation)
        self._stopping = self.group.closing = True
        budget = self._stop_budget()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), budget)
        except asyncio.TimeoutError:
            pass  # as the production driver's stop: past the budget the client is closed

    def stall(self, duration: float) -> None:
        """Zombie fault: no heartbeat (or rejoin) for ``duration``; fetches and commits go on.

        As a process whose heartbeat thread is starved while its processing
        goes on: past the session timeout the group expels the member, and its
        later commits are rejected until it notices and rejoins. (A stall that
        also holds the commits is the transport's: ``SimTransport.stall``.)
        """
        self.group.stall(duration)

    # -- subscription -------------------------------------------------------
    def subscribe(self, topics: Iterable[str], listener: RebalanceListener) -> None:
        self.group.subscribe(frozenset(topics), listener)

    def assign(self, tps: Iterable[TP]) -> None:
        self._assign(set(tps))
        for tp in sorted(self._assigned):
            if tp not in self._positions:
                self.set_position(tp, self._cluster.beginning_offset(tp))
        self.group.wake()

    def assignment(self) -> set[TP]:
        return set(self._assigned)

    def request_standbys(self, topics: Iterable[str], replicas: int) -> None:
        self.group.request_standbys(frozenset(topics), replicas)

    def standby_assignment(self) -> set[TP]:
        return set(self.group.standbys)

    def advertise_url(self, url: str | None) -> None:
        self.group.url = url

    def partition_urls(self) -> dict[TP, str]:
        return dict(self.group.routes)

    @property
    def generation(self) -> int:
        return self.group.generation

    @property
    def expelled(self) -> bool:
        return self.group.expelled

    @property
    def membership_in_doubt(self) -> bool:
        return self.group.membership_in_doubt()

    # -- fetching -----------------------------------------------------------
    async def getmany(self, timeout: float) -> dict[TP, list[ConsumerRecord]]:
        """Records fetched; positions move when they are returned, as aiokafka's do.

        So a caller that has handled every returned record may take
        ``position`` as done, also past markers and aborted records. Records
        of a partition seeked or reassigned while the fetch was in flight are
        dropped (aiokafka drops them too): they were read from a position
        that no longer holds.
        """
        if self._stopping:
            raise ConsumerStoppedError(f"{self._name}: the consumer is stopping")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conditions = self._link.conditions
        group = self.group
        while True:
            if group.fenced is not None:
                raise self._fenced(group.fenced, "getmany")
            if conditions.denying_reads(loop.time()):
                self._check_authorized("fetch", self._reading())
            if self._fetch_blocked_until > loop.time():  # the lost fetch has not timed out yet
                if deadline <= loop.time():
                    return {}
                await asyncio.sleep(min(self._fetch_blocked_until, deadline) - loop.time())
                continue
            if self._metadata_stale:
                await self._refresh_metadata()
            batch, moved = self._read_available()
            if batch:
                self._note_sent()
                held = self._held_for(loop.time())
                if held is None:
                    self._fetch_lost()
                    continue
                await asyncio.sleep(
                    self._cluster.latency() + self._link.conditions.extra(loop.time()) + held
                )
                # Records of a partition seeked or reassigned meanwhile are stale: drop them.
                batch = self._current_records(batch, moved)
            self._advance(moved)
            if batch:
                if self.group.listener_pending:
                    self._cluster.stats["fetch-before-listener"] += 1
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {}
            if self._metadata_stale:
                continue  # a partition was skipped: refresh (after retry_backoff), read again
            await self._wait_for_data(min(remaining, self.heartbeat_interval))

    def _current_records(
        self, batch: dict[TP, list[ConsumerRecord]], moved: Mapping[TP, tuple[int, int]],
    ) -> dict[TP, list[ConsumerRecord]]:
        """The fetched records still current: of partitions neither sought nor revoked meanwhile."""
        current = {}
        for tp, records in batch.items():
            if tp not in self._assigned:
                continue
            if self._seeks.get(tp, 0) != moved[tp][0]:
                self._cluster.stats["fetch-stale-after-seek"] += 1  # reach: a seek raced a fetch
                if not (mutants.ACTIVE and mutants.on(STALE_FETCH_AFTER_SEEK)):
                    continue
            current[tp] = records
        return current

    async def _wait_for_data(self, timeout: float) -> None:
        """Wait until a partition this consumer reads may have data, or ``timeout``.

        Waits on the partitions read now (assigned, not paused): an append,
        marker or leader change elsewhere does not wake this fetch. A seek, a
        resume or new partitions wake it through ``wake_fetch``.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._fetch_waiter = waiter
        try:
            self._reading()  # (keeps ``_interest.tps``, the same partitions as a set, current)
            await self._cluster.wait_for_append(timeout, waiter=waiter, interest=self._interest)
        finally:
            self._fetch_waiter = None

    def fetch_sent(self) -> asyncio.Future[None]:
        """Resolved when this consumer next sends a fetch that returns records (on its way back)."""
        waiter = self._sent_waiter
        if waiter is None or waiter.done():
            waiter = self._sent_waiter = asyncio.get_running_loop().create_future()
        return waiter

    def _note_sent(self) -> None:
        waiter = self._sent_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def wake_fetch(self) -> None:
        """Wake this consumer's waiting fetch (not other consumers': nothing changed for them)."""
        waiter = self._fetch_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _held_for(self, now: float) -> float | None:
        """How long a drop window holds the fetch's response, as TCP would (0: none); None if
        that outlasts the request timeout: the fetch is lost."""
        network = self._cluster.network
        if not network.loses(self._link, now):
            return 0.0
        held = network.hold_for(self._link, now)
        if held >= self._cluster.config.request_timeout:
            return None
        network.note_held(self._link, "fetch", applied=True)
        return held

    def _fetch_lost(self) -> None:
        """A drop window held the fetch past its timeout: nothing comes back until then."""
        self._cluster.network.lost(self._link, "fetch")
        now = asyncio.get_running_loop().time()
        self._fetch_blocked_until = now + self._cluster.config.request_timeout

    async def _refresh_metadata(self) -> None:
        self._metadata_stale = False
        try:
            await self._metadata.refresh()
        except RetriableError:
            self._metadata_stale = True

    def _reading(self) -> tuple[TP, ...]:
        """The partitions fetched now: assigned and not paused, sorted (kept until either changes)."""
        readable = self._readable
        if readable is None:
            readable = self._readable = tuple(sorted(self._assigned - self._paused))
            tps = frozenset(readable)
            self._cluster.watch(self._interest, tps)
            self._interest.grown = set(tps)  # look at each of them once
        return readable

    def _read_available(
        self,
    ) -> tuple[dict[TP, list[ConsumerRecord]], dict[TP, tuple[int, int]]]:
        """Records readable now, and per partition (seek count, position after them).

        A partition whose log holds nothing at or past the position (and
        whose log start is not past it) is skipped without a read: the read
        would return nothing and leave the position where it is. While every
        broker serves its partitions, only the partitions whose log grew or
        whose position moved since they were last found so are looked at.
        """
        batch: dict[TP, list[ConsumerRecord]] = {}
        moved: dict[TP, tuple[int, int]] = {}
        cluster = self._cluster
        brokers = cluster.brokers
        positions = self._positions
        log_of, logs = cluster.log_of, cluster.logs
        metadata = self._metadata
        known = metadata.known
        readable = self._reading()
        serving_all = brokers.undisturbed
        look_at: Iterable[TP] = readable
        if serving_all:
            # As a look at every partition would: each one's leader is noted in this
            # client's metadata (after an assignment, and after a refresh emptied it).
            noted, generation = self._noted
            if noted is not readable or generation != metadata.generation:
                for tp in readable:
                    if tp not in known:
                        metadata.leader(tp)
                self._noted = (readable, metadata.generation)
            interest = self._interest
            look_at = sorted(interest.grown & interest.tps)
        for tp in look_at:
            # The lookup notes the leader in this client's metadata if it has none yet.
            leader = known[tp] if tp in known else metadata.leader(tp)
            if not serving_all and not brokers.serving(tp, leader):
                self._metadata_stale = True  # not the leader, or down: skip it, refresh, retry
                continue
            start = positions[tp]
            log = logs.get(tp) or log_of(tp)
            if start >= len(log.records) and start >= log.start_offset:
                if serving_all:
                    self._interest.grown.discard(tp)  # until its log grows or it is sought
                continue  # nothing to read, nothing to skip
            if mutants.ACTIVE and self._read_committed:  # the isolation mutants live in the cluster
                records, position = cluster.read(tp, start, self.max_records, read_committed=True)
            else:
                records, position = log.read(
                    start, self.max_records, read_committed=self._read_committed
                )
            if records:
                batch[tp] = records
            if position != start:
                moved[tp] = (self._seeks.get(tp, 0), position)
        return batch, moved

    def _advance(self, moved: Mapping[TP, tuple[int, int]]) -> None:
        for tp, (seeks, position) in moved.items():
            if self._seeks.get(tp, 0) == seeks:  # not seeked while the fetch was in flight
                self._positions[tp] = position

    def pause(self, *tps: TP) -> None:
        self._paused.update(tps)
        self._readable = None

    def resume(self, *tps: TP) -> None:
        self._paused.difference_update(tps)
        self._readable = None
        self.wake_fetch()

    def seek(self, tp: TP, offset: int) -> None:
        self.set_position(tp, offset)

    async def position(self, tp: TP) -> int:
        return self._positions[tp]

    def known_offsets(self, tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        """Positions and log ends, no request (the seam's). The log end is the cluster's now:
        a simulated fetch response would report it, and reading it costs the fetch path nothing."""
        cluster, positions = self._cluster, self._positions
        end_of = cluster.last_stable_offset if self._read_committed else cluster.end_offset
        return {tp: (positions[tp], end_of(tp)) for tp in tps if tp in positions and tp in self._assigned}

    def group_metadata(self) -> GroupMetadata:
        group = self.group
        return GroupMetadata(self._group_id or "", group.generation, group.member_id, group.instance_id)

    # -- offsets ------------------------------------------------------------
    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit at the coordinator, retrying while it is unavailable (as aiokafka does).

        The member and generation are the ones of the call: a retry that
        crosses a rebalance is refused with ``CommitFailedError``.
        """
        if self._group_id is None:
            raise ValueError("commit needs a consumer with a group_id")
        member = self.group.member_id if self.group.topics else None
        generation = self.group.generation
        group = self._cluster.group(self._group_id)

        instance = self.group.instance_id

        def at_coordinator() -> None:
            self._check_authorized("commit", offsets)
            group.commit(member, generation, offsets, instance)

        if self.group.fenced is not None:  # nothing goes to the coordinator any more
            raise self._fenced(self.group.fenced, "commit")
        try:
            await self.group.request_retrying("offset-commit", at_coordinator)
        except FencedInstanceIdError as exc:
            self.group.fence(exc)
            raise self._fenced(exc, "commit") from None
        except CommitFailedError:
            if member is not None:  # the group no longer knows the membership: rejoin at once
                await self.group.commit_refused(self._cluster.client_faults.revoke_before_refusal())
            raise

    def _fenced(self, error: FencedInstanceIdError, told: str) -> FencedInstanceIdError:
        """``error``, to raise to the engine; the first time, traced (what the engine knows now)."""
        if not self._told_fenced:
            self._told_fenced = True
            self._cluster.trace.record(self._name, "instance-fenced", instance=error.instance, told=told)
        return error

    def _check_authorized(self, what: str, tps: Iterable[TP]) -> None:
        """A ``deny_reads`` fault on this host: fetches and offset commits of its topics are refused.

        Not retriable (``TOPIC_AUTHORIZATION_FAILED``, as while an ACL is
        being changed): aiokafka raises it from ``getmany`` or ``commit``,
        and the engine crashes the app; its work is redone from the last
        commit once the process is restarted.
        """
        topics = sorted({tp.topic for tp in tps})
        if not topics or not self._link.conditions.denying_reads(asyncio.get_running_loop().time()):
            return
        self._cluster.stats[f"{what}-denied"] += 1
        self._cluster.trace.record(self._name, f"{what}-denied", topics=topics)
        raise TopicAuthorizationFailedError(
            f"{self._name} may not {what} {topics} (deny_reads fault: authorization denied)"
        )

    async def committed(self, tp: TP) -> int | None:
        if self._group_id is None:
            return None
        return (await self._fetch_committed([tp]))[tp]

    async def start_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Committed offsets (one offset fetch), else the log's beginning (``earliest``)."""
        tps = sorted(tps)
        if not tps:
            return {}
        committed: dict[TP, int | None] = {tp: None for tp in tps}
        if self._group_id is not None:
            committed = await self._fetch_committed(tps)
        return {
            tp: offset if offset is not None else self._cluster.beginning_offset(tp)
            for tp, offset in committed.items()
        }

    async def _fetch_committed(self, tps: list[TP]) -> dict[TP, int | None]:
        """An OffsetFetch of the group's committed offsets of ``tps``.

        Read_committed, it asks for stable offsets (KIP-447's ``require_stable``,
        as Java's consumer and the Kafka driver do): while an open transaction
        holds offsets of one of ``tps`` the coordinator answers
        UNSTABLE_OFFSET_COMMIT, and the consumer asks again after its backoff.
        """
        group = self._cluster.group(self._group_id or "")
        transactions = self._cluster.transactions

        def at_coordinator() -> dict[TP, int | None] | None:
            if self._read_committed and transactions.pending_offsets(group.group_id, tps):
                return None
            return {tp: group.committed.get(tp) for tp in tps}

        while True:
            committed = await self.group.request_retrying("offset-fetch", at_coordinator)
            if committed is not None:
                return committed
            self._cluster.stats["offsets-unstable"] += 1
            self._cluster.trace.record(self._name, "offsets-unstable", tps=len(tps))
            await asyncio.sleep(self._cluster.config.retry_backoff)

    async def _list_offsets(self, offset_of: Callable[[TP], int], tps: Iterable[TP]) -> dict[TP, int]:
        """A ListOffsets request: it pays the network (a listener awaiting it lets fetches run).

        Refused, not retriably, while a ``refuse`` fault denies this host the topics.
        """
        tps = sorted(tps)

        def at_broker() -> dict[TP, int]:
            if self._link.conditions.refusing(asyncio.get_running_loop().time()):
                raise TopicAuthorizationFailedError(
                    f"{self._name} may not describe {sorted({tp.topic for tp in tps})} "
                    "(refuse fault: authorization denied)"
                )
            return {tp: offset_of(tp) for tp in tps}

        while True:
            try:
                return await self._cluster.network.request(self._link, "list-offsets", at_broker)
            except RetriableError:
                await asyncio.sleep(self._cluster.config.retry_backoff)

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        return await self._list_offsets(self._cluster.beginning_offset, tps)

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The end a consumer can reach: the last stable offset under read_committed."""
        if self._read_committed:
            return await self._list_offsets(self._cluster.last_stable_offset, tps)
        return await self._list_offsets(self._cluster.end_offset, tps)

    async def log_end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The high watermark, open transactions included (a read_uncommitted ListOffsets)."""
        return await self._list_offsets(self._cluster.end_offset, tps)
