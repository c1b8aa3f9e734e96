"""What a simulated broker answers on the Kafka wire, served from the ``SimCluster``.

One ``WireBroker`` per simulated broker (``b1``, ``b2``, ...), at
``b{n}.sim:9092``; the bootstrap address the app names (``localhost:9092``
by default) reaches broker 1. Each request is decoded with aiokafka's struct
for its API and version, handled against the cluster's state (topics,
partition leaders, live brokers) and answered in the same version.

Served (``SERVED``, advertised by ApiVersions) in the versions aiokafka 0.14
negotiates with Kafka 4 (the highest of its own structs that Kafka serves):
ApiVersions v0, Metadata v5, Produce v5-v7 (plain, idempotent and
transactional producers: a retried batch is deduplicated by the cluster),
ListOffsets v2-v3, Fetch v5-v11 (a long poll waits for an append; transaction
markers go out as control batches, and a read_committed fetch names the
aborted transactions its records belong to, so aiokafka's own filter drops
them; no fetch sessions: aiokafka sends full fetches), FindCoordinator v1,
OffsetCommit v3 and OffsetFetch v3 and v7 (committed offsets of a group,
checked against its members and generation as the sim driver's are; v7's
``require_stable`` answers UNSTABLE_OFFSET_COMMIT for a partition whose
offsets an open transaction holds, KIP-447), group
membership: JoinGroup v2-v5 (from v4 a member first gets its id with
MEMBER_ID_REQUIRED, KIP-394), SyncGroup v1-v3, Heartbeat v1, LeaveGroup v1
(``groups``), transactions: InitProducerId v0, AddPartitionsToTxn v0,
AddOffsetsToTxn v0, EndTxn v0 (at the transaction coordinator) and
TxnOffsetCommit v0 and v3 (at the group coordinator; v0 carries no member
or generation, so only the producer epoch fences it, as on Kafka; v3,
KIP-447, names the member, checked as a plain commit's is), and topic
administration: CreateTopics v2-v3, DeleteTopics v1-v3 and DescribeConfigs
v1-v2 (``admin``). Every other API is refused by closing the connection, as
a broker does with a request it cannot parse.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import struct
from typing import TYPE_CHECKING, Any, NamedTuple

from aiokafka.protocol.admin import ApiVersionResponse_v0
from aiokafka.protocol.commit import OffsetCommitResponse_v3, OffsetFetchResponse_v3
from aiokafka.protocol.coordination import FindCoordinatorResponse_v1
from aiokafka.protocol.fetch import FetchResponse_v5, FetchResponse_v7, FetchResponse_v11
from aiokafka.protocol.metadata import MetadataResponse_v5
from aiokafka.protocol.offset import OffsetResponse_v2, OffsetResponse_v3
from aiokafka.protocol.produce import ProduceResponse_v5
from aiokafka.protocol.transaction import (
    AddOffsetsToTxnResponse_v0,
    AddPartitionsToTxnResponse_v0,
    EndTxnResponse_v0,
    InitProducerIdResponse_v0,
    TxnOffsetCommitResponse_v0,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c

from detstream._types import TP, ConsumerRecord
from detstream.clock import wall_time
from detstream.errors import CommitFailedError, FencedInstanceIdError, ProducerFencedError
from detstream.transport.base import GroupMetadata
from detstream.transport.kafka.member_offsets import TxnOffsetCommitResponse_v3
from detstream.transport.kafka.stable_offsets import UNSTABLE_OFFSET_COMMIT, OffsetFetchResponse_v7
from sim.brokers import GROUP_COORDINATOR_TOPIC, TXN_COORDINATOR_TOPIC, coordinator_partition
from sim.cluster import ControlMarker, PartitionLog
from sim.idempotence import BatchId
from sim.producer import record_size

from . import admin, groups
from .codec import Decoded, decode_request, encode_response
from .connection import install
from .network import actor_of

if TYPE_CHECKING:
    from sim.cluster import SimCluster

    from .network import WireNetwork

__all__ = ["PORT", "SERVED", "WireBroker", "serve_cluster"]

logger = logging.getLogger(__name__)

PORT = 9092
#: api key -> (min version, max version) served, as ApiVersions advertises them.
SERVED: dict[int, tuple[int, int]] = {
    18: (0, 0),  # ApiVersions
    3: (5, 5),  # Metadata
    0: (5, 7),  # Produce
    2: (2, 3),  # ListOffsets
    1: (5, 11),  # Fetch
    22: (0, 0),  # InitProducerId
    24: (0, 0),  # AddPartitionsToTxn
    25: (0, 0),  # AddOffsetsToTxn
    26: (0, 0),  # EndTxn
    28: (0, 3),  # TxnOffsetCommit (v3: naming the committing member, KIP-447; no v1-v2 client)
    10: (1, 1),  # FindCoordinator
    8: (3, 7),  # OffsetCommit (v7: a static member's, naming its group instance)
    9: (3, 7),  # OffsetFetch (v7: require_stable, KIP-447; no v4-v6 client)
    11: (2, 5),  # JoinGroup
    14: (1, 3),  # SyncGroup
    12: (1, 3),  # Heartbeat (v3: a static member's, naming its group instance)
    13: (1, 1),  # LeaveGroup
    19: (2, 3),  # CreateTopics
    20: (1, 3),  # DeleteTopics
    32: (1, 2),  # DescribeConfigs
}
CLUSTER_ID = "detstream-sim"
NO_ERROR, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE = 0, 3, 5
TOPIC_AUTHORIZATION_FAILED = 29
COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR = 15, 16
ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID = 22, 25, 82
INVALID_PRODUCER_EPOCH, INVALID_PRODUCER_ID_MAPPING = 47, 49
#: the sim's broker errors by the Kafka error code a response carries.
ERROR_CODES = {
    "NotLeaderForPartitionError": 6, "LeaderNotAvailableError": 5, "RequestTimedOutError": 7,
    "MessageSizeTooLargeError": 10, "UnknownTopicOrPartitionError": 3,
    "TopicAuthorizationFailedError": 29, "OutOfOrderSequenceError": 45,
    # a fenced producer: PRODUCER_FENCED (90) exists only in versions newer than aiokafka's
    "InvalidProducerEpochError": 47, "ProducerFencedError": INVALID_PRODUCER_EPOCH,
}
UNKNOWN_SERVER_ERROR = -1
LATEST, EARLIEST = -1, -2


def _committing_member(body: Any) -> GroupMetadata | None:
    """The member a TxnOffsetCommit v3 names; None if it names none (generation -1, no id)."""
    if body.generation_id < 0 and not body.member_id and body.group_instance_id is None:
        return None
    return GroupMetadata(body.group_id, body.generation_id, body.member_id, body.group_instance_id)


def host_of(broker: int) -> str:
    return f"b{broker}.sim"


class WireBroker:
    """Simulated broker ``b{number}`` answering Kafka requests."""

    def __init__(
        self, cluster: SimCluster, number: int, protocols: dict[str, str] | None = None,
        network: WireNetwork | None = None,
    ) -> None:
        self.cluster = cluster
        self.number = number
        self.name = f"b{number}"
        #: group id -> its agreed protocol (assignor) name, shared by every broker of the cluster.
        self.protocols: dict[str, str] = {} if protocols is None else protocols
        #: the client hosts' network faults (None: no host has any).
        self.network = network

    def latency(self) -> float:
        return self.cluster.latency()

    def held(self, client: str | None, what: str, message: bytes = b"") -> float:
        if self.network is None:
            return 0.0
        held = self.network.delay(client, what)
        return held if held < 0 else held + self.network.group_held(client, message)

    def in_flight(self, client: str | None) -> float:
        if self.network is None:
            return 0.0
        conditions = self.network.conditions_of(client)
        return 0.0 if conditions is None else conditions.extra(asyncio.get_running_loop().time())

    def discarded(self, client: str | None) -> None:
        self.cluster.stats["request-discarded"] += 1
        self.cluster.trace.record(actor_of(client) if client else "client", "request-discarded")

    def alive(self) -> bool:
        return bool(self.cluster.brokers.up.get(self.number, False))

    def denied(self, request: Decoded, what: str, topics: list[str]) -> bool:
        """Whether a ``refuse`` (produce, offset lookups) or ``deny_reads`` (fetch, commit) fault
        of the sender's host refuses this request now: traced ``{what}-denied`` as the sim
        driver's, answered TOPIC_AUTHORIZATION_FAILED, not retriable."""
        conditions = None if self.network is None else self.network.conditions_of(request.owner)
        if conditions is None or not topics:
            return False
        now = asyncio.get_running_loop().time()
        reads = what in ("fetch", "commit")
        if not (conditions.denying_reads(now) if reads else conditions.refusing(now)):
            return False
        self.cluster.stats[f"{what}-denied"] += 1
        self.cluster.trace.record(actor_of(request.owner or ""), f"{what}-denied", topics=sorted(set(topics)))
        return True

    async def serve(self, message: bytes, client: str | None = None) -> bytes | None:
        try:
            request = dataclasses.replace(decode_request(message), owner=client)
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
        names = [topic for topic, _ in request.body.topics]
        if self.denied(request, "produce", names):
            return ProduceResponse_v5(
                [(topic, [(p, TOPIC_AUTHORIZATION_FAILED, -1, -1, -1) for p, _ in partitions])
                 for topic, partitions in request.body.topics], 0,
            )
        topics = []
        for topic, partitions in request.body.topics:
            rows = [self._produce_to(request.client_id, TP(topic, partition), data,
                                     request.body.transactional_id)
                    for partition, data in partitions]
            topics.append((topic, rows))
        return ProduceResponse_v5(topics, 0)  # v6 and v7 share v5's layout

    def _produce_to(
        self, client: str, tp: TP, data: bytes, transactional_id: str | None
    ) -> tuple[Any, ...]:
        if not self._known(tp):
            return (tp.partition, UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1)
        records = []
        batch_id: BatchId | None = None
        transaction: tuple[str, int] | None = None
        batches = MemoryRecords(data)
        while batches.has_next():
            batch = batches.next_batch()
            if batch is None:
                break
            producer_id = getattr(batch, "producer_id", -1)
            if producer_id >= 0 and batch_id is None:  # an idempotent producer's batch
                batch_id = BatchId(producer_id, batch.producer_epoch, batch.base_sequence)
            if getattr(batch, "is_transactional", False) and transaction is None:
                transaction = (transactional_id or "", batch.producer_epoch)
            for record in batch:
                records.append(_Record(record.key, record.value, record.timestamp / 1000.0,
                                       tuple(record.headers)))
        try:
            metas = self.cluster.produce(
                client, tp, self.number, records, batch=batch_id, transaction=transaction
            )
        except Exception as exc:  # a broker error goes back as its code
            return (tp.partition, _code(exc), -1, -1, -1)
        first = metas[0].offset if metas else -1
        return (tp.partition, NO_ERROR, first, -1, self.cluster.beginning_offset(tp))

    # -- transactions -------------------------------------------------------------------------
    def init_producer_id(self, request: Decoded) -> Any:
        """A producer id: a fresh one (idempotent producer), or its transactional id's, epoch bumped."""
        name = request.body.transactional_id
        transactions = self.cluster.transactions
        if name is None:
            return InitProducerIdResponse_v0(0, NO_ERROR, transactions.new_producer_id(), 0)
        code = self.coordinator_error(name, TXN_COORDINATOR_TOPIC)
        if code != NO_ERROR:
            return InitProducerIdResponse_v0(0, code, -1, -1)
        producer_id, epoch = transactions.init_producer(
            name, timeout=request.body.transaction_timeout_ms / 1000.0
        )
        return InitProducerIdResponse_v0(0, NO_ERROR, producer_id, epoch)

    def add_partitions_to_txn(self, request: Decoded) -> Any:
        body = request.body
        tps = [TP(topic, p) for topic, partitions in body.topics for p in partitions]
        code = self._txn_error(body.transactional_id, body.producer_id)
        if code == NO_ERROR and not all(self._known(tp) for tp in tps):
            code = UNKNOWN_TOPIC_OR_PARTITION
        if code == NO_ERROR:
            code = self._fenced_as_code(
                self.cluster.transactions.add_partitions, body.transactional_id, body.producer_epoch, tps
            )
        rows = [(topic, [(p, code) for p in partitions]) for topic, partitions in body.topics]
        return AddPartitionsToTxnResponse_v0(0, rows)

    def add_offsets_to_txn(self, request: Decoded) -> Any:
        body = request.body
        code = self._txn_error(body.transactional_id, body.producer_id)
        if code == NO_ERROR:
            code = self._fenced_as_code(
                self.cluster.transactions.add_group, body.transactional_id, body.producer_epoch,
                body.group_id,
            )
        return AddOffsetsToTxnResponse_v0(0, code)

    def txn_offset_commit(self, request: Decoded) -> Any:
        """At the group coordinator: the offsets join the producer's transaction.

        v3 (KIP-447) names the committing member, checked as a plain
        commit's is; v0, or v3 with no member and generation -1, only by
        the producer's epoch (as Kafka does, for older clients).
        """
        body = request.body
        flexible = request.api_version >= 3
        offsets = {TP(topic[0], p[0]): p[1] for topic in body.topics for p in topic[1]}
        code = self.coordinator_error(body.group_id)
        if code == NO_ERROR:
            member = _committing_member(body) if flexible else None
            if member is None:
                code = self._fenced_as_code(
                    self.cluster.transactions.add_unchecked_offsets, body.transactional_id,
                    body.producer_epoch, body.group_id, offsets,
                )
            else:
                code = self._fenced_as_code(
                    self.cluster.transactions.add_offsets, body.transactional_id,
                    body.producer_epoch, offsets, member,
                )
        if flexible:
            tagged: list[Any] = [(topic[0], [(p[0], code, {}) for p in topic[1]], {}) for topic in body.topics]
            return TxnOffsetCommitResponse_v3(0, tagged, {})
        rows = [(topic, [(p[0], code) for p in partitions]) for topic, partitions in body.topics]
        return TxnOffsetCommitResponse_v0(0, rows)

    def end_txn(self, request: Decoded) -> Any:
        body = request.body
        code = self._txn_error(body.transactional_id, body.producer_id)
        if code == NO_ERROR:
            code = self._fenced_as_code(
                functools.partial(self.cluster.transactions.end, commit=body.transaction_result),
                body.transactional_id, body.producer_epoch,
            )
        return EndTxnResponse_v0(0, code)

    def _txn_error(self, name: str, producer_id: int) -> int:
        """Not this broker's id to coordinate, or a producer id the transactional id does not hold."""
        code = self.coordinator_error(name, TXN_COORDINATOR_TOPIC)
        if code != NO_ERROR:
            return code
        state = self.cluster.transactions.ids.get(name)
        return NO_ERROR if state is not None and state.producer_id == producer_id else INVALID_PRODUCER_ID_MAPPING

    def _fenced_as_code(self, call: Any, *args: Any) -> int:
        """``call``'s refusal as a Kafka error code: a fenced producer, or a replaced member."""
        try:
            call(*args)
        except ProducerFencedError:
            return INVALID_PRODUCER_EPOCH
        except FencedInstanceIdError:
            return FENCED_INSTANCE_ID
        except CommitFailedError:
            return ILLEGAL_GENERATION if args and self._stale_member(args[-1]) else UNKNOWN_MEMBER_ID
        return NO_ERROR

    def _stale_member(self, member: Any) -> bool:
        """Whether ``member`` (a ``GroupMetadata``) is in its group, at another generation."""
        if not isinstance(member, GroupMetadata):
            return False
        return member.member_id in self.cluster.group(member.group_id).members

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
        if code == NO_ERROR and self.denied(request, "commit", [topic for topic, _ in body.topics]):
            code = TOPIC_AUTHORIZATION_FAILED
        if code == NO_ERROR:
            group = self.cluster.group(body.consumer_group)
            member = body.consumer_id or None  # a consumer without group management commits as nobody
            instance = body.group_instance_id if request.api_version >= 7 else None
            try:
                group.commit(member, body.consumer_group_generation_id, offsets, instance)
            except FencedInstanceIdError:
                code = FENCED_INSTANCE_ID
            except CommitFailedError:
                code = ILLEGAL_GENERATION if member in group.members else UNKNOWN_MEMBER_ID
        topics = [(topic, [(p[0], code) for p in partitions]) for topic, partitions in body.topics]
        return OffsetCommitResponse_v3(0, topics)

    def offset_fetch(self, request: Decoded) -> Any:
        """Committed offsets; a group-level error is the top-level code with no partitions (v2+).

        v7 with ``require_stable`` (KIP-447): a partition whose offsets an
        open transaction holds is answered UNSTABLE_OFFSET_COMMIT, offset -1.
        """
        body = request.body
        flexible = request.api_version >= 7
        group_id = body.group_id if flexible else body.consumer_group
        code = self.coordinator_error(group_id)
        if code != NO_ERROR:
            return OffsetFetchResponse_v7(0, [], code, {}) if flexible else OffsetFetchResponse_v3(0, [], code)
        committed = self.cluster.group(group_id).committed
        wanted = None if body.topics is None else [(topic[0], topic[1]) for topic in body.topics]
        if wanted is None:  # every partition the group has an offset for
            topics: dict[str, list[int]] = {}
            for tp in sorted(committed):
                topics.setdefault(tp.topic, []).append(tp.partition)
            wanted = list(topics.items())
        unstable: set[TP] = set()
        if flexible and body.require_stable:
            every = [TP(topic, p) for topic, partitions in wanted for p in partitions]
            unstable = set(self.cluster.transactions.pending_offsets(group_id, every))
        if not flexible:
            rows = [(topic, [(p, committed.get(TP(topic, p), -1), "", NO_ERROR) for p in partitions])
                    for topic, partitions in wanted]
            return OffsetFetchResponse_v3(0, rows, code)
        tagged: list[Any] = [
            (topic, [(p, -1, -1, "", UNSTABLE_OFFSET_COMMIT, {}) if TP(topic, p) in unstable
                     else (p, committed.get(TP(topic, p), -1), -1, "", NO_ERROR, {}) for p in partitions], {})
            for topic, partitions in wanted
        ]
        return OffsetFetchResponse_v7(0, tagged, code, {})

    def coordinator_error(self, key: str, topic: str = GROUP_COORDINATOR_TOPIC) -> int:
        """NOT_COORDINATOR unless this broker leads ``key``'s partition of ``topic`` now.

        ``__consumer_offsets`` for a group, ``__transaction_state`` for a transactional id.
        """
        brokers = self.cluster.brokers
        leader = brokers.leader(coordinator_partition(topic, key))
        if leader is None or not brokers.registered(leader):
            return COORDINATOR_NOT_AVAILABLE
        return NO_ERROR if leader == self.number and brokers.up[self.number] else NOT_COORDINATOR

    # -- ListOffsets --------------------------------------------------------------------------
    def list_offsets(self, request: Decoded) -> Any:
        read_committed = request.body.isolation_level == 1
        denied = self.denied(request, "offset-lookup", [topic for topic, _ in request.body.topics])
        topics = []
        for topic, partitions in request.body.topics:
            rows = []
            if denied:
                topics.append((topic, [(p, TOPIC_AUTHORIZATION_FAILED, -1, -1) for p, _ in partitions]))
                continue
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
        # partition, [current leader epoch (v9+),] fetch offset, log start offset, max bytes
        wanted = [(TP(topic, p[0]), p[-3], p[-1]) for topic, partitions in body.topics for p in partitions]
        if self.denied(request, "fetch", [topic for topic, _ in body.topics]):
            return _fetch_response(request.api_version, [
                (topic, [(p[0], TOPIC_AUTHORIZATION_FAILED, -1, -1, -1, [], b"") for p in partitions])
                for topic, partitions in body.topics
            ])
        found = self._read(wanted, read_committed)
        if not any(read.records for _, read, _ in found) and body.max_wait_time > 0:
            known = [tp for tp, _, _ in wanted if self._known(tp)]
            await self.cluster.wait_for_append(body.max_wait_time / 1000.0, known)
            found = self._read(wanted, read_committed)
        by_topic: dict[str, list[tuple[Any, ...]]] = {}
        for tp, read, error in found:
            cluster = self.cluster
            high = cluster.end_offset(tp) if error == NO_ERROR else -1
            stable = cluster.last_stable_offset(tp) if error == NO_ERROR else -1
            start = cluster.beginning_offset(tp) if error == NO_ERROR else -1
            batches = _batches(read.entries, cluster.log_of(tp)) if read.entries else b""
            by_topic.setdefault(tp.topic, []).append(
                (tp.partition, error, high, stable, start, read.aborted, batches)
            )
        return _fetch_response(request.api_version, list(by_topic.items()))

    def _read(self, wanted: list[tuple[TP, int, int]], read_committed: bool) -> list[tuple[TP, _Read, int]]:
        found: list[tuple[TP, _Read, int]] = []
        for tp, offset, _max_bytes in wanted:
            if not self._known(tp):
                found.append((tp, _NOTHING, UNKNOWN_TOPIC_OR_PARTITION))
                continue
            if self.cluster.brokers.leader(tp) != self.number:
                found.append((tp, _NOTHING, ERROR_CODES["NotLeaderForPartitionError"]))
                continue
            read = _read_log(self.cluster.log_of(tp), offset, read_committed)
            found.append((tp, read, NO_ERROR))
        return found

    def _known(self, tp: TP) -> bool:
        state = self.cluster.topics.get(tp.topic)
        return state is not None and 0 <= tp.partition < len(state.logs)


