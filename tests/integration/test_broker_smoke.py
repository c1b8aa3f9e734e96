"""Smoke tests against a real Kafka broker (no mocks): keyed partitioning and order,
transactions with read_committed isolation, and consumer-group offset commit/resume.

Every wait is bounded: getmany(timeout_ms=...) in a loop with a deadline on loop.time().
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

DEADLINE_S = 60.0


def _group(prefix: str) -> str:
    return f"it-{prefix}-{secrets.token_hex(4)}"


async def _drain(consumer: AIOKafkaConsumer, want: int, timeout_s: float = DEADLINE_S) -> list:
    """Fetch until `want` records arrived or the deadline passed; return what arrived."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    got: list = []
    while len(got) < want and loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            got.extend(records)
    return got


async def _drain_to_end(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> list:
    """Fetch until the position of every partition reached its end offset (the last stable
    offset for read_committed), bounded by a deadline."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    end = await consumer.end_offsets(tps)
    got: list = []
    while True:
        batches = await consumer.getmany(timeout_ms=500)
        for records in batches.values():
            got.extend(records)
        positions = {tp: await consumer.position(tp) for tp in tps}
        if all(positions[tp] >= end[tp] for tp in tps):
            return got
        assert loop.time() < deadline, f"not at end after {DEADLINE_S}s: {positions} < {end}"


def test_keyed_records_keep_partition_and_order(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=3)
    n_keys, n = 10, 100

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            futures = [
                await producer.send(topic, key=f"key-{i % n_keys}".encode(), value=str(i).encode())
                for i in range(n)
            ]
            metas = await asyncio.gather(*futures)
        finally:
            await producer.stop()

        produced_partition: dict[bytes, set[int]] = defaultdict(set)
        for i, md in enumerate(metas):
            produced_partition[f"key-{i % n_keys}".encode()].add(md.partition)
        assert all(len(ps) == 1 for ps in produced_partition.values()), produced_partition
        assert len({p for ps in produced_partition.values() for p in ps}) > 1, (
            "10 keys all hashed to one partition: the 3-partition topic is not exercised"
        )

        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=_group("keyed"),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            got = await _drain(consumer, n)
        finally:
            await consumer.stop()

        assert len(got) == n, f"consumed {len(got)} of {n}"
        assert sorted(int(r.value) for r in got) == list(range(n))
        by_partition: dict[int, list] = defaultdict(list)
        for r in got:
            assert {r.partition} == produced_partition[r.key], (r.key, r.partition)
            by_partition[r.partition].append(r)
        for p, records in by_partition.items():
            offsets = [r.offset for r in records]
            values = [int(r.value) for r in records]
            assert offsets == sorted(offsets), f"partition {p} offsets out of order"
            assert values == sorted(values), f"partition {p} not in send order: {values}"
            # ...and per key as well (the stronger guarantee a keyed stream relies on)
            for key in {r.key for r in records}:
                kv = [int(r.value) for r in records if r.key == key]
                assert kv == sorted(kv)

    asyncio.run(run())


def test_read_committed_sees_only_committed_transaction(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=2)
    committed = [f"c{i}".encode() for i in range(5)]
    aborted = [f"a{i}".encode() for i in range(5)]

    async def run() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap,
            transactional_id=f"it-txn-{secrets.token_hex(4)}",
            enable_idempotence=True,
        )
        await producer.start()
        try:
            async with producer.transaction():
                for i, v in enumerate(committed):
                    await producer.send_and_wait(topic, key=str(i).encode(), value=v)
            await producer.begin_transaction()
            for i, v in enumerate(aborted):
                await producer.send_and_wait(topic, key=str(i).encode(), value=v)
            await producer.abort_transaction()
        finally:
            await producer.stop()

        tps = [TopicPartition(topic, p) for p in range(2)]
        seen = {}
        for isolation in ("read_committed", "read_uncommitted"):
            consumer = AIOKafkaConsumer(
                bootstrap_servers=kafka_bootstrap,
                isolation_level=isolation,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            try:
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
                seen[isolation] = sorted(r.value for r in await _drain_to_end(consumer, tps))
            finally:
                await consumer.stop()

        assert seen["read_committed"] == sorted(committed)
        # The aborted records are really in the log; only the isolation level hides them.
        assert seen["read_uncommitted"] == sorted(committed + aborted)

    asyncio.run(run())


def test_group_resumes_from_committed_offset(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)
    group = _group("resume")
    tp = TopicPartition(topic, 0)
    n, first = 10, 4

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(n):
                await producer.send_and_wait(topic, value=str(i).encode())
        finally:
            await producer.stop()

        def consumer() -> AIOKafkaConsumer:
            return AIOKafkaConsumer(
                topic,
                bootstrap_servers=kafka_bootstrap,
                group_id=group,
                auto_offset_reset="earliest",  # without a commit it would restart at 0
                enable_auto_commit=False,
            )

        c1 = consumer()
        await c1.start()
        try:
            got = await _drain(c1, first)
            assert len(got) >= first
            assert [r.offset for r in got[:first]] == list(range(first))
            await c1.commit({tp: first})  # processed offsets 0..first-1
            assert await c1.committed(tp) == first
        finally:
            await c1.stop()

        c2 = consumer()
        await c2.start()
        try:
            assert await c2.committed(tp) == first
            rest = await _drain(c2, n - first)
        finally:
            await c2.stop()
        assert [r.offset for r in rest] == list(range(first, n))
        assert [int(r.value) for r in rest] == list(range(first, n))

    asyncio.run(run())
