"""Faults of the client library the sim driver shows from the seed (``sim.client_faults``)."""

import asyncio
import random

import pytest

from detstream._types import TP
from detstream.errors import ProducerFencedError
from sim.client_faults import ClientFaults
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
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