#: records per partition a fetch returns at most.
MAX_FETCH_RECORDS = 500


class _Record:
    """A record of a produce request, as the cluster appends it (no history entry: not a sim client)."""

    __slots__ = ("key", "value", "timestamp", "headers", "write", "size")

    def __init__(self, key: bytes | None, value: bytes | None, timestamp: float, headers: Any) -> None:
        self.key, self.value, self.timestamp, self.headers = key, value, timestamp, headers
        self.write = None
        self.size = record_size(key, value, headers)


def _fetch_response(version: int, topics: list[tuple[str, list[tuple[Any, ...]]]]) -> Any:
    """Fetch v5-v11: v7 adds a top-level error and the fetch session's id (no sessions here:
    aiokafka sends full fetches), v11 each partition's preferred read replica (none: -1)."""
    if version < 7:
        return FetchResponse_v5(0, topics)
    if version < 11:
        return FetchResponse_v7(0, NO_ERROR, 0, topics)
    with_replica = [(t, [(*p[:6], -1, p[6]) for p in parts]) for t, parts in topics]
    return FetchResponse_v11(0, NO_ERROR, 0, with_replica)


def _code(exc: Exception) -> int:
    return ERROR_CODES.get(type(exc).__name__, UNKNOWN_SERVER_ERROR)


