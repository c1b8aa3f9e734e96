"""An in-memory Kafka cluster: brokers, topics, partition logs, offsets and groups.

Each log is kept once: every replica is in sync (``acks=all``), so what
brokers change is who answers (``sim.brokers``: leaders, failover, the
coordinators' brokers), never what a log holds. A produce is checked like a
broker checks it: the partition's leader, the transactional producer's
epoch, then the idempotent producer's sequence numbers (``sim.idempotence``:
a retried batch is answered with its original offsets). Every write is
recorded in a history (``sim.history``) that the final read compares with
the topics.

Transactions (``sim.transactions``) leave what Kafka leaves in a log: the
records of a transaction sit in the log as soon as they are produced, a
control marker takes one offset when the transaction ends, and an abort
marks its records aborted. ``read_committed`` readers skip markers and
aborted records and stop at the last stable offset (the first offset of the
oldest open transaction); ``read_uncommitted`` readers skip only markers. So,
as on Kafka, consecutive records can have offset gaps.

The log cleaner (``sim.cleaner``) leaves gaps too: a record it compacts away
becomes a hole (``None``) at its offset, and retention moves the log start
offset forward; offsets never change, readers skip holes.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from detstream import mutants
from detstream._types import TP, ConsumerRecord, RecordMetadata

from .brokers import GROUP_COORDINATOR_TOPIC, Brokers, coordinator_partition
from .cleaner import LogCleaner
from .client_faults import ClientFaults
from .group import GroupCoordinator
from .history import WriteHistory
from .idempotence import BatchId, ProducerEntry, duplicate_of, remember
from .kafka_errors import MessageSizeTooLargeError
from .network import Network
from .producer import BATCH_HEADER
from .trace import Trace
from .transactions import TransactionalId, TransactionCoordinator

if TYPE_CHECKING:
    from .history import Write

#: a read_committed fetch hands out aborted records (it still stops at the last stable offset).
READ_COMMITTED_RETURNS_ABORTED = mutants.register(
    "read-committed-returns-aborted",
    "the broker hands aborted transactional records to read_committed consumers",
)
#: a fetch ignores the consumer's isolation level: open and aborted transactions show.
FETCH_IGNORES_ISOLATION = mutants.register(
    "fetch-ignores-isolation",
    "the broker serves read_committed fetches as read_uncommitted (open and aborted records show)",
)

Headers = tuple[tuple[str, bytes], ...]

#: ``ConsumerRecord(...)``/``RecordMetadata(...)`` without the named tuple's Python-level
#: ``__new__``: two per appended record.
_new_tuple = tuple.__new__


class ControlMarker(NamedTuple):
    """A transaction's commit or abort marker: it takes an offset, no consumer receives it."""

    offset: int
    producer_id: int
    commit: bool


@dataclass
class PartitionLog:
    """An append-only log; offsets are list indices (markers and holes included)."""

    #: ``None`` marks a hole: a record the log cleaner removed.
    records: list[ConsumerRecord | ControlMarker | None] = field(default_factory=list)
    #: offsets of records whose transaction aborted.
    aborted: set[int] = field(default_factory=set)
    #: producer id -> first offset of its open transaction in this partition.
    open_first: dict[int, int] = field(default_factory=dict)
    #: offset -> producer id of each transactional record (the wire's fetch names aborted ones).
    txn_producers: dict[int, int] = field(default_factory=dict)
    #: whether a transaction ever wrote here (else reads take the fast path).
    transactional: bool = False
    #: the log start offset: retention deleted every offset before it.
    start_offset: int = 0
    #: whether the cleaner removed records (else reads take the fast path).
    cleaned: bool = False
    #: idempotent producers' state: producer id -> epoch, last sequence, recent batches.
    producers: dict[int, ProducerEntry] = field(default_factory=dict)

    @property
    def end_offset(self) -> int:
        return len(self.records)

    @property
    def last_stable_offset(self) -> int:
        return min(self.open_first.values(), default=self.end_offset)

    def read(
        self, offset: int, max_records: int, *, read_committed: bool = False
    ) -> tuple[list[ConsumerRecord], int]:
        """Up to ``max_records`` records from ``offset``, and the position after what was read."""
        # Before the log start, a read starts at the log start (auto.offset.reset=earliest).
        offset = max(offset, self.start_offset)
        if not self.transactional and not self.cleaned:
            records = self.records[offset : offset + max_records]
            return records, offset + len(records)  # type: ignore[return-value]
        limit = self.last_stable_offset if read_committed else self.end_offset
        if limit - offset <= max_records:  # all of it (a fetch that catches up, the final read)
            aborted = self.aborted if read_committed else ()
            window = self.records[offset:limit]
            return [
                entry for entry in window  # type: ignore[misc]
                if entry is not None and type(entry) is not ControlMarker and entry[2] not in aborted
            ], max(limit, offset)
        found: list[ConsumerRecord] = []
        position = offset
        while position < limit and len(found) < max_records:
            entry = self.records[position]
            position += 1
            if entry is None or isinstance(entry, ControlMarker):
                continue
            if read_committed and entry.offset in self.aborted:
                continue
            found.append(entry)
        return found, max(position, offset)


