"""aiokafka itself against the simulated cluster on the Kafka wire (sim/wire, issue 12's first step).

No socket and no thread: aiokafka's connection gets an in-memory transport
on the virtual loop, and the simulated broker decodes its requests with
aiokafka's own protocol structs.
"""

import asyncio

import pytest
from aiokafka import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest_v5

import sim.wire.broker
from detstream._types import TP
from sim.errors import RealIOForbidden
from sim.testing import simulate
from sim.wire.broker import SERVED, WireBroker, serve_cluster
from sim.wire.codec import decode_request, request_class
from sim.wire.connection import frames

BOOTSTRAP = [("localhost", 9092)]


def _serve(cluster, topic: str, partitions: int) -> list[WireBroker]:
    """Create ``topic`` and put the cluster's brokers (and the bootstrap address) on the wire."""
    cluster.create_topic(topic, partitions, by="operator")
    return serve_cluster(asyncio.get_running_loop(), cluster, BOOTSTRAP)


def test_aiokafka_bootstraps_and_reads_metadata_from_the_simulated_brokers():
    async def main(cluster):
        _serve(cluster, "orders", 4)
        client = AIOKafkaClient(bootstrap_servers="localhost:9092")
        await client.bootstrap()
        try:
            metadata = await client.fetch_all_metadata()  # a Metadata request for every topic
            brokers = sorted((b.nodeId, b.host, b.port) for b in metadata.brokers())
            partitions = sorted(metadata.partitions_for_topic("orders"))
            leaders = [metadata.leader_for_partition(TP("orders", p)) for p in partitions]
            return brokers, partitions, leaders, [cluster.brokers.leader(TP("orders", p)) for p in partitions]
        finally:
            await client.close()

    brokers, partitions, leaders, expected = simulate(main, seed=1)
    assert brokers == [(1, "b1.sim", 9092), (2, "b2.sim", 9092), (3, "b3.sim", 9092)]
    assert partitions == [0, 1, 2, 3]
    assert leaders == expected  # the leaders the simulated cluster elected


def test_the_same_seed_reads_the_same_metadata_after_a_broker_crash():
    async def main(cluster):
        _serve(cluster, "orders", 3)
        cluster.brokers.crash(2)
        await asyncio.sleep(30)  # the controller notices and fails partitions over
        client = AIOKafkaClient(bootstrap_servers="localhost:9092")
        await client.bootstrap()
        try:
            metadata = await client.fetch_all_metadata()
            return sorted(b.nodeId for b in metadata.brokers()), [
                metadata.leader_for_partition(TP("orders", p)) for p in range(3)
            ], asyncio.get_running_loop().time()
        finally:
            await client.close()

    first = simulate(main, seed=3)
    assert first == simulate(main, seed=3)
    live, leaders, _ = first
    assert live == [1, 3] and 2 not in leaders


def test_an_api_not_served_yet_closes_the_connection():
    broker = WireBroker.__new__(WireBroker)
    broker.name = "b1"
    list_groups = request_class(16, 0)  # ListGroups
    assert list_groups is not None and 16 not in SERVED
    request = list_groups()
    message = request.build_request_header(correlation_id=7, client_id="x").encode() + request.encode()
    assert asyncio.run(broker.serve(message, None)) is None


def test_frames_split_a_stream_and_keep_a_partial_one():
    message = MetadataRequest_v5(["a"], False)
    header = message.build_request_header(correlation_id=5, client_id="c")
    body = header.encode() + message.encode()
    stream = bytearray(len(body).to_bytes(4, "big") + body + len(body).to_bytes(4, "big") + body[:3])
    found = frames(stream)
    assert len(found) == 1 and len(stream) == 7
    decoded = decode_request(found[0])
    assert (decoded.api_key, decoded.api_version, decoded.correlation_id) == (3, 5, 5)
    assert decoded.body.topics == ["a"]


def test_other_addresses_are_still_real_io_and_refused():
    async def main(cluster):
        serve_cluster(asyncio.get_running_loop(), cluster, BOOTSTRAP)
        await asyncio.get_running_loop().create_connection(asyncio.Protocol, "example.com", 9092)

    with pytest.raises(RealIOForbidden):
        simulate(main, seed=1)


def test_a_crashed_broker_stays_in_the_metadata_until_the_controller_notices():
    async def main(cluster):
        _serve(cluster, "orders", 3)
        led_by_2 = [p for p in range(3) if cluster.brokers.leader(TP("orders", p)) == 2]
        cluster.brokers.crash(2)
        client = AIOKafkaClient(bootstrap_servers="localhost:9092")
        await client.bootstrap()
        try:
            metadata = await client.fetch_all_metadata()
            return led_by_2, sorted(b.nodeId for b in metadata.brokers()), [
                metadata.leader_for_partition(TP("orders", p)) for p in led_by_2
            ]
        finally:
            await client.close()

    led_by_2, live, leaders = simulate(main, seed=3)
    assert led_by_2 and live == [1, 2, 3] and leaders == [2] * len(led_by_2)  # as Kafka shows it for 9 s