class _Read(NamedTuple):
    """What a fetch takes from one partition's log."""

    #: records and transaction markers, in offset order.
    entries: list[ConsumerRecord | ControlMarker]
    #: (producer id, first offset) of each aborted transaction the entries show records of.
    aborted: list[tuple[int, int]]
    #: how many of the entries are records (a fetch of markers only still long-polls).
    records: int


_NOTHING = _Read([], [], 0)


def _read_log(log: PartitionLog, offset: int, read_committed: bool) -> _Read:
    """Entries from ``offset``: up to the last stable offset for read_committed, else the end.

    Aborted records are sent, as Kafka does; a read_committed fetch names
    their transactions so that the client leaves them out, and the abort
    marker tells it where each one ends.
    """
    position = max(offset, log.start_offset)
    limit = log.last_stable_offset if read_committed else log.end_offset
    entries: list[ConsumerRecord | ControlMarker] = []
    aborted: list[tuple[int, int]] = []
    aborting: set[int] = set()
    records = 0
    while position < limit and len(entries) < MAX_FETCH_RECORDS:
        entry = log.records[position]
        position += 1
        if entry is None:
            continue  # a hole the cleaner left
        if isinstance(entry, ControlMarker):
            if not entry.commit:
                aborting.discard(entry.producer_id)
        else:
            records += 1
            producer = log.txn_producers.get(entry.offset)
            if read_committed and entry.offset in log.aborted and producer not in aborting:
                assert producer is not None, "an aborted record is a transaction's"
                aborted.append((producer, entry.offset))
                aborting.add(producer)
        entries.append(entry)
    return _Read(entries, aborted, records)


