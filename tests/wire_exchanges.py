"""Exchanges of aiokafka's requests with a broker, and Kafka's recorded answers to them.

Each exchange sends aiokafka's own requests (negotiated versions, as the
driver sends them) to a fresh topic and an unused group, and keeps the parts
of the answers that carry meaning (error codes, offsets, counts): node ids,
host names and throttle times differ by design. Kafka's answer is the
expectation; the wire broker (``sim.wire``) must give the same one. A new
API served on the wire gets an exchange here.

Kafka's answers are kept in ``tests/unit/sim/wire_exchanges.json`` (topic
and group names replaced by ``TOPIC`` and ``GROUP``): the unit tests check
the wire against them with no broker, and the integration tests check that
Kafka still answers so. Record them again against a broker with
``python -m tests.wire_exchanges HOST:PORT``.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.protocol.admin import CreateTopicsRequest, DeleteTopicsRequest, DescribeConfigsRequest
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

from sim.testing import simulate
from sim.wire.broker import serve_cluster

EARLIEST, LATEST = -2, -1
#: COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE: a client retries these.
RETRIABLE = (14, 15)
#: the previous transaction's markers are still being written: a client retries.
CONCURRENT_TRANSACTIONS = 51
#: an open transaction holds offsets of the partition (KIP-447's stable offset fetch).
UNSTABLE_OFFSET_COMMIT = 88


async def exchanges(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    """What a broker answers to a few of the requests the driver sends, normalised."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="wire-vs-broker")
    await client.bootstrap()
    try:
        node = client.get_random_node()
        seen: dict[str, Any] = {}
        metadata = await client.send(node, MetadataRequest([topic]))
        seen["metadata"] = [(error, name, len(partitions)) for error, name, _, partitions in metadata.topics]
        client.cluster.update_metadata(metadata)  # brokers and leaders, as aiokafka learns them
        leader = client.cluster.leader_for_partition(_tp(topic))
        for name, at in (("earliest", EARLIEST), ("latest", LATEST)):
            offsets = await client.send(leader, OffsetRequest(-1, 0, [(topic, [(0, at)])]))
            seen[name] = [(t, [(p[0], p[1], p[-1]) for p in parts]) for t, parts in offsets.topics]
        found = await client.send(node, FindCoordinatorRequest(group, 0))
        seen["find-coordinator"] = found.error_code
        fetched = await client.send(found.coordinator_id, OffsetFetchRequest(group, [(topic, [0])]))
        seen["offset-fetch"] = (
            getattr(fetched, "error_code", 0),
            [(t, [(p[0], p[1], p[3]) for p in parts]) for t, parts in fetched.topics],
        )
        producer = await client.send(node, InitProducerIdRequest(None, 60_000))
        while producer.error_code in RETRIABLE:  # a fresh Kafka is still making __transaction_state
            await asyncio.sleep(0.2)
            producer = await client.send(node, InitProducerIdRequest(None, 60_000))
        seen["init-producer-id"] = (producer.error_code, producer.producer_epoch)
        controller = metadata.controller_id
        again = await client.send(controller, CreateTopicsRequest([(topic, 1, 1, [], [])], 30_000, False))
        seen["create-existing"] = [(name, error) for name, error, *_ in again.topic_errors]
        compacted = f"{topic}-compacted"
        made = await client.send(
            controller, CreateTopicsRequest([(compacted, 1, 1, [], [("cleanup.policy", "compact")])], 30_000, False)
        )
        seen["create-with-config"] = [(name, error) for name, error, *_ in made.topic_errors]
        seen["describe-configs"] = await _described(client, node, topic)
        seen["describe-configs-set"] = await _described(client, node, compacted)
        gone = await client.send(controller, DeleteTopicsRequest([f"{topic}-never-made"], 30_000))
        seen["delete-missing"] = [error for _, error in gone.topic_error_codes]
        return seen
    finally:
        await client.close()


#: topic configs both brokers describe the same way: the ones the simulated cluster applies.
DESCRIBED = ["cleanup.policy", "max.message.bytes", "min.compaction.lag.ms", "delete.retention.ms"]


