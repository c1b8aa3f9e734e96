"""The ``kafka://`` driver's exactly-once clients against a real broker, through the seam only.

What the simulator models, checked on Kafka: records and offsets of one
transaction become visible together; aborted records are skipped and markers
leave offset gaps that ``position`` steps over; a producer started with the
same transactional id fences the old one; offsets of a membership the
consumer knows is stale are refused (detstream's client-side check, since
aiokafka sends no generation with them).
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

from detstream._types import TP
from detstream.errors import CommitFailedError, ProducerFencedError
from detstream.transport.base import GroupMetadata
from tests.integration.test_aiokafka_driver import Recorder, drain, transport, until


def _producer(t, txn_id: str):
    return t.create_producer(client_id="it-txn", transactional_id=txn_id, transaction_timeout=10.0)


def test_offsets_commit_with_the_records_and_aborts_leave_gaps(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    group = f"it-txn-{secrets.token_hex(4)}"
    tp = TP(topic, 0)

    async def run() -> None:
        t = transport(kafka_bootstrap)
        consumer = t.create_consumer(client_id="c", group_id=group, isolation_level="read_committed")
        consumer.subscribe([topic], Recorder("c"))
        await consumer.start()
        probe = t.create_consumer(client_id="probe", group_id=group)  # reads committed offsets
        await probe.start()
        producer = _producer(t, f"it-txn-{secrets.token_hex(4)}")
        await producer.start()
        try:
            await producer.begin_transaction()
            await producer.send(topic, key=None, value=b"kept", partition=0)  # offset 0, marker 1
            await producer.send_offsets_to_transaction({tp: 7}, consumer.group_metadata())
            assert await probe.committed(tp) is None  # not before the commit
            await producer.commit_transaction()

            async def committed() -> bool:  # markers are written just after EndTxn returns
                return await probe.committed(tp) == 7

            await until(committed, "the transaction's offsets")
            await producer.begin_transaction()
            await producer.send(topic, key=None, value=b"dropped", partition=0)  # 2, marker 3
            await producer.abort_transaction()
            await producer.begin_transaction()
            await producer.send(topic, key=None, value=b"last", partition=0)  # 4, marker 5
            await producer.commit_transaction()

            reader = t.create_consumer(client_id="r", group_id=None, isolation_level="read_committed")
            reader.assign([tp])
            await reader.start()
            try:
                reader.seek(tp, 0)
                records = await drain(reader, 2)
                assert [(r.offset, r.value) for r in records] == [(0, b"kept"), (4, b"last")]
                assert await reader.position(tp) == 6 == (await reader.end_offsets([tp]))[tp]
            finally:
                await reader.stop()
        finally:
            await producer.stop()
            await probe.stop()
            await consumer.stop()

    asyncio.run(run())


def test_a_new_producer_fences_the_old_and_stale_offsets_are_refused(
    kafka_bootstrap: str, new_topic
) -> None:
    topic = new_topic(partitions=1)
    group = f"it-txn-{secrets.token_hex(4)}"
    txn_id = f"it-txn-{secrets.token_hex(4)}"

    async def run() -> None:
        t = transport(kafka_bootstrap)
        consumer = t.create_consumer(client_id="c", group_id=group, isolation_level="read_committed")
        consumer.subscribe([topic], Recorder("c"))
        await consumer.start()
        old, new = _producer(t, txn_id), _producer(t, txn_id)
        try:
            await old.start()
            await old.begin_transaction()
            await old.send(topic, key=None, value=b"zombie", partition=0)
            current = consumer.group_metadata()
            stale = GroupMetadata(group, current.generation - 1, current.member_id)
            with pytest.raises(CommitFailedError):
                await old.send_offsets_to_transaction({TP(topic, 0): 1}, stale)
            await new.start()
            await new.begin_transaction()  # InitProducerId done: the old epoch is fenced
            with pytest.raises(ProducerFencedError):
                await old.commit_transaction()
            await new.send(topic, key=None, value=b"fresh", partition=0)
            await new.commit_transaction()

            reader = t.create_consumer(client_id="r", group_id=None, isolation_level="read_committed")
            reader.assign([TP(topic, 0)])
            await reader.start()
            try:
                reader.seek(TP(topic, 0), 0)
                assert [r.value for r in await drain(reader, 1)] == [b"fresh"]
            finally:
                await reader.stop()
        finally:
            await new.stop()
            await old.stop()
            await consumer.stop()

    asyncio.run(run())


def test_the_broker_refuses_the_transactional_offsets_of_a_replaced_member(
    kafka_bootstrap: str, new_topic
) -> None:
    """TxnOffsetCommit v3 (KIP-447) names the member: the group coordinator itself refuses
    a stale one, where detstream's client-side check cannot see it (the producer's
    transport here knows no consumer of the group, like a zombie that has not heard)."""
    topic = new_topic(partitions=1)
    group = f"it-txn-{secrets.token_hex(4)}"
    tp = TP(topic, 0)

    async def run() -> None:
        consumer = transport(kafka_bootstrap).create_consumer(
            client_id="c", group_id=group, isolation_level="read_committed")
        consumer.subscribe([topic], Recorder("c"))
        await consumer.start()
        await until(lambda: _assigned(consumer, tp), "the member's assignment")
        producer = _producer(transport(kafka_bootstrap), f"it-txn-{secrets.token_hex(4)}")
        probe = transport(kafka_bootstrap).create_consumer(client_id="probe", group_id=group)
        await producer.start()
        await probe.start()
        try:
            current = consumer.group_metadata()
            for stale in (GroupMetadata(group, current.generation + 1, current.member_id),
                          GroupMetadata(group, current.generation, "no-such-member")):
                await producer.begin_transaction()
                await producer.send(topic, key=None, value=b"zombie", partition=0)
                with pytest.raises(CommitFailedError, match="refused by group"):
                    await producer.send_offsets_to_transaction({tp: 1}, stale)
                await producer.abort_transaction()
            assert await probe.committed(tp) is None
            await producer.begin_transaction()
            await producer.send(topic, key=None, value=b"owner", partition=0)
            await producer.send_offsets_to_transaction({tp: 5}, current)
            await producer.commit_transaction()

            async def committed() -> bool:
                return await probe.committed(tp) == 5

            await until(committed, "the current member's offsets")
            # the refused transactions were aborted at the broker, not joined by the next one
            reader = transport(kafka_bootstrap).create_consumer(
                client_id="r", group_id=None, isolation_level="read_committed")
            reader.assign([tp])
            await reader.start()
            try:
                reader.seek(tp, 0)
                assert [r.value for r in await drain(reader, 1)] == [b"owner"]
            finally:
                await reader.stop()
        finally:
            await probe.stop()
            await producer.stop()
            await consumer.stop()

    asyncio.run(run())


async def _assigned(consumer, tp: TP) -> bool:
    return tp in consumer.assignment()


def test_a_read_committed_member_waits_for_offsets_an_open_transaction_holds(
    kafka_bootstrap: str, new_topic
) -> None:
    """OffsetFetch v7 ``require_stable`` (KIP-447): a new owner does not start from a
    committed offset that an open transaction is about to move; a read_uncommitted
    consumer reads it at once, as aiokafka does."""
    topic = new_topic(partitions=1)
    group = f"it-txn-{secrets.token_hex(4)}"
    tp = TP(topic, 0)

    async def run() -> None:
        t = transport(kafka_bootstrap)
        owner = t.create_consumer(client_id="owner", group_id=group, isolation_level="read_committed")
        owner.subscribe([topic], Recorder("owner"))
        await owner.start()
        await until(lambda: _assigned(owner, tp), "the owner's assignment")
        producer = _producer(t, f"it-txn-{secrets.token_hex(4)}")
        stable = t.create_consumer(client_id="stable", group_id=group, isolation_level="read_committed")
        plain = t.create_consumer(client_id="plain", group_id=group)
        for client in (producer, stable, plain):
            await client.start()
        try:
            await producer.begin_transaction()
            await producer.send(topic, key=None, value=b"out", partition=0)
            await producer.send_offsets_to_transaction({tp: 9}, owner.group_metadata())
            assert await plain.committed(tp) is None  # not stable: the old offset, at once
            fetch = asyncio.ensure_future(stable.committed(tp))
            done, _ = await asyncio.wait({fetch}, timeout=2.0)
            assert not done, "a stable fetch answered while the transaction was open"
            await producer.commit_transaction()
            assert await fetch == 9
        finally:
            for client in (plain, stable, producer, owner):
                await client.stop()

    asyncio.run(run())
