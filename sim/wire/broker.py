"""What a simulated broker answers on the Kafka wire, served from the ``SimCluster``.

One ``WireBroker`` per simulated broker (``b1``, ``b2``, ...), at
``b{n}.sim:9092``; the bootstrap address the app names (``localhost:9092``
by default) reaches broker 1. Each request is decoded with aiokafka's struct
for its API and version, handled against the cluster's state (topics,
partition leaders, live brokers) and answered in the same version.

Served so far (``SERVED``, advertised by ApiVersions): ApiVersions v0,
Metadata v5, Produce v5 (plain and idempotent producers: a retried batch is
deduplicated by the cluster; transactional batches are refused), InitProducerId
v0 (without a transactional id), ListOffsets v2-v3, Fetch v5, FindCoordinator
v1, OffsetCommit v3 and OffsetFetch v3 (committed offsets of a group,
checked against its members and generation as the sim driver's are), and
group membership: JoinGroup v2, SyncGroup v1, Heartbeat v1, LeaveGroup v1
(``groups``), and CreateTopics v2 (at the controller, the first live broker) (a long
poll waits for an append; read_committed fetches leave aborted records and
control batches out instead of sending them with the aborted-transaction
list). Every other API is refused by closing the connection, as a broker
does with a request it cannot parse; the rest of issue 12's list
(transactions, the other admin requests) comes in later steps.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import struct
from typing import TYPE_CHECKING, Any

from aiokafka.protocol.admin import ApiVersionResponse_v0, CreateTopicsResponse_v2
from aiokafka.protocol.commit import OffsetCommitResponse_v3, OffsetFetchResponse_v3
from aiokafka.protocol.coordination import FindCoordinatorResponse_v1
from aiokafka.protocol.fetch import FetchResponse_v5
from aiokafka.protocol.metadata import MetadataResponse_v5
from aiokafka.protocol.offset import OffsetResponse_v2, OffsetResponse_v3
from aiokafka.protocol.produce import ProduceResponse_v5
from aiokafka.protocol.transaction import InitProducerIdResponse_v0
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords

from detstream._types import TP, ConsumerRecord
from detstream.clock import wall_time
from detstream.errors import CommitFailedError
from sim.brokers import GROUP_COORDINATOR_TOPIC, TXN_COORDINATOR_TOPIC, coordinator_partition
from sim.idempotence import BatchId

from . import groups
from .codec import Decoded, decode_request, encode_response
from .connection import install

if TYPE_CHECKING:
    from sim.cluster import SimCluster

__all__ = ["PORT", "SERVED", "WireBroker", "serve_cluster"]

logger = logging.getLogger(__name__)

PORT = 9092
#: api key -> (min version, max version) served, as ApiVersions advertises them.
SERVED: dict[int, tuple[int, int]] = {
    18: (0, 0),  # ApiVersions
    3: (5, 5),  # Metadata
    0: (5, 5),  # Produce
    2: (2, 3),  # ListOffsets
    1: (5, 5),  # Fetch
    22: (0, 0),  # InitProducerId (idempotent producers; transactional ids not yet)
    10: (1, 1),  # FindCoordinator
    8: (3, 3),  # OffsetCommit
    9: (3, 3),  # OffsetFetch
    11: (2, 2),  # JoinGroup
    14: (1, 1),  # SyncGroup
    12: (1, 1),  # Heartbeat
    13: (1, 1),  # LeaveGroup
    19: (2, 2),  # CreateTopics
}
CLUSTER_ID = "detstream-sim"
NO_ERROR, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE = 0, 3, 5
TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, NOT_CONTROLLER = 36, 37, 41
COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR = 15, 16
ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID = 22, 25
#: the sim's broker errors by the Kafka error code a response carries.
ERROR_CODES = {
    "NotLeaderForPartitionError": 6, "LeaderNotAvailableError": 5, "RequestTimedOutError": 7,
    "MessageSizeTooLargeError": 10, "UnknownTopicOrPartitionError": 3,
    "TopicAuthorizationFailedError": 29, "OutOfOrderSequenceError": 45,
    "InvalidProducerEpochError": 47, "ProducerFencedError": 90,
}
UNKNOWN_SERVER_ERROR = -1
LATEST, EARLIEST = -1, -2


def host_of(broker: int) -> str:
    return f"b{broker}.sim"


class WireBroker:
    """Simulated broker ``b{number}`` answering Kafka requests."""

    def __init__(self, cluster: SimCluster, number: int, protocols: dict[str, str] | None = None) -> None:
        self.cluster = cluster
        self.number = number
        self.name = f"b{number}"
        #: group id -> its agreed protocol (assignor) name, shared by every broker of the cluster.
        self.protocols: dict[str, str] = {} if protocols is None else protocols

    def latency(self) -> float:
        return self.cluster.latency()

    async def serve(self, message: bytes) -> bytes | None:
        try:
            request = decode_request(message)
        except (ValueError, EOFError) as exc:
            logger.warning("%s: closing a connection over a request it cannot read: %s", self.name, exc)
            return None
        handler = _HANDLERS.get(request.api_key)
        low, high = SERVED.get(request.api_key, (0, -1))
        if handler is None or not low <= request.api_version <= high:
            logger.warning("%s: api key %d version %d is not served yet: closing the connection",
                           self.name, request.api_key, request.api_version)
            return None
        response = handler(self, request)
        if asyncio.iscoroutine(response):
            response = await response
        return encode_response(request, response)

    # -- APIs ----------------------------------------------------------------------------
    def api_versions(self, request: Decoded) -> Any:
        versions = [(key, low, high) for key, (low, high) in sorted(SERVED.items())]
        return ApiVersionResponse_v0(NO_ERROR, versions)

    def metadata(self, request: Decoded) -> Any:
        cluster = self.cluster
        brokers = cluster.brokers
        live = [b for b in sorted(brokers.up) if brokers.registered(b)]
        wanted = request.body.topics
        names = sorted(cluster.topics) if wanted is None else list(wanted)
        topics = [self._topic_metadata(name) for name in names]
        return MetadataResponse_v5(
            0, [(b, host_of(b), PORT, None) for b in live], CLUSTER_ID, live[0] if live else -1, topics,
        )

    def _topic_metadata(self, name: str) -> tuple[Any, ...]:
        state = self.cluster.topics.get(name)
        if state is None:
            return (UNKNOWN_TOPIC_OR_PARTITION, name, False, [])
        brokers = self.cluster.brokers
        partitions = []
        for partition in range(len(state.logs)):
            tp = TP(name, partition)
            leader = brokers.leader(tp)
            replicas = list(brokers.replicas(tp))
            isr = [b for b in replicas if brokers.registered(b)]
            offline = [b for b in replicas if not brokers.registered(b)]
            error = NO_ERROR if leader is not None and brokers.registered(leader) else LEADER_NOT_AVAILABLE
            partitions.append((error, partition, leader if leader is not None else -1, replicas, isr, offline))
        return (NO_ERROR, name, False, partitions)


    # -- Produce ---------------------------------------------------------------------------
    def produce(self, request: Decoded) -> Any:
        topics = []
        for topic, partitions in request.body.topics:
            rows = [self._produce_to(request.client_id, TP(topic, partition), data)
                    for partition, data in partitions]
            topics.append((topic, rows))
        return ProduceResponse_v5(topics, 0)

    def _produce_to(self, client: str, tp: TP, data: bytes) -> tuple[Any, ...]:
        if not self._known(tp):
            return (tp.partition, UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1)
        records = []
        batch_id: BatchId | None = None
        batches = MemoryRecords(data)
        while batches.has_next():
            batch = batches.next_batch()
            if batch is None:
                break
            if getattr(batch, "is_transactional", False):
                return (tp.partition, UNKNOWN_SERVER_ERROR, -1, -1, -1)  # transactions: a later step
            producer_id = getattr(batch, "producer_id", -1)
            if producer_id >= 0 and batch_id is None:  # an idempotent producer's batch
                batch_id = BatchId(producer_id, batch.producer_epoch, batch.base_sequence)
            for record in batch:
                records.append(_Record(record.key, record.value, record.timestamp / 1000.0,
                                       tuple(record.headers)))
        try:
            metas = self.cluster.produce(client, tp, self.number, records, batch=batch_id)
        except Exception as exc:  # a broker error goes back as its code
            return (tp.partition, _code(exc), -1, -1, -1)
        first = metas[0].offset if metas else -1
        return (tp.partition, NO_ERROR, first, -1, self.cluster.beginning_offset(tp))

    # -- InitProducerId -----------------------------------------------------------------------
    def init_producer_id(self, request: Decoded) -> Any:
        if request.body.transactional_id is not None:  # transactions: a later step
            return InitProducerIdResponse_v0(0, UNKNOWN_SERVER_ERROR, -1, -1)
        return InitProducerIdResponse_v0(0, NO_ERROR, self.cluster.transactions.new_producer_id(), 0)

    # -- admin ---------------------------------------------------------------------------------
    def create_topics(self, request: Decoded) -> Any:
        """Create topics as the controller (the first live broker); the configs become the topic's."""
        body = request.body
        brokers = self.cluster.brokers
        controller = next((b for b in sorted(brokers.up) if brokers.registered(b)), None)
        errors: list[tuple[str, int, str | None]] = []
        for topic, partitions, _factor, _assignment, configs in body.create_topic_requests:
            if controller != self.number:
                errors.append((topic, NOT_CONTROLLER, None))
            elif topic in self.cluster.topics:
                errors.append((topic, TOPIC_ALREADY_EXISTS, f"Topic '{topic}' already exists."))
            elif partitions < 1:
                errors.append((topic, INVALID_PARTITIONS, "Number of partitions must be larger than 0."))
            else:
                if not body.validate_only:
                    self.cluster.create_topic(topic, partitions, dict(configs), by=request.client_id)
                errors.append((topic, NO_ERROR, None))
        return CreateTopicsResponse_v2(0, errors)

    # -- coordinators and committed offsets --------------------------------------------------
    def find_coordinator(self, request: Decoded) -> Any:
        key, kind = request.body.coordinator_key, request.body.coordinator_type
        topic = GROUP_COORDINATOR_TOPIC if kind == 0 else TXN_COORDINATOR_TOPIC
        brokers = self.cluster.brokers
        leader = brokers.leader(coordinator_partition(topic, key))
        if leader is None or not brokers.registered(leader):
            return FindCoordinatorResponse_v1(0, COORDINATOR_NOT_AVAILABLE, None, -1, "", -1)
        return FindCoordinatorResponse_v1(0, NO_ERROR, None, leader, host_of(leader), PORT)

    def offset_commit(self, request: Decoded) -> Any:
        body = request.body
        offsets = {TP(topic, p[0]): p[1] for topic, partitions in body.topics for p in partitions}
        code = self.coordinator_error(body.consumer_group)
        if code == NO_ERROR:
            group = self.cluster.group(body.consumer_group)
            member = body.consumer_id or None  # a consumer without group management commits as nobody
            try:
                group.commit(member, body.consumer_group_generation_id, offsets)
            except CommitFailedError:
                code = ILLEGAL_GENERATION if member in group.members else UNKNOWN_MEMBER_ID
        topics = [(topic, [(p[0], code) for p in partitions]) for topic, partitions in body.topics]
        return OffsetCommitResponse_v3(0, topics)

    def offset_fetch(self, request: Decoded) -> Any:
        body = request.body
        code = self.coordinator_error(body.consumer_group)
        committed = self.cluster.group(body.consumer_group).committed if code == NO_ERROR else {}
        wanted = body.topics
        if wanted is None:  # every partition the group has an offset for
            topics: dict[str, list[int]] = {}
            for tp in sorted(committed):
                topics.setdefault(tp.topic, []).append(tp.partition)
            wanted = list(topics.items())
        rows = [(topic, [(p, committed.get(TP(topic, p), -1), "", NO_ERROR) for p in partitions])
                for topic, partitions in wanted]
        return OffsetFetchResponse_v3(0, rows, code)

    def coordinator_error(self, group_id: str) -> int:
        """NOT_COORDINATOR unless this broker leads the group's partition of __consumer_offsets now."""
        brokers = self.cluster.brokers
        leader = brokers.leader(coordinator_partition(GROUP_COORDINATOR_TOPIC, group_id))
        if leader is None or not brokers.registered(leader):
            return COORDINATOR_NOT_AVAILABLE
        return NO_ERROR if leader == self.number and brokers.up[self.number] else NOT_COORDINATOR

    # -- ListOffsets --------------------------------------------------------------------------
    def list_offsets(self, request: Decoded) -> Any:
        read_committed = request.body.isolation_level == 1
        topics = []
        for topic, partitions in request.body.topics:
            rows = []
            for partition, timestamp in partitions:
                tp = TP(topic, partition)
                if not self._known(tp):
                    rows.append((partition, UNKNOWN_TOPIC_OR_PARTITION, -1, -1))
                    continue
                rows.append((partition, NO_ERROR, -1, self._offset_for(tp, timestamp, read_committed)))
            topics.append((topic, rows))
        response = OffsetResponse_v3 if request.api_version == 3 else OffsetResponse_v2
        return response(0, topics)

    def _offset_for(self, tp: TP, timestamp: int, read_committed: bool) -> int:
        cluster = self.cluster
        if timestamp == EARLIEST:
            return cluster.beginning_offset(tp)
        if timestamp == LATEST:
            return cluster.last_stable_offset(tp) if read_committed else cluster.end_offset(tp)
        for record in cluster.log_of(tp).records:  # the first record at or after the timestamp
            if isinstance(record, ConsumerRecord) and record.timestamp * 1000 >= timestamp:
                return int(record.offset)
        return cluster.end_offset(tp)

    # -- Fetch --------------------------------------------------------------------------------
    async def fetch(self, request: Decoded) -> Any:
        body = request.body
        read_committed = body.isolation_level == 1
        wanted = [(TP(topic, p[0]), p[1], p[3]) for topic, partitions in body.topics for p in partitions]
        found = self._read(wanted, read_committed)
        if not any(records for _, records, _ in found) and body.max_wait_time > 0:
            known = [tp for tp, _, _ in wanted if self._known(tp)]
            await self.cluster.wait_for_append(body.max_wait_time / 1000.0, known)
            found = self._read(wanted, read_committed)
        by_topic: dict[str, list[tuple[Any, ...]]] = {}
        for tp, records, error in found:
            cluster = self.cluster
            high = cluster.end_offset(tp) if error == NO_ERROR else -1
            stable = cluster.last_stable_offset(tp) if error == NO_ERROR else -1
            start = cluster.beginning_offset(tp) if error == NO_ERROR else -1
            by_topic.setdefault(tp.topic, []).append(
                (tp.partition, error, high, stable, start, [], _batches(records))
            )
        return FetchResponse_v5(0, list(by_topic.items()))

    def _read(self, wanted: list[tuple[TP, int, int]], read_committed: bool) -> list[tuple[TP, list[Any], int]]:
        found: list[tuple[TP, list[Any], int]] = []
        for tp, offset, _max_bytes in wanted:
            if not self._known(tp):
                found.append((tp, [], UNKNOWN_TOPIC_OR_PARTITION))
                continue
            if self.cluster.brokers.leader(tp) != self.number:
                found.append((tp, [], ERROR_CODES["NotLeaderForPartitionError"]))
                continue
            records, _ = self.cluster.read(tp, offset, MAX_FETCH_RECORDS, read_committed=read_committed)
            found.append((tp, records, NO_ERROR))
        return found

    def _known(self, tp: TP) -> bool:
        state = self.cluster.topics.get(tp.topic)
        return state is not None and 0 <= tp.partition < len(state.logs)


