"""An in-memory Kafka cluster: topics, partition logs, offsets and groups.

This first version keeps one copy of each log (no brokers or replicas yet);
the protocol-facing parts (group coordination, produce/fetch latency) already
have Kafka's shape so faults can be added without changing the clients.

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
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from detstream._types import TP, ConsumerRecord, RecordMetadata

from .cleaner import LogCleaner
from .group import GroupCoordinator
from .trace import Trace
from .transactions import TransactionCoordinator

Headers = tuple[tuple[str, bytes], ...]


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
    #: whether a transaction ever wrote here (else reads take the fast path).
    transactional: bool = False
    #: the log start offset: retention deleted every offset before it.
    start_offset: int = 0
    #: whether the cleaner removed records (else reads take the fast path).
    cleaned: bool = False

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


@dataclass
class TopicState:
    name: str
    logs: list[PartitionLog]
    config: dict[str, str]

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


class UnknownTopicError(Exception):
    """A client named a topic the cluster does not have (and may not create)."""


class SimCluster:
    """Owns every topic and group of one simulated run."""

    def __init__(self, trace: Trace, *, rng: random.Random, config: ClusterConfig | None = None):
        self.trace = trace
        self.config = config or ClusterConfig()
        self._rng = rng
        self.topics: dict[str, TopicState] = {}
        self.groups: dict[str, GroupCoordinator] = {}
        self.transactions = TransactionCoordinator(self)
        self.cleaner = LogCleaner(self)
        self._fetch_waiters: list[asyncio.Future[None]] = []

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
        topic = self.topics.get(tp.topic)
        if topic is None or not 0 <= tp.partition < topic.partitions:
            raise UnknownTopicError(f"unknown topic partition {tp}")
        return topic.logs[tp.partition]

    # -- produce / fetch -------------------------------------------------
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
        """Append one record; ``transaction`` = (transactional id, epoch) of its producer."""
        log = self._log(tp)
        state = None
        if transaction is not None:
            state = self.transactions.check(*transaction, "produce")
        offset = log.end_offset
        log.records.append(
            ConsumerRecord(tp.topic, tp.partition, offset, timestamp, key, value, headers)
        )
        if state is None:
            self.trace.record(by, "produce", tp=tp, offset=offset, key=key, value=value)
        else:
            log.transactional = True
            log.open_first.setdefault(state.producer_id, offset)
            self.transactions.appended(state, tp, offset)
            self.trace.record(
                by, "produce", tp=tp, offset=offset, key=key, value=value, txn=state.name
            )
        self.wake_fetchers()
        return RecordMetadata(tp.topic, tp.partition, offset, timestamp)

    def write_marker(self, tp: TP, producer_id: int, *, commit: bool, offsets: list[int]) -> None:
        """End ``producer_id``'s transaction in ``tp`` (its records are at ``offsets``)."""
        log = self._log(tp)
        if not commit:
            log.aborted.update(offsets)
        log.open_first.pop(producer_id, None)
        log.records.append(ControlMarker(log.end_offset, producer_id, commit))

    def read(
        self, tp: TP, offset: int, max_records: int, *, read_committed: bool = False
    ) -> tuple[list[ConsumerRecord], int]:
        return self._log(tp).read(offset, max_records, read_committed=read_committed)

    def end_offset(self, tp: TP) -> int:
        return self._log(tp).end_offset

    def last_stable_offset(self, tp: TP) -> int:
        return self._log(tp).last_stable_offset

    def beginning_offset(self, tp: TP) -> int:
        return self._log(tp).start_offset

    def wake_fetchers(self) -> None:
        """Wake waiting fetches (data arrived, or a consumer resumed or seeked)."""
        waiters, self._fetch_waiters = self._fetch_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for_append(self, timeout: float) -> None:
        """Return when any partition grows, or after ``timeout`` virtual seconds.

        A plain future and a timer rather than ``asyncio.wait_for``: on Python
        3.11 ``wait_for`` can swallow a cancellation that races its timeout,
        and a crashed or stopping worker's fetch must always be cancellable.
        """
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._fetch_waiters.append(waiter)
        timer = loop.call_later(timeout, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

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

    # -- network and groups ---------------------------------------------
    def latency(self) -> float:
        low, high = self.config.latency
        return self._rng.uniform(low, high)

    def group(self, group_id: str) -> GroupCoordinator:
        coordinator = self.groups.get(group_id)
        if coordinator is None:
            coordinator = GroupCoordinator(
                group_id,
                self.trace,
                initial_rebalance_delay=self.config.initial_rebalance_delay,
            )
            self.groups[group_id] = coordinator
        return coordinator


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