#: Kafka's defaults of the topic configs the simulated cluster applies when a topic
#: leaves them unset (``delete.retention.ms`` comes from ``ClusterConfig``; the cluster
#: applies ``retention.ms`` only when a topic sets it).
TOPIC_DEFAULTS = {"cleanup.policy": "delete", "max.message.bytes": "1048588", "min.compaction.lag.ms": "0"}


@dataclass
class TopicState:
    name: str
    logs: list[PartitionLog]
    config: dict[str, str]

    def setting(self, name: str) -> str | None:
        """The topic's config ``name``, or Kafka's default for it."""
        return self.config.get(name, TOPIC_DEFAULTS.get(name))

    @property
    def partitions(self) -> int:
        return len(self.logs)


@dataclass(frozen=True)
class ClusterConfig:
    """Broker-side settings, with Kafka's defaults where Kafka has one."""

    #: ``num.partitions``: partitions of an auto-created topic.
    default_partitions: int = 1
    #: ``auto.create.topics.enable``.
    auto_create_topics: bool = True
    #: ``group.initial.rebalance.delay.ms`` (in seconds).
    initial_rebalance_delay: float = 3.0
    #: one-way request latency is drawn uniformly from this range (seconds).
    latency: tuple[float, float] = (0.0005, 0.002)
    #: ``log.cleaner.backoff``: virtual seconds between log cleaner passes (None: no cleaner).
    log_cleaner_interval: float | None = 30.0
    #: the active tail: the last this many offsets of a partition are never cleaned.
    log_cleaner_active_records: int = 10
    #: ``log.cleaner.delete.retention.ms`` (seconds): how long tombstones outlive compaction.
    delete_retention: float = 86400.0
    #: brokers ``b1`` ... ``bN``; partitions and coordinators are led by one of them.
    brokers: int = 3
    #: replicas per partition (at most ``brokers``); leadership moves among them.
    replication_factor: int = 3
    #: ``broker.session.timeout.ms`` (s): how long a crashed broker still leads its partitions.
    broker_session_timeout: float = 9.0
    #: clients' ``request_timeout_ms`` (s): when a request lost by a drop fault times out.
    request_timeout: float = 30.0
    #: clients' ``retry_backoff_ms`` (s): the wait before a retry and its metadata refresh.
    retry_backoff: float = 0.1
    #: ``delivery.timeout.ms`` (s): a record not acknowledged by then fails, retries included.
    delivery_timeout: float = 120.0
    #: of the requests a drop fault loses, the share lost on the way back (after being applied).
    lost_response_share: float = 0.5
    #: of the requests a drop fault loses, the share whose connection closes instead of going
    #: silent (a proxy or broker resetting it): the client hears after a round trip, not after
    #: the request timeout, and retries at once.
    reset_share: float = 0.3
    #: the chance that a consumer fetches for a while with a new assignment before it calls
    #: the rebalance listener (aiokafka does: the transport contract in docs/sim.md) ...
    listener_lag_share: float = 0.5
    #: ... and the longest such while (seconds); the length is drawn from the network stream.
    listener_lag: float = 0.5
    #: the longest a client is busy when an error response reaches it (``Network._meet_error``).
    error_pause: float = 1.0
    #: of the stops that find the consumer's rebalance in flight, the share that let it run
    #: to its listener, as aiokafka's stop does (drawn from the run's ``stops`` stream).
    rebalance_at_stop_share: float = 0.5