#: records per partition a fetch returns at most.
MAX_FETCH_RECORDS = 500


class _Record:
    """A record of a produce request, as the cluster appends it (no history entry: not a sim client)."""

    __slots__ = ("key", "value", "timestamp", "headers", "write")

    def __init__(self, key: bytes | None, value: bytes | None, timestamp: float, headers: Any) -> None:
        self.key, self.value, self.timestamp, self.headers = key, value, timestamp, headers
        self.write = None


def _code(exc: Exception) -> int:
    return ERROR_CODES.get(type(exc).__name__, UNKNOWN_SERVER_ERROR)


def _batches(records: list[Any]) -> bytes:
    """Records as v2 record batches, one per record (their offsets may have gaps: markers, aborts)."""
    out = bytearray()
    for record in records:
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=0, is_transactional=0, producer_id=-1, producer_epoch=-1,
            base_sequence=-1, batch_size=2**31 - 1,
        )
        builder.append(0, timestamp=int(record.timestamp * 1000), key=record.key, value=record.value,
                       headers=list(record.headers or ()))
        batch = builder.build()
        _BASE_OFFSET.pack_into(batch, 0, record.offset)
        out += batch
    return bytes(out)


_BASE_OFFSET = struct.Struct(">q")


_HANDLERS = {
    18: WireBroker.api_versions, 3: WireBroker.metadata, 0: WireBroker.produce,
    2: WireBroker.list_offsets, 1: WireBroker.fetch, 22: WireBroker.init_producer_id,
    10: WireBroker.find_coordinator, 8: WireBroker.offset_commit, 9: WireBroker.offset_fetch,
    11: groups.join_group, 14: groups.sync_group, 12: groups.heartbeat, 13: groups.leave_group,
    19: WireBroker.create_topics,
}


