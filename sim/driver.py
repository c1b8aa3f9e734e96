"""The ``sim://`` transport: detstream's clients talking to a SimCluster.

Each request pays a latency drawn from the cluster's seeded network stream;
per-partition order is kept as Kafka's idempotent producer keeps it. The
consumer runs the group protocol in a background task, as aiokafka does, and
calls the engine's rebalance listener around every generation.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import random
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from detstream._types import TP, ConsumerRecord, RecordMetadata
from detstream.assignor import copartitioned_assignment
from detstream.clock import wall_time
from detstream.partitioner import partition_for_key
from detstream.transport.base import Headers, RebalanceListener

from .cluster import SimCluster
from .group import GroupProtocolError, UnknownMemberIdError
from .trace import Trace

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
    ):
        self.url = url
        self._cluster = cluster
        self.name = name
        self.link = Link(name)

    def sever(self) -> None:
        """The process died: nothing this transport's clients do reaches the cluster again."""
        self.link.up = False

    @property
    def cluster(self) -> SimCluster:
        if self._cluster is None:
            self._cluster = current_cluster.get() or standalone_cluster()
        return self._cluster

    def create_producer(self, *, client_id: str) -> SimProducer:
        return SimProducer(self.cluster, self.name, self.link)

    def create_consumer(self, *, client_id: str, group_id: str | None) -> SimConsumer:
        return SimConsumer(self.cluster, self.name, group_id=group_id, link=self.link)

    def create_admin(self, *, client_id: str) -> SimAdmin:
        return SimAdmin(self.cluster, self.name)


