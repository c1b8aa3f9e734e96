"""Transactions in the simulated cluster: visibility, markers, fencing, timeouts, offsets."""

import asyncio

import pytest

from detstream._types import TP
from detstream.errors import (
    CommitFailedError,
    FencedInstanceIdError,
    ProducerFencedError,
    ProducerSendError,
)
from detstream.transport.base import GroupMetadata
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.5)
T0 = TP("t", 0)


def _producer(cluster, txn_id="tx", name="p", timeout=60.0):
    return SimTransport(cluster=cluster, name=name).create_producer(
        client_id=name, transactional_id=txn_id, transaction_timeout=timeout
    )


def _reader(cluster, isolation="read_committed", tps=(T0,)):
    consumer = SimTransport(cluster=cluster, name="reader").create_consumer(
        client_id="reader", group_id=None, isolation_level=isolation
    )
    consumer.assign(tps)
    return consumer


async def _read_all(consumer, timeout=0.5):
    """Fetch until nothing more comes: [(offset, value)] in order."""
    got = []
    while batch := await consumer.getmany(timeout):
        got.extend((r.offset, r.value) for records in batch.values() for r in records)
    return got


async def _send(producer, value, partition=0):
    return await producer.send("t", key=None, value=value, partition=partition)


def test_read_committed_sees_only_committed_records_and_skips_markers():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = _producer(cluster)
        await producer.start()
        await producer.begin_transaction()
        await _send(producer, b"c1")
        await _send(producer, b"c2")
        committed, uncommitted = _reader(cluster), _reader(cluster, "read_uncommitted")
        while_open = await _read_all(committed), await _read_all(uncommitted)
        await producer.commit_transaction()  # marker at offset 2
        await producer.begin_transaction()
        await _send(producer, b"a1")  # offset 3, aborted below; marker at 4
        await producer.abort_transaction()
        await producer.begin_transaction()
        await _send(producer, b"c3")  # offset 5; marker at 6
        await producer.commit_transaction()
        after = await _read_all(committed), await _read_all(uncommitted)
        return while_open, after, await committed.position(T0), cluster.end_offset(T0)

    while_open, after, position, end = simulate(main)
    assert while_open == ([], [(0, b"c1"), (1, b"c2")])
    committed, uncommitted = after
    assert committed == [(0, b"c1"), (1, b"c2"), (5, b"c3")]  # gaps: markers 2, 4, 6; aborted 3
    assert uncommitted == [(3, b"a1"), (5, b"c3")]  # read_uncommitted sees aborted, never markers
    assert position == end == 7  # the position steps over the trailing marker


def test_read_committed_stops_at_the_last_stable_offset():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        txn = _producer(cluster)
        plain = SimTransport(cluster=cluster, name="plain").create_producer(client_id="plain")
        await txn.start()
        await txn.begin_transaction()
        await _send(txn, b"open")  # offset 0, keeps the LSO at 0
        await _send(plain, b"later")  # offset 1: committed, but behind an open transaction
        reader = _reader(cluster)
        before = await _read_all(reader), (await reader.end_offsets([T0]))[T0]
        await txn.commit_transaction()
        return before, await _read_all(reader), (await reader.end_offsets([T0]))[T0]

    before, after, end_after = simulate(main)
    assert before == ([], 0)
    assert after == [(0, b"open"), (1, b"later")]
    assert end_after == 3


def test_a_new_epoch_fences_the_old_producer_and_aborts_its_transaction():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        old = _producer(cluster, name="old")
        await old.start()
        await old.begin_transaction()
        await _send(old, b"zombie")
        new = _producer(cluster, name="new")
        await new.start()  # same transactional id: epoch 1, the open transaction aborts
        with pytest.raises(ProducerFencedError):
            await _send(old, b"late")
        errors = []
        try:
            await old.commit_transaction()
        except ProducerFencedError as exc:
            errors.append(exc)
        await old.begin_transaction()
        try:
            await old.abort_transaction()
        except ProducerFencedError as exc:
            errors.append(exc)
        await new.begin_transaction()
        await _send(new, b"fresh")
        await new.commit_transaction()
        return errors, await _read_all(_reader(cluster)), cluster.trace.lines

    errors, records, lines = simulate(main)
    assert len(errors) == 2
    assert records == [(2, b"fresh")]  # the zombie's record (0) aborted, its abort marker at 1
    assert any(" txn-abort " in line and "reason=fenced" in line for line in lines)
    assert any(" txn-fenced " in line and "epoch=0 current=1" in line for line in lines)


