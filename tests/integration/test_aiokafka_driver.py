"""The ``kafka://`` driver against a real broker, through the transport seam only.

Conformance with what the engine (and the sim driver) expects: produce/consume
with float-second timestamps and tuple headers, keyed partitioning equal to
detstream's murmur2, commit/committed, beginning/end offsets, admin topic
creation, a two-member rebalance (revoke before assign, co-partitioned), a
runtime re-subscribe, and a commit fenced by a newer generation.
Every wait polls with a deadline; nothing sleeps to wait.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

import pytest

import detstream
from detstream._types import TP
from detstream.errors import CommitFailedError, ImproperlyConfigured
from detstream.partitioner import partition_for_key
from detstream.transport.kafka.driver import AIOKafkaTransport

DEADLINE_S = 30.0


def transport(bootstrap: str, **settings: object) -> AIOKafkaTransport:
    app = detstream.App(f"it-driver-{secrets.token_hex(4)}", broker=f"kafka://{bootstrap}",
                        broker_session_timeout=6.0, broker_heartbeat_interval=1.0, **settings)
    return AIOKafkaTransport(f"kafka://{bootstrap}", app=app)


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout: float = DEADLINE_S) -> None:
    """Poll ``check`` until true; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)


async def drain(consumer, want: int) -> list:
    got: list = []

    async def more() -> bool:
        for records in (await consumer.getmany(0.5)).values():
            got.extend(records)
        return len(got) >= want

    await until(more, f"{want} records")
    return got


