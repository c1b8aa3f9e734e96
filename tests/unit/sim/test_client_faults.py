"""Faults of the client library the sim driver shows from the seed (``sim.client_faults``)."""

import asyncio
import random

import pytest

from detstream._types import TP
from detstream.errors import ProducerFencedError, ProducerSendError
from sim.brokers import TXN_COORDINATOR_TOPIC, coordinator_partition
from sim.client_faults import ClientFaults
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.kafka_errors import ConnectionClosedError, SenderDeadError
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.5)
T0 = TP("t", 0)


def test_a_fault_without_its_stream_is_never_drawn():
    faults = ClientFaults(stall_hold_share=1.0, sender_death_share=1.0)
    assert not faults.stall_holds_group() and not faults.sender_dies()


def test_each_fault_draws_from_its_own_stream_only():
    stalls, senders = random.Random("a"), random.Random("b")
    faults = ClientFaults(stalls=stalls, senders=senders, stall_hold_share=0.5, sender_death_share=0.5)
    reference = random.Random("a")
    expected = [reference.random() < 0.5 for _ in range(5)]
    assert [faults.stall_holds_group() for _ in range(5)] == expected
    assert senders.getstate() == random.Random("b").getstate()  # untouched by the stall draws


async def _member_with_producer(cluster, name="w1", timeout=10.0):
    """A process (one transport, one link): a read_committed group consumer and a transactional producer."""
    transport = SimTransport(cluster=cluster, name=name)
    consumer = transport.create_consumer(client_id=name, group_id="g", isolation_level="read_committed")
    assigned = asyncio.Event()

    class Listener:
        async def on_partitions_revoked(self, revoked):
            assigned.clear()

        async def on_partitions_assigned(self, tps):
            assigned.set()

    consumer.subscribe(["t"], Listener())
    await consumer.start()
    await assigned.wait()
    producer = transport.create_producer(
        client_id=name, transactional_id=f"tx-{name}", transaction_timeout=timeout
    )
    await producer.start()
    return transport, consumer, producer


@pytest.mark.parametrize("hold_group", [False, True])
def test_a_stall_that_holds_the_group_holds_commits_until_it_ends(hold_group):
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        transport, consumer, _ = await _member_with_producer(cluster)
        loop = asyncio.get_running_loop()
        transport.stall(20.0, hold_group=hold_group)
        start = loop.time()
        await consumer.commit({T0: 3})
        return loop.time() - start, list(cluster.trace.of_kind("group-request-held"))

    took, held = simulate(main, config=FAST)
    if hold_group:
        assert took == pytest.approx(20.0, abs=0.1)
        assert [e.fields["request"] for e in held] == ["offset-commit"]
    else:
        assert took < 0.1 and held == []


def test_a_held_txn_offset_commit_outlives_the_transaction_and_is_fenced():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        transport, consumer, producer = await _member_with_producer(cluster, timeout=10.0)
        await producer.begin_transaction()
        await producer.send("t", key=None, value=b"out", partition=0)  # the transaction begins
        transport.stall(30.0, hold_group=True)
        with pytest.raises(ProducerFencedError):
            await producer.send_offsets_to_transaction({T0: 1}, consumer.group_metadata())
        return asyncio.get_running_loop().time(), cluster.trace

    ended, trace = simulate(main, config=FAST)
    aborts = list(trace.of_kind("txn-abort"))
    assert [a.fields["reason"] for a in aborts] == ["timeout"]
    held = next(trace.of_kind("group-request-held"))
    assert held.fields["request"] == "txn-offset-commit"
    assert held.time < aborts[0].time < ended  # aborted while held; refused once it got through
    assert [e.fields["request"] for e in trace.of_kind("txn-fenced")] == ["add-offsets"]
    assert list(trace.of_kind("txn-commit")) == []


def _always_dies(cluster):
    cluster.client_faults = ClientFaults(senders=random.Random(0), sender_death_share=1.0)


def _txn_coordinator(cluster, txn_id):
    return cluster.brokers.leader(coordinator_partition(TXN_COORDINATOR_TOPIC, txn_id))


def test_a_lost_coordinator_lookup_kills_the_transactional_sender_for_good():
    async def main(cluster):
        _always_dies(cluster)
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="w1").create_producer(
            client_id="w1", transactional_id="tx", transaction_timeout=60.0
        )
        await producer.start()
        await producer.begin_transaction()
        await producer.send("t", key=None, value=b"acked", partition=0)
        cluster.brokers.crash(_txn_coordinator(cluster, "tx"))  # its coordinator is down
        errors = {}
        for name, call in [
            ("commit", producer.commit_transaction),
            ("abort", producer.abort_transaction),
            ("begin", producer.begin_transaction),
            ("send", lambda: producer.send("t", key=None, value=b"later", partition=0)),
        ]:
            with pytest.raises(SenderDeadError) as raised:
                await call()
            errors[name] = raised.value
        return errors, cluster

    errors, cluster = simulate(main)
    assert all(isinstance(e, ProducerSendError) for e in errors.values())  # what the engine sees
    assert "stopped for good" in str(errors["commit"])
    dead = list(cluster.trace.of_kind("producer-sender-dead"))
    assert [(e.fields["request"], e.fields["error"]) for e in dead] == [
        ("end-transaction", "CoordinatorNotAvailableError")
    ]
    assert cluster.stats["producer-sender-dead"] == 1
    assert list(cluster.trace.of_kind("txn-commit")) == []


def test_records_queued_when_the_sender_dies_fail_and_nothing_dies_outside_a_transaction():
    async def main(cluster):
        _always_dies(cluster)
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="w1").create_producer(
            client_id="w1", transactional_id="tx", transaction_timeout=60.0
        )
        await producer.start()
        await producer.begin_transaction()
        queued = await producer.enqueue("t", key=None, value=b"queued", partition=0)
        producer._die("add-offsets-to-txn", ConnectionClosedError("reset"))
        with pytest.raises(SenderDeadError):
            await queued
        # a new producer of the id (the restarted app) starts and commits as usual
        cluster.brokers.crash(_txn_coordinator(cluster, "tx2"))
        other = SimTransport(cluster=cluster, name="w2").create_producer(
            client_id="w2", transactional_id="tx2", transaction_timeout=60.0
        )
        start = asyncio.ensure_future(other.start())  # init-transactions retries: never dies
        await asyncio.sleep(15.0)  # the controller fails the coordinator over
        await start
        return cluster

    cluster = simulate(main)
    assert [e.fields["request"] for e in cluster.trace.of_kind("producer-sender-dead")] == [
        "add-offsets-to-txn"
    ]
    assert any(e.actor == "tx2" for e in cluster.trace.of_kind("txn-init"))
