"""An in-memory Kafka cluster: topics, partition logs, offsets and groups.

This first version keeps one copy of each log (no brokers or replicas yet);
the protocol-facing parts (group coordination, produce/fetch latency) already
have Kafka's shape so faults can be added without changing the clients.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from detstream._types import TP, ConsumerRecord, RecordMetadata

from .group import GroupCoordinator
from .trace import Trace

Headers = tuple[tuple[str, bytes], ...]


@dataclass
class PartitionLog:
    """An append-only log; offsets are list indices."""

    records: list[ConsumerRecord] = field(default_factory=list)

    @property
    def end_offset(self) -> int:
        return len(self.records)

    def read(self, offset: int, max_records: int) -> list[ConsumerRecord]:
        return self.records[offset : offset + max_records]


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
        self._appended = asyncio.Event()

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
    ) -> RecordMetadata:
        log = self._log(tp)
        offset = log.end_offset
        log.records.append(
            ConsumerRecord(tp.topic, tp.partition, offset, timestamp, key, value, headers)
        )
        self.trace.record(by, "produce", tp=tp, offset=offset, key=key, value=value)
        self.wake_fetchers()
        return RecordMetadata(tp.topic, tp.partition, offset, timestamp)

    def read(self, tp: TP, offset: int, max_records: int) -> list[ConsumerRecord]:
        return self._log(tp).read(offset, max_records)

    def end_offset(self, tp: TP) -> int:
        return self._log(tp).end_offset

    def beginning_offset(self, tp: TP) -> int:
        self._log(tp)
        return 0

    def wake_fetchers(self) -> None:
        """Wake waiting fetches (a consumer resumed or seeked: it may have data now)."""
        self._appended.set()
        self._appended = asyncio.Event()

    async def wait_for_append(self, timeout: float) -> None:
        """Return when any partition grows, or after ``timeout`` virtual seconds."""
        try:
            await asyncio.wait_for(self._appended.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def records(self, topic: str) -> list[ConsumerRecord]:
        """Every record of ``topic``, partition by partition (for final reads)."""
        state = self.topics.get(topic)
        if state is None:
            return []
        return [r for log in state.logs for r in log.records]

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