async def _described(client: AIOKafkaClient, node: int, topic: str) -> list[Any]:
    """DescribeConfigs of the topic (only the configs the simulated cluster applies) and of a
    topic that does not exist: error codes, and each config's value and source."""
    response = await client.send(
        node, DescribeConfigsRequest([(2, topic, DESCRIBED), (2, f"{topic}-never-made", None)], False)
    )
    return [
        (error, name, sorted((n, value, source) for n, value, _ro, source, *_ in entries))
        for error, _message, _kind, name, entries in response.resources
    ]


def _tp(topic: str) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition(topic, 0)


def on_the_wire(exchange: Any, topic: str, *args: Any) -> Any:
    """What ``exchange(bootstrap, topic, *args)`` sees on the simulated brokers' wire, ``topic``
    made there as the test's fixture made it on Kafka."""

    async def main(cluster: Any) -> Any:
        cluster.create_topic(topic, 1, by="operator")
        serve_cluster(asyncio.get_running_loop(), cluster, [("localhost", 9092)])
        return await exchange("localhost:9092", topic, *args)

    return simulate(main, seed=1)


async def transaction_exchanges(bootstrap: str, topic: str) -> dict[str, Any]:
    """A committed and an aborted transaction: end offsets (markers take one each), what a
    read_committed consumer reads, and where its position ends."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    tp = TopicPartition(topic, 0)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{topic}-txn")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"r1", partition=0)
            await producer.send(topic, b"r2", partition=0)
            # AddOffsetsToTxn, then TxnOffsetCommit at the group coordinator
            await producer.send_offsets_to_transaction({tp: 7}, f"{topic}-group")
        await producer.begin_transaction()
        await producer.send(topic, b"never", partition=0)
        await producer.send_offsets_to_transaction({tp: 99}, f"{topic}-group")
        await producer.abort_transaction()
    finally:
        await producer.stop()
    seen: dict[str, Any] = {"committed": await _committed(bootstrap, f"{topic}-group", topic)}
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    auto_offset_reset="earliest", isolation_level=isolation)
        await consumer.start()
        try:
            consumer.assign([tp])
            values: list[bytes] = []
            for _ in range(20):
                batch = await consumer.getmany(timeout_ms=200)
                values += [r.value for records in batch.values() for r in records]
                if await consumer.position(tp) >= 5:
                    break
            seen[isolation] = (values, await consumer.position(tp), (await consumer.end_offsets([tp]))[tp])
        finally:
            await consumer.stop()
    return seen


async def _committed(bootstrap: str, group: str, topic: str) -> Any:
    """The group's committed offset of partition 0 (the committed transaction's, not the aborted one's)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="wire-vs-broker")
    await client.bootstrap()
    try:
        node = await _coordinator(client, group, 0)
        fetched = await client.send(node, OffsetFetchRequest(group, [(topic, [0])]))
        return [(t, [(p[0], p[1], p[3]) for p in parts]) for t, parts in fetched.topics]
    finally:
        await client.close()