class Recorder:
    """A rebalance listener that records the order of callbacks."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, set[TP]]] = []
        self.on_revoke: Callable[[set[TP]], Awaitable[None]] | None = None

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.calls.append(("revoked", set(revoked)))
        if self.on_revoke is not None:
            await self.on_revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        self.calls.append(("assigned", set(assigned)))

    def assigned(self) -> set[TP] | None:
        last = [tps for kind, tps in self.calls if kind == "assigned"]
        return last[-1] if last else None


def test_produce_consume_timestamps_headers_and_offsets(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=1)

    async def run() -> None:
        t = transport(kafka_bootstrap)
        producer = t.create_producer(client_id="it-producer")
        await producer.start()
        try:
            assert await producer.partitions_for(topic) == 1
            metas = [
                await producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode(),
                                    timestamp=1_700_000_000.125 + i, headers=(("h", b"x"),))
                for i in range(5)
            ]
            tombstone = await producer.send(topic, key=b"k0", value=None)
        finally:
            await producer.stop()
        assert [m.offset for m in metas] == [0, 1, 2, 3, 4] and tombstone.offset == 5
        assert metas[2].timestamp == pytest.approx(1_700_000_002.125)
        assert isinstance(metas[0].timestamp, float)

        consumer = t.create_consumer(client_id="it-manual", group_id=None)
        consumer.assign([TP(topic, 0)])
        consumer.seek(TP(topic, 0), 1)  # before start: applied once connected
        await consumer.start()
        try:
            got = await drain(consumer, 5)
            tp = TP(topic, 0)
            assert await consumer.beginning_offsets([tp]) == {tp: 0}
            assert await consumer.end_offsets([tp]) == {tp: 6}
            assert await consumer.committed(tp) is None  # no group: nothing committed
            assert consumer.assignment() == {tp}
        finally:
            await consumer.stop()
        assert [r.offset for r in got] == [1, 2, 3, 4, 5]
        assert got[0].timestamp == pytest.approx(1_700_000_001.125)
        assert isinstance(got[0].timestamp, float)
        assert got[0].headers == (("h", b"x"),) and got[-1].headers == ()
        assert got[-1].value is None and got[-1].key == b"k0"

    asyncio.run(run())


def test_keyed_records_land_where_detstream_partitioner_says(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=5)

    async def run() -> None:
        producer = transport(kafka_bootstrap).create_producer(client_id="it-keyed")
        await producer.start()
        try:
            for round_ in range(2):
                for i in range(20):
                    key = f"user-{i}".encode()
                    meta = await producer.send(topic, key=key, value=str(round_).encode())
                    assert meta.partition == partition_for_key(key, 5), key
        finally:
            await producer.stop()

    asyncio.run(run())


def test_group_commit_committed_and_resume(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=2)
    group = f"it-commit-{secrets.token_hex(4)}"

    async def run() -> None:
        t = transport(kafka_bootstrap)
        producer = t.create_producer(client_id="it-p")
        await producer.start()
        for i in range(10):
            await producer.send(topic, key=None, value=str(i).encode(), partition=i % 2)
        await producer.stop()
        tps = {TP(topic, 0), TP(topic, 1)}

        first, listener = t.create_consumer(client_id="c1", group_id=group), Recorder("c1")
        first.subscribe([topic], listener)
        await first.start()  # returns once the group assigned partitions
        try:
            assert listener.calls[0] == ("revoked", set()) and listener.assigned() == tps
            assert first.generation >= 1
            await drain(first, 10)
            await first.commit({TP(topic, 0): 3, TP(topic, 1): 5})
            assert await first.committed(TP(topic, 0)) == 3
            assert await first.committed(TP(topic, 1)) == 5
            assert await first.end_offsets(tps) == {TP(topic, 0): 5, TP(topic, 1): 5}
            assert await first.beginning_offsets(tps) == {TP(topic, 0): 0, TP(topic, 1): 0}
        finally:
            await first.stop()
        assert first.generation == -1

        second = t.create_consumer(client_id="c2", group_id=group)
        second.subscribe([topic], Recorder("c2"))
        await second.start()
        try:
            rest = await drain(second, 2)  # resumes at the committed offsets
        finally:
            await second.stop()
        assert sorted((r.partition, r.offset) for r in rest) == [(0, 3), (0, 4)]

    asyncio.run(run())


def test_rebalance_revokes_then_assigns_copartitioned(kafka_bootstrap: str, new_topic) -> None:
    left, right = new_topic(partitions=4), new_topic(partitions=4)
    group = f"it-rebalance-{secrets.token_hex(4)}"

    async def run() -> None:
        t = transport(kafka_bootstrap)
        a, la = t.create_consumer(client_id="a", group_id=group), Recorder("a")
        b, lb = t.create_consumer(client_id="b", group_id=group), Recorder("b")
        a.subscribe([left, right], la)
        await a.start()
        everything = {TP(tpc, p) for tpc in (left, right) for p in range(4)}
        assert la.assigned() == everything
        first_generation = a.generation
        b.subscribe([left, right], lb)
        try:
            await b.start()
            await until(lambda: la.assigned() != everything, "a to be reassigned")
            # joined: revoke(nothing), assign(all); b joined: revoke(all) before assign(half)
            assert [kind for kind, _ in la.calls[:4]] == ["revoked", "assigned"] * 2
            assert la.calls[2] == ("revoked", everything)
            mine, theirs = la.assigned(), lb.assigned()
            assert mine and theirs and not mine & theirs and mine | theirs == everything
            for member in (mine, theirs):
                by_topic = {tpc: {tp.partition for tp in member if tp.topic == tpc}
                            for tpc in (left, right)}
                assert by_topic[left] == by_topic[right], f"not co-partitioned: {by_topic}"
            assert a.generation == b.generation > first_generation
            assert a.assignment() == mine and b.assignment() == theirs
        finally:
            await b.stop()
            await a.stop()

    asyncio.run(run())


def test_resubscribe_with_more_topics_rejoins_and_commits_in_revoke(kafka_bootstrap: str, new_topic) -> None:
    first, later = new_topic(partitions=2), new_topic(partitions=2)
    group = f"it-resub-{secrets.token_hex(4)}"

    async def run() -> None:
        t = transport(kafka_bootstrap)
        producer = t.create_producer(client_id="it-p")
        await producer.start()
        await producer.send(first, key=None, value=b"x", partition=0)
        await producer.stop()
        consumer, listener = t.create_consumer(client_id="c", group_id=group), Recorder("c")

        async def commit_what_was_read(revoked: set[TP]) -> None:
            if TP(first, 0) in revoked:  # as the engine does: commit while still the owner
                await consumer.commit({TP(first, 0): 1})

        listener.on_revoke = commit_what_was_read
        consumer.subscribe([first], listener)
        await consumer.start()
        try:
            await drain(consumer, 1)
            consumer.subscribe([first, later], listener)
            want = {TP(tpc, p) for tpc in (first, later) for p in range(2)}
            await until(lambda: listener.assigned() == want, "the new topic to be assigned")
            assert await consumer.committed(TP(first, 0)) == 1
        finally:
            await consumer.stop()

    asyncio.run(run())


def test_commit_from_a_stale_generation_raises_commit_failed(kafka_bootstrap: str, new_topic) -> None:
    topic = new_topic(partitions=2)
    group = f"it-fenced-{secrets.token_hex(4)}"

    async def run() -> None:
        t = transport(kafka_bootstrap, broker_rebalance_timeout=2.0)
        a, la = t.create_consumer(client_id="a", group_id=group), Recorder("a")
        release, outcome = asyncio.Event(), []

        async def slow_revoke(revoked: set[TP]) -> None:
            if not revoked:
                return
            await release.wait()  # outlives the rebalance timeout: the group moves on without a
            try:
                await a.commit({TP(topic, 0): 1})
                outcome.append("committed")
            except CommitFailedError as exc:
                outcome.append(exc)

        la.on_revoke = slow_revoke
        a.subscribe([topic], la)
        await a.start()
        b = t.create_consumer(client_id="b", group_id=group)
        b.subscribe([topic], Recorder("b"))
        try:
            await b.start()  # completes once the group gave up on a
            assert b.assignment() == {TP(topic, 0), TP(topic, 1)}
            release.set()
            await until(lambda: bool(outcome), "a's commit to finish")
            assert isinstance(outcome[0], CommitFailedError), outcome
            assert group in str(outcome[0])
        finally:
            release.set()
            await b.stop()
            await a.stop()

    asyncio.run(run())


def test_admin_creates_topics_once_and_describes_without_creating(kafka_bootstrap: str) -> None:
    name = f"it-admin-{secrets.token_hex(4)}"

    async def run() -> None:
        admin = transport(kafka_bootstrap).create_admin(client_id="it-admin")
        try:
            assert await admin.partitions_for(name) is None
            assert await admin.partitions_for(name) is None  # asking did not create it
            assert await admin.create_topic(name, partitions=3, config={"cleanup.policy": "compact"})
            assert await admin.partitions_for(name) == 3
            assert not await admin.create_topic(name, partitions=3)
            with pytest.raises(ImproperlyConfigured, match="replication_factor=3"):
                await admin.create_topic(name + "-rf", partitions=1, replication_factor=3)
        finally:
            await admin.stop()

    asyncio.run(run())


def test_admin_asked_twice_at_once_starts_one_client_and_stops_all_of_it(kafka_bootstrap: str) -> None:
    """A worker's start asks the admin client for several topics at once: each first request
    started a client of its own, and the one overwritten was never closed (its metadata task
    and connection ran on after the stop). Found by the simulator's ``stopped-app-idle``."""
    name = f"it-admin-{secrets.token_hex(4)}"

    async def run() -> None:
        before = asyncio.all_tasks()
        admin = transport(kafka_bootstrap).create_admin(client_id="it-admin")
        try:
            assert await asyncio.gather(admin.partitions_for(name), admin.partitions_for(name)) == [None, None]
        finally:
            await admin.stop()
        left = asyncio.all_tasks() - before
        await until(lambda: all(task.done() for task in left), "the admin client's tasks to end")

    asyncio.run(run())