def serve_cluster(loop: Any, cluster: SimCluster, bootstrap: list[tuple[str, int]]) -> list[WireBroker]:
    """Put the cluster's brokers on ``loop``'s wire, and ``bootstrap`` addresses on broker 1.

    Also makes aiokafka's record timestamps virtual for the run (``virtual_record_timestamps``).
    """
    virtual_record_timestamps()
    protocols: dict[str, str] = {}
    wire = [WireBroker(cluster, number, protocols) for number in range(1, cluster.brokers.count + 1)]
    for broker in wire:
        install(loop, (host_of(broker.number), PORT), functools.partial(_same, broker))
    for address in bootstrap:
        install(loop, address, functools.partial(_same, wire[0]))
    return wire


def _same(broker: WireBroker) -> WireBroker:
    return broker


def virtual_record_timestamps() -> None:
    """aiokafka's producer stamps records from the virtual wall clock while the sandbox is active.

    A record sent without ``timestamp_ms`` is stamped by aiokafka's record
    batch builder, a C extension reading the real clock: the same seed would
    give other timestamps on every run. The batch builder is given the
    virtual time instead, the way ``time.time()`` is virtual under the sandbox.
    """
    from aiokafka.producer.message_accumulator import BatchBuilder

    from sim.sandbox import Sandbox

    sandbox = Sandbox.active()
    if sandbox is None:
        return
    real_append = BatchBuilder.append

    def append(self: Any, *, timestamp: int | None, key: Any, value: Any, headers: Any = ()) -> Any:
        if timestamp is None:
            timestamp = round(wall_time() * 1000)
        return real_append(self, timestamp=timestamp, key=key, value=value, headers=list(headers))

    sandbox.patch(BatchBuilder, "append", append)