def test_a_transaction_open_too_long_is_aborted_and_its_producer_fenced():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = _producer(cluster, timeout=10.0)
        await producer.start()
        await producer.begin_transaction()
        await _send(producer, b"first")  # the transaction begins on the coordinator
        await asyncio.sleep(9.0)
        await _send(producer, b"still busy")  # activity does not extend it (as in Kafka)
        await asyncio.sleep(0.5)
        seen = await _read_all(_reader(cluster, "read_uncommitted"))
        await asyncio.sleep(1.0)
        with pytest.raises(ProducerFencedError):
            await producer.commit_transaction()
        return seen, await _read_all(_reader(cluster)), list(cluster.trace.of_kind("txn-abort"))

    seen, committed, aborts = simulate(main)
    assert [v for _, v in seen] == [b"first", b"still busy"]
    assert committed == []
    assert [a.fields["reason"] for a in aborts] == ["timeout"]
    assert aborts[0].time == pytest.approx(10.0, abs=0.1)  # 10 s after the transaction began


def test_a_committed_transaction_leaves_no_timer_behind():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = _producer(cluster, timeout=5.0)
        await producer.start()
        for value in (b"a", b"b", b"c"):
            await producer.begin_transaction()
            await _send(producer, value)
            await asyncio.sleep(3.0)
            await producer.commit_transaction()  # each under 5 s: none times out
        return await _read_all(_reader(cluster)), list(cluster.trace.of_kind("txn-abort"))

    committed, aborts = simulate(main)
    assert [v for _, v in committed] == [b"a", b"b", b"c"] and aborts == []


def test_sends_outside_a_transaction_are_refused():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = _producer(cluster)
        await producer.start()
        with pytest.raises(ProducerSendError, match="outside a transaction"):
            await _send(producer, b"x")
        return cluster.end_offset(T0)

    assert simulate(main) == 0


async def _join(cluster, name, instance=None):
    consumer = SimTransport(cluster=cluster, name=name).create_consumer(
        client_id=name, group_id="g", isolation_level="read_committed", group_instance_id=instance
    )
    assigned = asyncio.Event()

    class Listener:
        async def on_partitions_revoked(self, revoked):
            assigned.clear()

        async def on_partitions_assigned(self, tps):
            assigned.set()

    consumer.subscribe(["t"], Listener())
    await consumer.start()
    return consumer, assigned


def test_offsets_are_committed_only_with_the_transaction():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        consumer, assigned = await _join(cluster, "c")
        await assigned.wait()
        producer = _producer(cluster)
        await producer.start()
        group = cluster.group("g")
        seen = []
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({T0: 5}, consumer.group_metadata())
        seen.append(dict(group.committed))
        await producer.abort_transaction()
        seen.append(dict(group.committed))
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({T0: 7}, consumer.group_metadata())
        seen.append(dict(group.committed))
        await producer.commit_transaction()
        seen.append(dict(group.committed))
        await consumer.stop()
        return seen

    assert simulate(main, config=FAST) == [{}, {}, {}, {T0: 7}]


def test_offsets_of_a_stale_generation_are_rejected_and_the_transaction_aborts():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        first, first_assigned = await _join(cluster, "c1")
        await first_assigned.wait()
        stale = first.group_metadata()
        second, second_assigned = await _join(cluster, "c2")
        await second_assigned.wait()
        await first_assigned.wait()
        assert first.group_metadata().generation == stale.generation + 1
        producer = _producer(cluster)
        await producer.start()
        await producer.begin_transaction()
        await _send(producer, b"output of stale work")
        with pytest.raises(CommitFailedError):
            await producer.send_offsets_to_transaction({T0: 1}, stale)
        await producer.abort_transaction()
        expelled = GroupMetadata("g", first.group_metadata().generation, "no-such-member")
        await producer.begin_transaction()
        with pytest.raises(CommitFailedError):
            await producer.send_offsets_to_transaction({T0: 1}, expelled)
        await producer.abort_transaction()
        committed = dict(cluster.group("g").committed)
        await first.stop()
        await second.stop()
        return committed, await _read_all(_reader(cluster))

    committed, records = simulate(main, config=FAST)
    assert committed == {}
    assert records == []