class ReadInterest:
    """The partitions one consumer reads, and which of them grew since it last looked.

    ``SimCluster.watch`` registers it; every append or marker in one of its
    partitions adds that partition to ``grown``. A consumer then looks at
    the partitions in ``grown`` (and those it moved itself) instead of at all
    of its partitions on every fetch.
    """

    __slots__ = ("grown", "tps", "waiting")

    def __init__(self) -> None:
        self.tps: frozenset[TP] = frozenset()
        self.grown: set[TP] = set()
        #: the consumer's waiting fetch on all of ``tps`` and its registration number, or None.
        self.waiting: tuple[asyncio.Future[None], int] | None = None


class UnknownTopicError(Exception):
    """A client named a topic the cluster does not have (and may not create)."""


class OutgoingRecord(Protocol):
    """A record a producer sends, with the history entry of its send (read only)."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def timestamp(self) -> float: ...
    @property
    def headers(self) -> Headers: ...
    @property
    def write(self) -> Write | None: ...
    @property
    def size(self) -> int:
        """Its ``record_size``: measured once, by the client that sends it."""


class SimCluster:
    """Owns every topic and group of one simulated run."""

    def __init__(
        self, trace: Trace, *, rng: random.Random, config: ClusterConfig | None = None,
        errors: random.Random | None = None, members: random.Random | None = None,
        client_faults: ClientFaults | None = None, admin: random.Random | None = None,
        stops: random.Random | None = None,
    ):
        """``rng`` is the network stream; ``errors`` how clients meet error responses
        (None: at once, as tests of the cluster alone want); ``members`` draws the random
        part of group member ids (None: a counter, ``w1-1``); ``client_faults`` the faults
        of the client library (None: none); ``admin`` the broker an admin metadata request
        picks (None: always a live one); ``stops`` whether a consumer's stop lets its
        rebalance in flight finish (None: never)."""
        self.trace = trace
        self.client_faults = client_faults or ClientFaults()
        #: the run's ``admin`` stream (``sim.admin``), or None.
        self.admin_picks = admin
        #: the run's ``stops`` stream (``SimConsumer.stop``), or None.
        self.stop_draws = stops
        self._members = members
        self.config = config or ClusterConfig()
        self._rng = rng
        #: counters of rare events for the run's coverage report.
        self.stats: Counter[str] = Counter()
        self.network = Network(
            trace, rng, latency=self.config.latency, request_timeout=self.config.request_timeout,
            stats=self.stats, lost_response_share=self.config.lost_response_share,
            reset_share=self.config.reset_share,
            listener_lag=(self.config.listener_lag_share, self.config.listener_lag),
            errors=errors, error_pause=self.config.error_pause,
        )
        self.brokers = Brokers(
            trace, count=self.config.brokers, replication_factor=self.config.replication_factor,
            session_timeout=self.config.broker_session_timeout, stats=self.stats,
            on_leader_change=self._leader_changed,
        )
        self.history = WriteHistory(trace.clock)
        self.topics: dict[str, TopicState] = {}
        #: every partition's log, by partition (topics are never deleted or resized).
        self._logs: dict[TP, PartitionLog] = {}
        self.groups: dict[str, GroupCoordinator] = {}
        self.transactions = TransactionCoordinator(self)
        self.cleaner = LogCleaner(self)
        #: waiting fetches in registration order (waiter -> registration number), and the
        #: same waiters by the partition they read (``_waiting_any``: any partition).
        self._fetch_waiters: dict[asyncio.Future[None], int] = {}
        self._waiting_on: dict[TP, dict[asyncio.Future[None], int]] = {}
        self._waiting_any: dict[asyncio.Future[None], int] = {}
        self._registrations = itertools.count()
        #: the consumers reading each partition (``watch``), told when its log grows.
        self._interests: dict[TP, dict[ReadInterest, None]] = {}

    # -- topics ---------------------------------------------------------
    def create_topic(
        self, name: str, partitions: int, config: Mapping[str, str] | None = None, *, by: str
    ) -> bool:
        """Create a topic; False when it exists already (its size is kept)."""
        if name in self.topics:
            return False
        if partitions < 1:
            raise ValueError(f"topic {name!r}: partitions must be >= 1, got {partitions}")
        logs = [PartitionLog() for _ in range(partitions)]
        self.topics[name] = TopicState(name, logs, dict(config or {}))
        for partition in range(partitions):
            tp = TP(name, partition)
            self._logs[tp] = logs[partition]
            self.brokers.add_partition(tp)
        self.trace.record(by, "create-topic", topic=name, partitions=partitions)
        for group in self.groups.values():
            group.on_topic_created(name)
        return True

    def partitions_for(self, name: str, *, by: str, create: bool = False) -> int | None:
        topic = self.topics.get(name)
        if topic is None and create and self.config.auto_create_topics:
            self.create_topic(name, self.config.default_partitions, by=by)
            topic = self.topics[name]
        return topic.partitions if topic else None

    def _log(self, tp: TP) -> PartitionLog:
        log = self._logs.get(tp)
        if log is not None:
            return log
        topic = self.topics.get(tp.topic)
        if topic is None or not 0 <= tp.partition < topic.partitions:
            raise UnknownTopicError(f"unknown topic partition {tp}")
        return topic.logs[tp.partition]

    # -- produce / fetch -------------------------------------------------
    def produce(
        self,
        by: str,
        tp: TP,
        leader: int | None,
        records: Sequence[OutgoingRecord],
        *,
        batch: BatchId | None = None,
        transaction: tuple[str, int] | None = None,
    ) -> list[RecordMetadata]:
        """A produce request for one partition, sent to broker ``leader``, checked as Kafka does.

        Raises a retriable error if ``leader`` does not lead ``tp`` now,
        ``ProducerFencedError`` for a fenced transactional producer, and the
        idempotence errors for a bad sequence. A batch appended before
        (``batch`` seen already) is not appended again: its offsets are returned.
        """
        self.brokers.serve(tp, leader)
        log = self._log(tp)
        state = self.transactions.check(*transaction, "produce") if transaction else None
        self._check_batch_size(by, tp, records)
        if batch is not None:
            offsets = duplicate_of(log.producers, batch, len(records))
            if offsets is not None:
                return self._deduplicated(by, tp, log, batch, offsets, records)
        metas = self._append(by, tp, log, records, state)
        if batch is not None:
            remember(log.producers, batch, tuple([meta.offset for meta in metas]))
        self.wake_fetchers(tp)
        return metas

    def _check_batch_size(self, by: str, tp: TP, records: Sequence[OutgoingRecord]) -> None:
        """MESSAGE_TOO_LARGE: the batch is larger than its topic's ``max.message.bytes``."""
        limit = self.topics[tp.topic].setting("max.message.bytes")
        if limit is None:
            return
        size = BATCH_HEADER + sum([r.size for r in records]) - BATCH_HEADER * len(records)
        if size > int(limit):
            self.trace.record(by, "produce-refused", tp=tp, size=size, limit=int(limit))
            raise MessageSizeTooLargeError(
                f"a batch of {len(records)} record(s) for {tp} is {size} bytes, more than the "
                f"topic's max.message.bytes {limit}"
            )

    def append(
        self,
        by: str,
        tp: TP,
        *,
        key: bytes | None,
        value: bytes | None,
        timestamp: float,
        headers: Headers = (),
        transaction: tuple[str, int] | None = None,
    ) -> RecordMetadata:
        """Append one record directly (no leader or sequence checks: tools and tests)."""
        state = self.transactions.check(*transaction, "produce") if transaction else None
        meta = self._append(by, tp, self._log(tp), [_Direct(key, value, timestamp, headers)], state)[0]
        self.wake_fetchers(tp)
        return meta

    def _append(
        self, by: str, tp: TP, log: PartitionLog, records: Sequence[OutgoingRecord],
        state: TransactionalId | None,
    ) -> list[RecordMetadata]:
        """Append ``records`` to ``log`` (one produce request's batch): their metadata, in order."""
        entries = log.records
        first = len(entries)  # log.end_offset
        offsets = range(first, first + len(records))
        if state is not None:
            log.transactional = True
            log.open_first.setdefault(state.producer_id, first)
            log.txn_producers.update(dict.fromkeys(offsets, state.producer_id))
            self.transactions.appended(state, tp, offsets)  # (may trace the txn-begin first)
        topic, partition = tp
        trace = self.trace
        metas = []
        for offset, record in enumerate(records, first):
            key, value, timestamp = record.key, record.value, record.timestamp
            entries.append(_new_tuple(ConsumerRecord, (
                topic, partition, offset, timestamp, key, value, record.headers,
            )))
            write = record.write
            if write is not None:
                write.offsets += (offset,)  # (``WriteHistory.appended``, inline: per record)
            fields = {"tp": tp, "offset": offset, "key": key, "value": value}
            if state is not None:
                fields["txn"] = state.name
            if (key is None or type(key) is bytes) and (value is None or type(value) is bytes):
                trace.record_atoms(by, "produce", fields)
            else:
                trace.record(by, "produce", **fields)  # (a client's bytearray: rendered now)
            metas.append(_new_tuple(RecordMetadata, (topic, partition, offset, timestamp)))
        return metas

    def _deduplicated(
        self, by: str, tp: TP, log: PartitionLog, batch: BatchId, offsets: tuple[int, ...],
        records: Sequence[OutgoingRecord],
    ) -> list[RecordMetadata]:
        """A retried batch that is in the log already: answer with the original offsets."""
        self.stats["batch-deduped"] += 1
        self.trace.record(
            by, "produce-deduped", tp=tp, producer=batch.producer_id, sequence=batch.sequence,
            offsets=list(offsets),
        )
        metas = []
        for offset, record in zip(offsets, records, strict=True):
            if record.write is not None and offset not in record.write.offsets:
                self.history.appended(record.write, offset)
            metas.append(RecordMetadata(tp.topic, tp.partition, offset, record.timestamp))
        return metas

    def write_marker(self, tp: TP, producer_id: int, *, commit: bool, offsets: list[int]) -> None:
        """End ``producer_id``'s transaction in ``tp`` (its records are at ``offsets``).

        The marker may move the last stable offset (read_committed readers of
        ``tp`` may read on) and takes an offset (every reader's position may
        move past it), so it wakes the fetches waiting on ``tp``.
        """
        log = self._log(tp)
        if not commit:
            log.aborted.update(offsets)
        log.open_first.pop(producer_id, None)
        # A transaction may have added the partition and appended nothing to it (on the wire
        # AddPartitionsToTxn comes first; the produce was then refused): the marker is the
        # log's first transactional entry, and reads must skip it.
        log.transactional = True
        log.records.append(ControlMarker(log.end_offset, producer_id, commit))
        self.wake_fetchers(tp)

    def read(
        self, tp: TP, offset: int, max_records: int, *, read_committed: bool = False
    ) -> tuple[list[ConsumerRecord], int]:
        """A consumer's fetch of ``tp`` with the isolation mutants (final reads use ``records``).

        The sim consumer reads its partitions' logs directly; while a mutant
        is active, its read_committed fetches come here.
        """
        if mutants.ACTIVE and read_committed:
            return self._mutated_read(tp, offset, max_records)
        return self._log(tp).read(offset, max_records, read_committed=read_committed)

    def _mutated_read(self, tp: TP, offset: int, max_records: int) -> tuple[list[ConsumerRecord], int]:
        """A read_committed fetch as the isolation mutants serve it (normal if neither is on)."""
        log = self._log(tp)
        if mutants.on(FETCH_IGNORES_ISOLATION):
            return log.read(offset, max_records, read_committed=False)
        if not mutants.on(READ_COMMITTED_RETURNS_ABORTED):
            return log.read(offset, max_records, read_committed=True)
        limit = min(log.last_stable_offset, offset + max_records)
        found, position = log.read(offset, max_records, read_committed=False)
        kept = [record for record in found if record.offset < limit]
        return kept, max(min(position, limit), offset)

    @property
    def logs(self) -> Mapping[TP, PartitionLog]:
        """Every partition's log, by partition."""
        return self._logs

    def log_of(self, tp: TP) -> PartitionLog:
        """The partition's log; ``UnknownTopicError`` if the cluster has no such partition."""
        log = self._logs.get(tp)
        return log if log is not None else self._log(tp)

    def end_offset(self, tp: TP) -> int:
        return self._log(tp).end_offset

    def last_stable_offset(self, tp: TP) -> int:
        return self._log(tp).last_stable_offset

    def beginning_offset(self, tp: TP) -> int:
        return self._log(tp).start_offset

    def watch(self, interest: ReadInterest, tps: frozenset[TP]) -> None:
        """From now on, note in ``interest.grown`` when a log of ``tps`` grows (replaces its set)."""
        interests = self._interests
        for tp in interest.tps - tps:
            del interests[tp][interest]
        for tp in tps - interest.tps:
            interests.setdefault(tp, {})[interest] = None
        interest.tps = tps

    def wake_fetchers(self, tp: TP | None = None) -> None:
        """Wake the fetches waiting on ``tp`` (data, a marker or a new leader), or all of them.

        Only the waiters of ``tp`` (and those waiting on any partition) wake,
        in the order they began to wait: with several workers, waking every
        fetch on every append made each delivery cost many empty partition
        reads. ``None`` wakes every waiting fetch, in the same order. With a
        partition, the consumers reading it (``watch``) also note that it grew.
        """
        if tp is None:
            waiters: Iterable[asyncio.Future[None]] = list(self._fetch_waiters)
        else:
            found: dict[asyncio.Future[None], int] = {}
            for interest in self._interests.get(tp, ()):
                interest.grown.add(tp)
                if interest.waiting is not None:
                    found[interest.waiting[0]] = interest.waiting[1]
            on_tp = self._waiting_on.get(tp)
            if on_tp:
                found.update(on_tp)
            if self._waiting_any:
                found.update(self._waiting_any)
            waiters = sorted(found, key=found.__getitem__) if len(found) > 1 else list(found)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for_append(
        self,
        timeout: float,
        tps: Iterable[TP] | None = None,
        *,
        waiter: asyncio.Future[None] | None = None,
        interest: ReadInterest | None = None,
    ) -> None:
        """Return when data may have become readable in ``tps``, or after ``timeout`` seconds.

        ``tps=None`` waits on every partition. That is an append, a
        transaction marker or a leader change in one of them, a call of
        ``wake_fetchers()`` without a partition, or the caller resolving its
        own ``waiter`` (a consumer that seeks, resumes or gains partitions
        while it waits: the partitions it waits on are those of the call).
        A consumer passes its ``interest`` instead of ``tps`` (it waits on
        the partitions it watches): registering a wait then costs the same for
        one partition as for a thousand.

        A plain future and a timer rather than ``asyncio.wait_for``: on Python
        3.11 ``wait_for`` can swallow a cancellation that races its timeout,
        and a crashed or stopping worker's fetch must always be cancellable.
        """
        loop = asyncio.get_running_loop()
        if waiter is None:
            waiter = loop.create_future()
        number = next(self._registrations)
        self._fetch_waiters[waiter] = number
        indexes: list[dict[asyncio.Future[None], int]] = []
        if interest is not None:
            interest.waiting = (waiter, number)
        elif tps is None:
            indexes.append(self._waiting_any)
        else:
            waiting_on = self._waiting_on
            indexes.extend(waiting_on.setdefault(tp, {}) for tp in set(tps))
        for index in indexes:
            index[waiter] = number
        timer = loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            del self._fetch_waiters[waiter]
            if interest is not None:
                interest.waiting = None
            for index in indexes:
                del index[waiter]

    def records(self, topic: str, *, read_committed: bool = True) -> list[ConsumerRecord]:
        """Every record of ``topic`` a consumer can read, partition by partition (final reads).

        By default what a read_committed consumer sees (no aborted records,
        nothing past an open transaction); without transactions that is
        every record.
        """
        state = self.topics.get(topic)
        if state is None:
            return []
        found: list[ConsumerRecord] = []
        for log in state.logs:
            found.extend(log.read(0, log.end_offset, read_committed=read_committed)[0])
        return found

    def record_count(self, topic: str, *, read_committed: bool = True) -> int:
        """``len(records(topic, ...))`` without building the list where the log is plain."""
        state = self.topics.get(topic)
        if state is None:
            return 0
        count = 0
        for log in state.logs:
            if log.transactional or log.cleaned:
                count += len(log.read(0, log.end_offset, read_committed=read_committed)[0])
            else:
                count += log.end_offset - log.start_offset
        return count

    # -- network, brokers and groups -------------------------------------
    def latency(self) -> float:
        return self.network.latency()

    def group(self, group_id: str) -> GroupCoordinator:
        coordinator = self.groups.get(group_id)
        if coordinator is None:
            coordinator = GroupCoordinator(
                group_id,
                self.trace,
                initial_rebalance_delay=self.config.initial_rebalance_delay,
                stats=self.stats, members=self._members,
            )
            self.groups[group_id] = coordinator
        return coordinator

    def _leader_changed(self, tp: TP) -> None:
        """A partition's leader moved: its fetches may go on, a moved coordinator reloads its group."""
        self.wake_fetchers(tp)
        if tp.topic == GROUP_COORDINATOR_TOPIC:
            for group_id in sorted(self.groups):
                if coordinator_partition(GROUP_COORDINATOR_TOPIC, group_id) == tp:
                    self.groups[group_id].coordinator_moved()


class _Direct(NamedTuple):
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: Headers
    write: Write | None = None
    size: int = 0  # (unread: a direct append is not a produce request, nothing checks its size)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