async def group_exchanges(bootstrap: str, topic: str, group: str) -> list[Any]:
    """One member's life in a group, request by request as aiokafka negotiates them (JoinGroup
    v5: first MEMBER_ID_REQUIRED, KIP-394), with the refusals a zombie meets: error codes,
    generations and what was assigned and committed."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
    from aiokafka.protocol.commit import OffsetCommitRequest
    from aiokafka.protocol.group import HeartbeatRequest, LeaveGroupRequest, SyncGroupRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="wire-vs-broker")
    await client.bootstrap()
    try:
        found = await client.send(client.get_random_node(), FindCoordinatorRequest(group, 0))
        node = found.coordinator_id
        join = _joining(group, topic)
        seen: list[Any] = []
        first = await client.send(node, join(""))
        seen.append(("join-without-id", first.error_code, bool(first.member_id)))
        member = first.member_id
        joined = await client.send(node, join(member))
        seen.append(("join", joined.error_code, joined.generation_id, joined.leader_id == member,
                     joined.member_id == member, len(joined.members)))
        generation = joined.generation_id
        plan = ConsumerProtocolMemberAssignment(0, [(topic, [0])], b"").encode()
        synced = await client.send(node, SyncGroupRequest(group, generation, member, None, [(member, plan)]))
        got = ConsumerProtocolMemberAssignment.decode(synced.member_assignment)
        seen.append(("sync", synced.error_code, got.assignment))
        for gen, who in ((generation, member), (generation + 7, member), (generation, "nobody")):
            beat = await client.send(node, HeartbeatRequest(group, gen, who))
            offsets = [(topic, [(0, 5, "")])]
            commit = await client.send(node, OffsetCommitRequest(group, gen, who, -1, offsets))
            seen.append(("heartbeat-and-commit", gen - generation, who == member, beat.error_code,
                         [(t, [p[1] for p in parts]) for t, parts in commit.topics]))
        fetched = await client.send(node, OffsetFetchRequest(group, [(topic, [0])]))
        seen.append(("offset-fetch", [(t, [(p[0], p[1], p[3]) for p in parts]) for t, parts in fetched.topics]))
        left = await client.send(node, LeaveGroupRequest(group, member))
        seen.append(("leave", left.error_code))
        after = await client.send(node, HeartbeatRequest(group, generation, member))
        seen.append(("heartbeat-after-leave", after.error_code))
        return seen
    finally:
        await client.close()


async def member_offset_exchanges(bootstrap: str, topic: str, group: str) -> list[Any]:
    """Transactional offsets naming their member (TxnOffsetCommit v3, KIP-447, as the Kafka
    driver sends them): a stale generation, an unknown member, then the member itself; the
    error codes per partition, a stable offset fetch (OffsetFetch v7) while each transaction
    is open and once the last one committed, and what that left committed."""
    from aiokafka.protocol.transaction import (
        AddOffsetsToTxnRequest,
        EndTxnRequest,
        TxnOffsetCommitRequest,
    )

    from detstream.transport.base import GroupMetadata
    from detstream.transport.kafka.member_offsets import MemberTxnOffsetCommitRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="wire-vs-broker")
    await client.bootstrap()
    try:
        node = await _coordinator(client, group, 0)
        join = _joining(group, topic)
        member = (await client.send(node, join(""))).member_id
        generation = (await client.send(node, join(member))).generation_id
        txn_id = f"{group}-txn"
        txn_node = await _coordinator(client, txn_id, 1)
        producer = await client.send(txn_node, InitProducerIdRequest(txn_id, 60_000))
        while producer.error_code in RETRIABLE:
            await asyncio.sleep(0.2)
            producer = await client.send(txn_node, InitProducerIdRequest(txn_id, 60_000))
        pid, epoch = producer.producer_id, producer.producer_epoch
        seen: list[Any] = []
        for name, gen, who in (("stale-generation", generation - 1, member),
                               ("unknown-member", generation, "nobody"), ("member", generation, member)):
            added = await client.send(txn_node, AddOffsetsToTxnRequest(txn_id, pid, epoch, group))
            while added.error_code == CONCURRENT_TRANSACTIONS:  # the last abort's markers: retry
                await asyncio.sleep(0.05)
                added = await client.send(txn_node, AddOffsetsToTxnRequest(txn_id, pid, epoch, group))
            commit = TxnOffsetCommitRequest(txn_id, group, pid, epoch, [(topic, [(0, 11, "")])])
            sent = MemberTxnOffsetCommitRequest(commit, GroupMetadata(group, gen, who))
            answer = await client.send(node, sent)
            held = await _stable_offsets(client, node, group, topic)
            ended = await client.send(txn_node, EndTxnRequest(txn_id, pid, epoch, name == "member"))
            seen.append((name, added.error_code, answer.API_VERSION,
                         [(t, [p[1] for p in parts]) for t, parts, *_ in answer.topics], held,
                         ended.error_code))
        after = await _stable_offsets(client, node, group, topic)
        while after == [[0, -1, UNSTABLE_OFFSET_COMMIT]]:  # the commit's markers are on their way
            await asyncio.sleep(0.05)
            after = await _stable_offsets(client, node, group, topic)
        return seen + [("stable-after-commit", after), ("committed", await _committed(bootstrap, group, topic))]
    finally:
        await client.close()


def _joining(group: str, topic: str) -> Callable[[str], Any]:
    """``join(member_id)``: the JoinGroup request (v5) of a consumer of ``topic`` in ``group``
    ("" for the first, which the broker answers with MEMBER_ID_REQUIRED and an id)."""
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata
    from aiokafka.protocol.group import JoinGroupRequest

    metadata = ConsumerProtocolMemberMetadata(0, [topic], b"").encode()

    def join(member: str) -> Any:
        return JoinGroupRequest(group, 10_000, 10_000, member, None, "consumer", [("range", metadata)])

    return join


async def _stable_offsets(client: AIOKafkaClient, node: int, group: str, topic: str) -> list[Any]:
    """OffsetFetch v7 with ``require_stable``, as the Kafka driver's read_committed consumers
    send it: (partition, offset, error) of partition 0."""
    from aiokafka.protocol.commit import OffsetFetchRequest

    from detstream.transport.kafka.stable_offsets import StableOffsetFetchRequest

    fetched = await client.send(node, StableOffsetFetchRequest(OffsetFetchRequest(group, [(topic, [0])])))
    return [[p[0], p[1], p[4]] for _, parts, _ in fetched.topics for p in parts]


async def _coordinator(client: AIOKafkaClient, key: str, kind: int) -> int:
    """The node coordinating ``key``: a group (``kind`` 0) or a transactional id (1)."""
    found = await client.send(client.get_random_node(), FindCoordinatorRequest(key, kind))
    while found.error_code in RETRIABLE:
        await asyncio.sleep(0.2)
        found = await client.send(client.get_random_node(), FindCoordinatorRequest(key, kind))
    return int(found.coordinator_id)


#: Kafka's answers, as ``record`` wrote them.
RECORDED = Path(__file__).parent / "unit" / "sim" / "wire_exchanges.json"


def normalised(answer: Any, topic: str, group: str) -> Any:
    """``answer`` as JSON values, with ``topic`` and ``group`` named ``TOPIC`` and ``GROUP``.

    Bytes become ``"b:<text>"`` (the exchanges read small ASCII values).
    """
    if isinstance(answer, bytes):
        return "b:" + answer.decode("latin-1")
    if isinstance(answer, str):
        return answer.replace(topic, "TOPIC").replace(group, "GROUP")
    if isinstance(answer, dict):
        return {key: normalised(value, topic, group) for key, value in answer.items()}
    if isinstance(answer, (list, tuple)):
        return [normalised(item, topic, group) for item in answer]
    return answer


async def all_exchanges(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    """Every exchange against one broker, ``topic`` made beforehand with one partition."""
    return {
        "requests": await exchanges(bootstrap, topic, group),
        "transactions": await transaction_exchanges(bootstrap, topic),
        "group": await group_exchanges(bootstrap, topic, f"{group}-members"),
        "member-offsets": await member_offset_exchanges(bootstrap, topic, f"{group}-txn-members"),
    }


def recorded() -> dict[str, Any]:
    return dict(json.loads(RECORDED.read_text()))


def record(bootstrap: str) -> None:
    """Run every exchange against the broker at ``bootstrap`` and keep its answers in ``RECORDED``."""
    topic, group = f"wire-exchanges-{secrets.token_hex(4)}", f"wire-exchanges-{secrets.token_hex(4)}"

    async def main() -> dict[str, Any]:
        client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="wire-exchanges")
        await client.bootstrap()
        try:
            made = await client.send(
                client.cluster.controller.nodeId if client.cluster.controller else client.get_random_node(),
                CreateTopicsRequest([(topic, 1, 1, [], [])], 30_000, False),
            )
            assert all(error == 0 for _, error, *_ in made.topic_errors), made
        finally:
            await client.close()
        return await all_exchanges(bootstrap, topic, group)

    answers = normalised(asyncio.run(main()), topic, group)
    RECORDED.write_text(json.dumps(answers, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    record(sys.argv[1])