def test_offsets_of_a_replaced_static_member_are_refused_as_fenced():
    """KIP-447 with KIP-345: the group metadata names the instance; the coordinator tells
    the member that another consumer took it (FENCED_INSTANCE_ID), as for a plain commit."""

    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        first, first_assigned = await _join(cluster, "c1", instance="w1")
        await first_assigned.wait()
        replaced = first.group_metadata()
        assert replaced.group_instance_id == "w1"
        second, second_assigned = await _join(cluster, "c2", instance="w1")
        await second_assigned.wait()
        producer = _producer(cluster)
        await producer.start()
        await producer.begin_transaction()
        with pytest.raises(FencedInstanceIdError):
            await producer.send_offsets_to_transaction({T0: 1}, replaced)
        await producer.abort_transaction()
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({T0: 3}, second.group_metadata())
        await producer.commit_transaction()
        committed = dict(cluster.group("g").committed)
        await second.stop()
        return committed

    assert simulate(main, config=FAST) == {T0: 3}


async def _owner_with_offsets_in_an_open_transaction(cluster, offsets):
    """A member of group "g" and a producer whose open transaction holds its ``offsets``."""
    owner, owner_assigned = await _join(cluster, "owner")
    await owner_assigned.wait()
    producer = _producer(cluster)
    await producer.start()
    await producer.begin_transaction()
    await producer.send_offsets_to_transaction(offsets, owner.group_metadata())
    return owner, producer


def test_a_read_committed_offset_lookup_waits_for_a_pending_transaction():
    """``committed`` asks for stable offsets under read_committed (OffsetFetch v7, as the
    Kafka driver does); a read_uncommitted consumer reads the old offset at once."""

    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        owner, producer = await _owner_with_offsets_in_an_open_transaction(cluster, {T0: 4})
        plain = SimTransport(cluster=cluster, name="plain").create_consumer(client_id="plain", group_id="g")
        stable = SimTransport(cluster=cluster, name="stable").create_consumer(
            client_id="stable", group_id="g", isolation_level="read_committed"
        )
        await plain.start()
        await stable.start()
        at_once = await plain.committed(T0)
        lookup = asyncio.ensure_future(stable.committed(T0))
        await asyncio.sleep(5.0)
        waited = not lookup.done()
        await producer.commit_transaction()
        found = await lookup
        for consumer in (plain, stable, owner):
            await consumer.stop()
        return at_once, waited, found, cluster.stats["offsets-unstable"] > 0

    assert simulate(main, config=FAST) == (None, True, 4, True)


def test_new_owner_waits_for_a_pending_transaction_before_reading_offsets():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        owner, producer = await _owner_with_offsets_in_an_open_transaction(cluster, {T0: 4})
        # The owner leaves with its offsets still in an open transaction.
        await owner.stop()
        heir, heir_assigned = await _join(cluster, "heir")
        await asyncio.sleep(5.0)
        waited = not heir_assigned.is_set()
        await producer.commit_transaction()
        await heir_assigned.wait()
        position = await heir.position(T0)
        await heir.stop()
        return waited, position

    assert simulate(main, config=FAST) == (True, 4)


def test_a_partition_added_to_a_transaction_that_wrote_nothing_to_it_reads_no_marker():
    """On the wire AddPartitionsToTxn comes before the produce, which may be refused: the abort's
    marker is then the partition's first transactional entry. A plain log's fast read used to
    hand the marker out as a record (found on the wire: windowed_hopping chaos seed 57, a check
    reading the input topic met a ControlMarker)."""

    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        plain = SimTransport(cluster=cluster, name="plain").create_producer(client_id="plain")
        await _send(plain, b"before")  # offset 0, a plain record
        _, epoch = cluster.transactions.init_producer("tx", timeout=60.0)
        cluster.transactions.add_partitions("tx", epoch, [T0])
        cluster.transactions.end("tx", epoch, commit=False)  # marker at offset 1
        await _send(plain, b"after")  # offset 2
        return (
            [(r.offset, r.value) for r in cluster.records("t")],
            [(r.offset, r.value) for r in cluster.records("t", read_committed=False)],
            cluster.record_count("t"), await _read_all(_reader(cluster, "read_uncommitted")),
        )

    committed, uncommitted, count, fetched = simulate(main)
    assert committed == uncommitted == fetched == [(0, b"before"), (2, b"after")]
    assert count == 2