def test_an_aiokafka_producer_and_consumer_round_trip_through_the_simulated_cluster():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def main(cluster):
        _serve(cluster, "orders", 2)
        producer = AIOKafkaProducer(bootstrap_servers="localhost:9092")
        await producer.start()
        try:
            sent = [await producer.send_and_wait("orders", key=b"k%d" % i, value=b"v%d" % i, partition=i % 2,
                                                 timestamp_ms=1_700_000_000_000 + i,
                                                 headers=[("h", b"%d" % i)])
                    for i in range(6)]
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers="localhost:9092", enable_auto_commit=False,
                                    auto_offset_reset="earliest")
        await consumer.start()
        try:
            consumer.assign([TP("orders", 0), TP("orders", 1)])
            got = []
            while len(got) < 6:
                batch = await consumer.getmany(timeout_ms=1000)
                got += [(r.partition, r.offset, r.key, r.value, r.timestamp, list(r.headers))
                        for records in batch.values() for r in records]
            end = await consumer.end_offsets([TP("orders", 0), TP("orders", 1)])
        finally:
            await consumer.stop()
        logged = [(r.partition, r.offset, r.key, r.value) for r in cluster.records("orders")]
        return [(m.partition, m.offset) for m in sent], sorted(got), logged, end

    sent, got, logged, end = simulate(main, seed=2)
    assert sent == [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    assert sorted(logged) == [(p, o, k, v) for p, o, k, v, _, _ in got]  # what the cluster holds
    assert got[0] == (0, 0, b"k0", b"v0", 1_700_000_000_000, [("h", b"0")])
    assert end == {TP("orders", 0): 3, TP("orders", 1): 3}


def test_records_sent_without_a_timestamp_are_stamped_in_virtual_time():
    from aiokafka import AIOKafkaProducer

    async def main(cluster):
        _serve(cluster, "ticks", 1)
        producer = AIOKafkaProducer(bootstrap_servers="localhost:9092")
        await producer.start()
        await asyncio.sleep(5)
        try:
            meta = await producer.send_and_wait("ticks", b"tick")
        finally:
            await producer.stop()
        return meta.timestamp, [r.timestamp for r in cluster.records("ticks")]

    first = simulate(main, seed=4)
    assert first == simulate(main, seed=4)  # aiokafka's C batch builder reads no real clock
    stamp, logged = first
    assert 1_700_000_005_000 <= stamp < 1_700_000_006_000 and logged == [stamp / 1000]


def test_an_idempotent_producer_gets_a_producer_id_and_a_retried_batch_is_appended_once():
    from aiokafka import AIOKafkaProducer

    captured = []

    async def main(cluster):
        wire = _serve(cluster, "payments", 1)
        producer = AIOKafkaProducer(bootstrap_servers="localhost:9092", enable_idempotence=True)
        await producer.start()
        serve = wire[0].serve  # keep the produce request as sent, to send it once more

        async def keep(message, client):
            captured.append(message)
            return await serve(message, client)

        leader = cluster.brokers.leader(TP("payments", 0))
        wire[leader - 1].serve = keep
        try:
            first = await producer.send_and_wait("payments", b"p1")
        finally:
            await producer.stop()
        produce = next(m for m in captured if m[:2] == b"\x00\x00")  # api key 0
        again = await wire[leader - 1].serve(produce, None)  # the retry after a lost response
        return first.offset, [r.value for r in cluster.records("payments")], again, cluster.stats["batch-deduped"]

    offset, values, again, deduped = simulate(main, seed=5)
    assert offset == 0 and values == [b"p1"] and deduped == 1
    assert again is not None  # answered with the first append's offset, not appended again


def test_a_consumer_commits_and_reads_back_offsets_at_the_group_coordinator():
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    async def main(cluster):
        _serve(cluster, "orders", 2)
        consumer = AIOKafkaConsumer(bootstrap_servers="localhost:9092", group_id="billing",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition("orders", 0), TopicPartition("orders", 1)]
            consumer.assign(tps)
            await consumer.commit({tps[0]: OffsetAndMetadata(7, ""), tps[1]: OffsetAndMetadata(3, "")})
            read_back = {tp.partition: await consumer.committed(tp) for tp in tps}
        finally:
            await consumer.stop()
        return read_back, dict(cluster.group("billing").committed)

    read_back, stored = simulate(main, seed=6)
    assert read_back == {0: 7, 1: 3}
    assert stored == {TP("orders", 0): 7, TP("orders", 1): 3}  # the simulated coordinator holds them


def test_two_aiokafka_group_consumers_share_a_topic_and_one_takes_all_when_the_other_leaves():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def main(cluster):
        _serve(cluster, "orders", 4)
        # explicit client ids: aiokafka numbers its default ones per process, not per run
        producer = AIOKafkaProducer(bootstrap_servers="localhost:9092", client_id="feed")
        await producer.start()
        for i in range(8):
            await producer.send_and_wait("orders", b"order-%d" % i, partition=i % 4)
        await producer.stop()

        def consumer(name):
            return AIOKafkaConsumer("orders", bootstrap_servers="localhost:9092", group_id="billing",
                                    auto_offset_reset="earliest", enable_auto_commit=False, client_id=name)

        first, second = consumer("first"), consumer("second")
        await first.start()
        await second.start()
        seen: dict[str, list[bytes]] = {"first": [], "second": []}
        try:
            while len(seen["first"]) + len(seen["second"]) < 8:
                for name, member in (("first", first), ("second", second)):
                    batch = await member.getmany(timeout_ms=500)
                    seen[name] += [r.value for records in batch.values() for r in records]
            shared = (sorted(tp.partition for tp in first.assignment()),
                      sorted(tp.partition for tp in second.assignment()))
            await second.stop()  # leaves the group: a rebalance gives the first everything
            while len(first.assignment()) < 4:
                await first.getmany(timeout_ms=500)
            alone = sorted(tp.partition for tp in first.assignment())
        finally:
            await first.stop()
        values = sorted(seen["first"] + seen["second"])
        return shared, alone, values, bool(seen["first"]) and bool(seen["second"]), cluster.trace.sha256()

    shared, alone, values, both, sha = simulate(main, seed=7)
    assert sha == simulate(main, seed=7)[-1]  # the group's trace (joins, rebalances, commits) repeats
    assert sorted(shared[0] + shared[1]) == [0, 1, 2, 3] and shared[0] and shared[1]
    assert alone == [0, 1, 2, 3] and both
    assert values == sorted(b"order-%d" % i for i in range(8))


def test_a_transaction_commits_its_records_and_offsets_together_and_an_abort_hides_them():
    """aiokafka's transactional producer end to end: the markers travel as control batches,
    and a read_committed consumer drops the aborted records itself (the fetch names them)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.structs import TopicPartition

    async def read_all(isolation):
        consumer = AIOKafkaConsumer(bootstrap_servers="localhost:9092", enable_auto_commit=False,
                                    auto_offset_reset="earliest", isolation_level=isolation)
        await consumer.start()
        try:
            tp = TopicPartition("receipts", 0)
            consumer.assign([tp])
            got = []
            for _ in range(5):
                batch = await consumer.getmany(timeout_ms=500)
                got += [r.value for records in batch.values() for r in records]
            return got, await consumer.position(tp)
        finally:
            await consumer.stop()

    async def main(cluster):
        _serve(cluster, "receipts", 1)
        cluster.create_topic("orders", 1, by="operator")
        producer = AIOKafkaProducer(bootstrap_servers="localhost:9092", transactional_id="billing-w1")
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send("receipts", b"r1", partition=0)
                await producer.send("receipts", b"r2", partition=0)
                await producer.send_offsets_to_transaction({TopicPartition("orders", 0): 5}, "billing")
            await producer.begin_transaction()
            await producer.send("receipts", b"never", partition=0)
            await producer.abort_transaction()
        finally:
            await producer.stop()
        committed = await read_all("read_committed")
        uncommitted = await read_all("read_uncommitted")
        return committed, uncommitted, dict(cluster.group("billing").committed), cluster.end_offset(TP("receipts", 0))

    committed, uncommitted, offsets, end = simulate(main, seed=7)
    assert end == 5  # r1, r2, commit marker, never, abort marker
    assert committed == ([b"r1", b"r2"], 5)  # past both markers and the aborted record
    assert uncommitted == ([b"r1", b"r2", b"never"], 5)
    assert offsets == {TP("orders", 0): 5}


def test_a_producer_that_takes_over_a_transactional_id_fences_the_one_before():
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import ProducerFenced

    async def main(cluster):
        _serve(cluster, "receipts", 1)
        zombie = AIOKafkaProducer(bootstrap_servers="localhost:9092", transactional_id="billing-w1")
        await zombie.start()
        await zombie.begin_transaction()
        await zombie.send_and_wait("receipts", b"from the zombie", partition=0)
        successor = AIOKafkaProducer(bootstrap_servers="localhost:9092", transactional_id="billing-w1")
        await successor.start()  # InitProducerId: epoch bumped, the zombie's transaction aborted
        try:
            await zombie.commit_transaction()
            fenced = False
        except ProducerFenced:
            fenced = True
        finally:
            await zombie.stop()
            await successor.stop()
        log = cluster.log_of(TP("receipts", 0))
        return fenced, sorted(log.aborted), [r.value for r in cluster.records("receipts")]

    fenced, aborted, visible = simulate(main, seed=8)
    assert fenced and aborted == [0] and visible == []


def test_responses_come_back_in_the_order_of_their_requests():
    """A response drawn a shorter latency than the one before it still waits for it (TCP)."""
    import struct

    from sim.loop import run
    from sim.wire.connection import MemoryTransport

    class Broker:
        name = "b1"
        latencies = iter([0.0, 1.0, 0.0, 0.0])  # request 1 there, back; request 2 there, back

        def latency(self):
            return next(self.latencies)

        def held(self, client, what, message=b""):
            return 0.0

        def in_flight(self, client):
            return 0.0

        def alive(self):
            return True

        async def serve(self, message, client):
            return message  # echoes the frame's message

    class Client(asyncio.Protocol):
        def __init__(self):
            self.got = []

        def data_received(self, data):
            self.got.append((asyncio.get_running_loop().time(), data[-1:]))

    async def main():
        client = Client()
        transport = MemoryTransport(asyncio.get_running_loop(), client, Broker())
        for tag in (b"1", b"2"):
            transport.write(struct.pack(">i", 1) + tag)
        await asyncio.sleep(2.0)
        return client.got

    assert run(main()) == [(1.0, b"1"), (1.0, b"2")]


@pytest.mark.parametrize(("abort", "served"), [(True, ["discarded"]), (False, [(10.0, b"1")])])
def test_a_request_a_cut_holds_is_discarded_if_its_connection_is_aborted(abort, served):
    """TCP holds a request sent into a cut until it heals, closed connection or not; but a
    connection closed as an abort (SO_LINGER 0, as the Kafka driver's are) discards it."""
    import socket
    import struct

    from sim.loop import run
    from sim.wire.connection import MemoryTransport

    class Broker:
        name = "b1"

        def __init__(self):
            self.served = []

        def latency(self):
            return 0.0

        def held(self, client, what, message=b""):
            return 10.0 if what == "request" else 0.0  # a cut that heals at 10 s

        def in_flight(self, client):
            return 0.0

        def discarded(self, client):
            self.served.append("discarded")

        def alive(self):
            return True

        async def serve(self, message, client):
            self.served.append((asyncio.get_running_loop().time(), message))
            return None

    async def main():
        broker = Broker()
        transport = MemoryTransport(asyncio.get_running_loop(), asyncio.Protocol(), broker)
        if abort:
            transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.write(struct.pack(">i", 1) + b"1")
        await asyncio.sleep(1.0)
        transport.close()  # the client gave up on it
        await asyncio.sleep(20.0)
        return broker.served

    assert run(main()) == served


def test_a_group_level_offset_fetch_error_is_retried_not_read_as_nothing_committed(monkeypatch):
    """OffsetFetch v3 says COORDINATOR_LOAD_IN_PROGRESS at the top, with no partitions (as a
    coordinator loading a group after a failover does). aiokafka alone reads that as "no
    committed offset" and the consumer would start over; detstream's compat makes it retry."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.protocol.commit import OffsetFetchResponse_v3
    from aiokafka.structs import OffsetAndMetadata, TopicPartition

    import detstream.transport.kafka.consumer  # noqa: F401 - installs the check

    served = WireBroker.offset_fetch
    loading = {"left": 2}

    def offset_fetch(self, request):
        if loading["left"]:
            loading["left"] -= 1
            return OffsetFetchResponse_v3(0, [], 14)  # COORDINATOR_LOAD_IN_PROGRESS
        return served(self, request)

    monkeypatch.setitem(sim.wire.broker._HANDLERS, 9, offset_fetch)

    async def main(cluster):
        _serve(cluster, "orders", 1)
        consumer = AIOKafkaConsumer(bootstrap_servers="localhost:9092", group_id="billing",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition("orders", 0)
            consumer.assign([tp])
            await consumer.commit({tp: OffsetAndMetadata(7, "")})
            loading["left"] = 2
            return await consumer.committed(tp), loading["left"]
        finally:
            await consumer.stop()

    committed, left = simulate(main, seed=9)
    assert committed == 7 and left == 0  # asked again until the coordinator had loaded the group
