"""The sim producers under broker faults: retries after NotLeader, failover, coordinator moves."""

import asyncio

from detstream._types import TP
from sim.brokers import TXN_COORDINATOR_TOPIC, coordinator_partition
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.network import LinkConditions
from sim.testing import simulate

T0 = TP("t", 0)


def retried(cluster):
    return [e.fields for e in cluster.trace.of_kind("retried")]


def test_leader_move_producer_gets_not_leader_and_retries_with_fresh_metadata():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        await producer.send("t", key=None, value=b"1", partition=0)
        cluster.brokers.move_leaders(cluster.brokers.leader(T0))
        meta = await producer.send("t", key=None, value=b"2", partition=0)
        return meta.offset, retried(cluster)

    offset, retries = simulate(main)
    assert offset == 1
    assert retries == [{"request": "produce", "tp": T0, "attempts": 2, "error": "NotLeaderForPartitionError"}]


def test_crashed_leader_send_waits_for_the_failover_in_virtual_time():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        await producer.send("t", key=None, value=b"1", partition=0)
        cluster.brokers.crash(cluster.brokers.leader(T0))
        loop = asyncio.get_running_loop()
        start = loop.time()
        await producer.send("t", key=None, value=b"2", partition=0)
        return loop.time() - start, retried(cluster), [r.value for r in cluster.records("t")]

    waited, retries, values = simulate(main, config=ClusterConfig(broker_session_timeout=2.0))
    assert 2.0 <= waited < 2.5  # acknowledged right after the controller failed it over
    assert retries[0]["error"] == "BrokerNotAvailableError" and retries[0]["attempts"] > 5
    assert values == [b"1", b"2"]  # nothing lost, nothing doubled


def test_delivery_timeout_fails_the_send_when_no_replica_comes_back():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        for broker in (1, 2, 3):
            cluster.brokers.shutdown(broker)
        try:
            await producer.send("t", key=None, value=b"x", partition=0)
        except Exception as exc:
            return type(exc).__name__, asyncio.get_running_loop().time()

    name, when = simulate(main, config=ClusterConfig(delivery_timeout=10.0))
    assert name == "DeliveryTimeoutError" and 10.0 <= when < 10.5


def test_transaction_coordinator_down_commit_retries_until_it_fails_over():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="w").create_producer(
            client_id="w", transactional_id="tx"
        )
        await producer.start()
        await producer.begin_transaction()
        await producer.send("t", key=None, value=b"v", partition=0)
        cluster.brokers.crash(cluster.brokers.leader(coordinator_partition(TXN_COORDINATOR_TOPIC, "tx")))
        await producer.commit_transaction()
        return [r.value for r in cluster.records("t")], retried(cluster)

    values, retries = simulate(main, config=ClusterConfig(broker_session_timeout=3.0))
    assert values == [b"v"]
    assert retries[-1]["request"] == "end-transaction"
    assert retries[-1]["error"] == "CoordinatorNotAvailableError"


def test_delay_fault_adds_latency_to_every_request():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        conditions = LinkConditions()
        producer = SimTransport(cluster=cluster, name="p", conditions=conditions).create_producer(
            client_id="p"
        )
        loop = asyncio.get_running_loop()
        times = []
        for delayed in (False, True):
            if delayed:
                conditions.delay(1.5, until=loop.time() + 10)
            start = loop.time()
            await producer.send("t", key=None, value=b"v", partition=0)
            times.append(loop.time() - start)
        return times

    plain, delayed = simulate(main)
    assert plain < 0.01 and 1.5 <= delayed < 1.51