def test_membership_is_in_doubt_after_a_blocked_loop_until_a_heartbeat_is_answered(
    kafka_bootstrap: str, new_topic
) -> None:
    """``Consumer.membership_in_doubt``: a joined member whose heartbeats are answered is not in
    doubt, past half its 6 s session too; once its loop was blocked for longer than that (the
    fault: as a paused process or a long GC), it is, until aiokafka's next heartbeat is
    answered, which the driver hears through ``compat.watch_heartbeats``."""
    import time

    topic = new_topic(partitions=1)
    group = f"it-doubt-{secrets.token_hex(4)}"

    async def run() -> tuple[bool, bool, bool]:
        consumer = transport(kafka_bootstrap).create_consumer(client_id="c", group_id=group)
        consumer.subscribe([topic], Recorder("c"))
        await consumer.start()
        loop = asyncio.get_running_loop()
        try:
            healthy_until = loop.time() + 4.5  # past half the session, beating every second
            doubted = False
            while loop.time() < healthy_until:
                doubted = doubted or consumer.membership_in_doubt
                await asyncio.sleep(0.1)  # polls the property while heartbeats run
            time.sleep(3.5)  # the fault: the event loop is blocked this long
            after_block = consumer.membership_in_doubt
            await until(lambda: not consumer.membership_in_doubt, "a heartbeat answered")
            return doubted, after_block, consumer.expelled
        finally:
            await consumer.stop()

    doubted, after_block, expelled = asyncio.run(run())
    assert not doubted and after_block and not expelled