def _batches(entries: list[ConsumerRecord | ControlMarker], log: PartitionLog) -> bytes:
    """Entries as v2 record batches, one per entry (offsets may have gaps: the cleaner's holes).

    A transaction's record goes in a transactional batch of its producer; a
    marker in a control batch (attributes bit 5) whose one record says
    commit or abort.
    """
    out = bytearray()
    for entry in entries:
        if isinstance(entry, ControlMarker):
            out += _control_batch(entry)
            continue
        producer = log.txn_producers.get(entry.offset, -1)
        builder = DefaultRecordBatchBuilder(
            magic=2, compression_type=0, is_transactional=int(producer >= 0), producer_id=producer,
            producer_epoch=-1 if producer < 0 else 0, base_sequence=-1, batch_size=2**31 - 1,
        )
        builder.append(0, timestamp=int(entry.timestamp * 1000), key=entry.key, value=entry.value,
                       headers=list(entry.headers or ()))
        batch = builder.build()
        _BASE_OFFSET.pack_into(batch, 0, entry.offset)
        out += batch
    return bytes(out)


def _control_batch(marker: ControlMarker) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=1, producer_id=marker.producer_id,
        producer_epoch=0, base_sequence=-1, batch_size=2**31 - 1,
    )
    key = _CONTROL_KEY.pack(0, 1 if marker.commit else 0)  # version 0; type 0 abort, 1 commit
    builder.append(0, timestamp=0, key=key, value=_CONTROL_VALUE.pack(0, 0), headers=[])
    batch = builder.build()
    (attributes,) = _ATTRIBUTES.unpack_from(batch, _ATTRIBUTES_AT)
    _ATTRIBUTES.pack_into(batch, _ATTRIBUTES_AT, attributes | _CONTROL_BIT)
    _BASE_OFFSET.pack_into(batch, 0, marker.offset)
    _CRC.pack_into(batch, _CRC_AT, calc_crc32c(bytes(batch[_ATTRIBUTES_AT:])))  # covers attributes on
    return batch


