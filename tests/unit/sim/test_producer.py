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


def refusal(coro):
    """The error a send fails with, and the virtual time it took."""

    async def attempt():
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await coro
        except Exception as exc:
            return type(exc).__name__, loop.time() - start
        return None, loop.time() - start

    return attempt()


def test_a_record_larger_than_max_request_size_is_refused_for_good():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        assert producer.max_request_size == 1_000_000  # Faust's and aiokafka's default
        small = await producer.send("t", key=None, value=b"x" * 999_000)
        refused = await refusal(producer.send("t", key=b"k", value=b"x" * 1_000_000))
        write = cluster.history.writes[-1]
        return small.offset, refused, write.refused, write.acked, len(cluster.records("t"))

    offset, (error, took), refused, acked, stored = simulate(main)
    assert offset == 0 and error == "MessageSizeTooLargeError" and took == 0.0  # refused before sending
    assert (refused, acked, stored) == ("MessageSizeTooLargeError", False, 1)


def test_the_apps_producer_max_request_size_applies_and_refusals_are_counted():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        app = type("App", (), {"conf": type("Conf", (), {"producer_max_request_size": 500})()})()
        producer = SimTransport(cluster=cluster, name="p", app=app).create_producer(client_id="p")
        error, _ = await refusal(producer.send("t", key=None, value=b"x" * 500))
        return error, cluster.stats["send-refused"], [e.kind for e in cluster.trace.of_kind("send-refused")]

    error, counted, traced = simulate(main)
    assert error == "MessageSizeTooLargeError" and counted == 1 and traced == ["send-refused"]


def test_a_batch_larger_than_the_topics_max_message_bytes_is_refused_by_the_leader():
    async def main(cluster):
        cluster.create_topic("t", 1, {"max.message.bytes": "1000"}, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        fits = await producer.send("t", key=None, value=b"x" * 500, partition=0)
        error, took = await refusal(producer.send("t", key=None, value=b"x" * 1000, partition=0))
        return fits.offset, error, took > 0, [r.offset for r in cluster.records("t")]

    offset, error, sent, offsets = simulate(main)
    assert (offset, error, sent, offsets) == (0, "MessageSizeTooLargeError", True, [0])


def test_a_send_to_an_unknown_topic_without_auto_creation_is_refused():
    async def main(cluster):
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        error, _ = await refusal(producer.send("missing", key=None, value=b"v"))
        return error, cluster.stats["send-refused"]

    assert simulate(main, config=ClusterConfig(auto_create_topics=False)) == (
        "UnknownTopicOrPartitionError", 1,
    )