class Link:
    """A client process's connection to the cluster; down once the process crashed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True

    def check(self) -> None:
        if not self.up:
            raise ConnectionError(f"{self.name} has crashed: its requests never reach the cluster")


class SimAdmin:
    def __init__(self, cluster: SimCluster, name: str) -> None:
        self._cluster = cluster
        self._name = name

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> bool:
        await asyncio.sleep(self._cluster.latency())
        return self._cluster.create_topic(name, partitions, config, by=self._name)

    async def partitions_for(self, name: str) -> int | None:
        return self._cluster.partitions_for(name, by=self._name)


class SimProducer:
    """Sends in per-partition batches; keyed records use Kafka's murmur2.

    Like a Kafka producer, records bound for one partition queue up while a
    request for that partition is in flight and go out together in the next
    one: order per partition is kept, and a burst costs one round trip.
    """

    def __init__(self, cluster: SimCluster, name: str, link: Link | None = None) -> None:
        self._cluster = cluster
        self._name = name
        self._link = link or Link(name)
        self._queued: dict[TP, list[_Pending]] = {}
        self._senders: dict[TP, asyncio.Task[None]] = {}
        self._round_robin = itertools.count()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        senders = [t for _, t in sorted(self._senders.items()) if not t.done()]
        if senders:
            await asyncio.gather(*senders)

    async def partitions_for(self, topic: str) -> int:
        count = self._cluster.partitions_for(topic, by=self._name, create=True)
        if count is None:
            raise KeyError(f"topic {topic!r} does not exist and auto-creation is disabled")
        return count

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> RecordMetadata:
        count = await self.partitions_for(topic)
        if partition is None:
            partition = (
                partition_for_key(key, count) if key is not None else next(self._round_robin) % count
            )
        tp = TP(topic, partition)
        loop = asyncio.get_running_loop()
        stamp = wall_time() if timestamp is None else timestamp
        future: asyncio.Future[RecordMetadata] = loop.create_future()
        self._queued.setdefault(tp, []).append(_Pending(key, value, stamp, headers, future))
        sender = self._senders.get(tp)
        if sender is None or sender.done():
            self._senders[tp] = loop.create_task(self._drain(tp), name=f"{self._name}-send-{tp}")
        return await future

    async def _drain(self, tp: TP) -> None:
        """Send what is queued for ``tp``, one request per batch, until nothing is left."""
        while self._queued.get(tp):
            batch, self._queued[tp] = self._queued[tp], []
            await asyncio.sleep(self._cluster.latency())
            if not self._link.up:
                return  # the process died with these records in its buffer
            for item in batch:
                meta = self._cluster.append(
                    self._name, tp, key=item.key, value=item.value,
                    timestamp=item.timestamp, headers=item.headers,
                )
                if not item.future.done():
                    item.future.set_result(meta)


class _Pending(NamedTuple):
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: Headers
    future: asyncio.Future[RecordMetadata]


class SimConsumer:
    """A consumer; group-managed after ``subscribe``, manual after ``assign``."""

    max_records = 500
    heartbeat_interval = 3.0
    session_timeout = 60.0
    rebalance_timeout = 60.0

    def __init__(
        self, cluster: SimCluster, name: str, *, group_id: str | None, link: Link | None = None
    ) -> None:
        self._link = link or Link(name)
        self._cluster = cluster
        self._name = name
        self._group_id = group_id
        self._topics: frozenset[str] = frozenset()
        self._listener: RebalanceListener | None = None
        self._assignment: set[TP] = set()
        self._paused: set[TP] = set()
        self._positions: dict[TP, int] = {}
        self._member_id: str | None = None
        self._generation = -1
        self._needs_join = False
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        if self._group_id is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._coordinate(), name=f"{self._name}-group-coordination"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._group_id is not None and self._member_id is not None and self._link.up:
            self._cluster.group(self._group_id).leave(self._member_id)
            self._member_id = None
        self._assignment = set()

    # -- subscription -------------------------------------------------------
    def subscribe(self, topics: Iterable[str], listener: RebalanceListener) -> None:
        topics = frozenset(topics)
        self._listener = listener
        if topics != self._topics:
            self._topics = topics
            self._needs_join = True
            self._wakeup.set()

    def assign(self, tps: Iterable[TP]) -> None:
        self._assignment = set(tps)
        for tp in self._assignment:
            self._positions.setdefault(tp, self._cluster.beginning_offset(tp))
        self._wakeup.set()

    def assignment(self) -> set[TP]:
        return set(self._assignment)

    @property
    def generation(self) -> int:
        return self._generation

    # -- fetching -----------------------------------------------------------
    async def getmany(self, timeout: float) -> dict[TP, list[ConsumerRecord]]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            batch = self._read_available()
            if batch:
                await asyncio.sleep(self._cluster.latency())
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {}
            await self._cluster.wait_for_append(min(remaining, self.heartbeat_interval))

    def _read_available(self) -> dict[TP, list[ConsumerRecord]]:
        batch: dict[TP, list[ConsumerRecord]] = {}
        for tp in sorted(self._assignment - self._paused):
            records = self._cluster.read(tp, self._positions[tp], self.max_records)
            if records:
                batch[tp] = records
                self._positions[tp] = records[-1].offset + 1
        return batch

    def pause(self, *tps: TP) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TP) -> None:
        self._paused.difference_update(tps)
        self._cluster.wake_fetchers()

    def seek(self, tp: TP, offset: int) -> None:
        self._positions[tp] = offset
        self._cluster.wake_fetchers()

    def position(self, tp: TP) -> int:
        return self._positions[tp]

    # -- offsets ------------------------------------------------------------
    async def commit(self, offsets: Mapping[TP, int]) -> None:
        await asyncio.sleep(self._cluster.latency())
        self._link.check()
        if self._group_id is None:
            raise ValueError("commit needs a consumer with a group_id")
        member = self._member_id if self._topics else None
        self._cluster.group(self._group_id).commit(member, self._generation, offsets)

    async def committed(self, tp: TP) -> int | None:
        if self._group_id is None:
            return None
        return self._cluster.group(self._group_id).committed.get(tp)

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        return {tp: self._cluster.beginning_offset(tp) for tp in tps}

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        return {tp: self._cluster.end_offset(tp) for tp in tps}

    # -- group membership ---------------------------------------------------
    async def _coordinate(self) -> None:
        coordinator = self._cluster.group(self._group_id or "")
        while True:
            if self._needs_join and self._topics:
                await self._rejoin()
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.heartbeat_interval)
            except asyncio.TimeoutError:
                pass
            if self._member_id is None or self._needs_join:
                continue
            self._link.check()
            try:
                coordinator.heartbeat(self._member_id, self._generation)
            except UnknownMemberIdError:
                self._member_id = None
                self._needs_join = True
            except GroupProtocolError:
                self._needs_join = True

    async def _rejoin(self) -> None:
        assert self._listener is not None
        coordinator = self._cluster.group(self._group_id or "")
        revoked, self._assignment = self._assignment, set()
        await self._listener.on_partitions_revoked(revoked)
        while True:
            self._needs_join = False
            try:
                joined = await coordinator.join(
                    self._member_id,
                    client_id=self._name,
                    subscription=self._topics,
                    session_timeout=self.session_timeout,
                    rebalance_timeout=self.rebalance_timeout,
                )
                self._member_id = joined.member_id
                plan = None
                if joined.leader_id == joined.member_id:
                    plan = self._plan_assignment(joined.members)
                assigned = await coordinator.sync(joined.member_id, joined.generation, plan)
            except UnknownMemberIdError:
                self._member_id = None
                continue
            except GroupProtocolError:
                continue
            break
        self._generation = joined.generation
        await self._take_assignment(assigned)

    def _plan_assignment(self, members: Mapping[str, frozenset[str]]) -> dict[str, set[TP]]:
        counts = {}
        for topic in sorted({t for subs in members.values() for t in subs}):
            count = self._cluster.partitions_for(topic, by=self._name)
            if count:
                counts[topic] = count
        return copartitioned_assignment(sorted(members), members, counts)

    async def _take_assignment(self, assigned: set[TP]) -> None:
        assert self._listener is not None
        coordinator = self._cluster.group(self._group_id or "")
        for tp in sorted(assigned):
            committed = coordinator.committed.get(tp)
            self._positions[tp] = (
                committed if committed is not None else self._cluster.beginning_offset(tp)
            )
        self._paused &= assigned
        self._assignment = set(assigned)
        await self._listener.on_partitions_assigned(set(assigned))