_BASE_OFFSET = struct.Struct(">q")
_CRC, _CRC_AT = struct.Struct(">I"), 17
_ATTRIBUTES, _ATTRIBUTES_AT, _CONTROL_BIT = struct.Struct(">h"), 21, 0x20
_CONTROL_KEY = struct.Struct(">hh")
_CONTROL_VALUE = struct.Struct(">hi")  # version, coordinator epoch


_HANDLERS = {
    18: WireBroker.api_versions, 3: WireBroker.metadata, 0: WireBroker.produce,
    2: WireBroker.list_offsets, 1: WireBroker.fetch, 22: WireBroker.init_producer_id,
    10: WireBroker.find_coordinator, 8: WireBroker.offset_commit, 9: WireBroker.offset_fetch,
    11: groups.join_group, 14: groups.sync_group, 12: groups.heartbeat, 13: groups.leave_group,
    19: admin.create_topics, 20: admin.delete_topics, 32: admin.describe_configs, 24: WireBroker.add_partitions_to_txn,
    25: WireBroker.add_offsets_to_txn, 26: WireBroker.end_txn, 28: WireBroker.txn_offset_commit,
}


def serve_cluster(
    loop: Any, cluster: SimCluster, bootstrap: list[tuple[str, int]], network: WireNetwork | None = None,
) -> list[WireBroker]:
    """Put the cluster's brokers on ``loop``'s wire, and ``bootstrap`` addresses on broker 1.

    Also makes aiokafka's record timestamps virtual for the run (``virtual_record_timestamps``).
    """
    virtual_record_timestamps()
    brokers_in_id_order()
    protocols: dict[str, str] = {}
    wire = [WireBroker(cluster, number, protocols, network) for number in range(1, cluster.brokers.count + 1)]
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


def brokers_in_id_order() -> None:
    """aiokafka's known brokers iterate by node id while the sandbox is active.

    ``ClusterMetadata.brokers()`` is a set of ``BrokerMetadata`` tuples whose
    ``rack`` is None, and before Python 3.12 ``hash(None)`` is the address of
    None: each process iterated the set in its own order, so aiokafka's
    seeded ``random.shuffle`` of the node ids picked another broker for the
    same seed. Its callers only iterate it and take its length.
    """
    from aiokafka.cluster import ClusterMetadata

    from sim.sandbox import Sandbox

    sandbox = Sandbox.active()
    if sandbox is None:
        return

    def brokers(self: Any) -> list[Any]:
        known = self._brokers.values() or self._bootstrap_brokers.values()
        return sorted(set(known), key=lambda broker: str(broker.nodeId))

    sandbox.patch(ClusterMetadata, "brokers", brokers)
