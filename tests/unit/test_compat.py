"""The private details of mode and aiokafka that detstream.compat relies on still exist.

An upgrade of either library that moves one fails here, naming it.
"""

from __future__ import annotations

import asyncio
from importlib.metadata import version

import mode
import pytest
from mode.debug import BlockingDetector

from detstream import compat


def test_the_installed_versions_are_the_ones_compat_was_read_from():
    assert version("mode-streaming").startswith(compat.TESTED_MODE + ".")
    assert version("aiokafka").startswith(compat.TESTED_AIOKAFKA + ".")


@pytest.mark.parametrize("strategy", [mode.OneForOneSupervisor, mode.OneForAllSupervisor])
def test_a_supervisors_restart_budget_can_be_widened(strategy):
    supervisor = strategy(max_restarts=100.0, over=1.0)
    compat.widen_restart_budget(supervisor, 100.0)
    taken = [supervisor._bucket.pour() for _ in range(3)]  # three actors restarted at once
    assert taken == [True, True, True]


def test_the_blocking_detector_hooks_detstream_overrides_exist():
    for name in ("_on_alarm", "_reset_signal"):
        assert callable(getattr(BlockingDetector, name, None)), name


def test_the_aiokafka_details_compat_reaches_exist():
    """Checked on real aiokafka objects, built without connecting to anything."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.consumer.group_coordinator import GroupCoordinator

    async def inspect():
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9")
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", group_id="g")
        admin = AIOKafkaAdminClient(bootstrap_servers="127.0.0.1:9")
        try:
            found = {
                "producer.client._wait_on_metadata": callable(producer.client._wait_on_metadata),
                "producer._txn_manager": compat.transaction_manager(producer) is None,
                "producer._max_request_size": compat.max_request_size(producer) > 0,
                "producer._partitioner": compat.default_partition(producer, b"k", [0, 1], [0, 1])
                in (0, 1),
                "admin._send_request": callable(admin._send_request),
                "consumer._subscription": compat.current_assignment(consumer) is None,
                "consumer._coordinator": not compat.joining_group(consumer),  # not started
                "consumer._client": compat.require_stable_offsets(consumer) is None
                and consumer._client._detstream_require_stable,
                "GroupCoordinator.commit_offsets": callable(GroupCoordinator.commit_offsets),
                "GroupCoordinator._send_req": callable(GroupCoordinator._send_req),
                # compat.watch_heartbeats wraps it; the routine looks it up at every beat
                "GroupCoordinator._do_heartbeat": callable(GroupCoordinator._do_heartbeat)
                and "_do_heartbeat" in GroupCoordinator._heartbeat_routine.__code__.co_names,
            }
            with pytest.raises(Exception, match="(?i)too large|size"):
                compat.check_record_size(producer, None, b"x" * (2 << 20), [])
        finally:
            await producer.client.close()
            await consumer._client.close()
        return found

    found = asyncio.run(inspect())
    assert all(found.values()), found
    members = GroupCoordinator.__init__.__code__.co_names
    assert "generation" in members and "member_id" in members
    from aiokafka.consumer.group_coordinator import BaseCoordinator

    # compat.fetch_offsets_as reads the mark require_stable_offsets puts on the consumer's client
    assert "_client" in BaseCoordinator.__init__.__code__.co_names
    from aiokafka.client import AIOKafkaClient

    bootstrap = AIOKafkaClient.bootstrap.__code__  # compat.bootstrap_connections reads its frame
    assert bootstrap.co_name == "bootstrap" and "bootstrap_conn" in bootstrap.co_varnames


def test_the_senders_txn_offset_commit_handler_is_looked_up_where_compat_replaces_it():
    """``Sender._do_txn_offset_commit`` names ``TxnOffsetCommitHandler`` as a module global,
    and a transactional producer's sender has the transaction manager and the metadata slot."""
    import asyncio

    from aiokafka import AIOKafkaProducer
    from aiokafka.producer import sender

    from detstream.transport.base import GroupMetadata
    from detstream.transport.kafka import member_offsets

    assert "TxnOffsetCommitHandler" in sender.Sender._do_txn_offset_commit.__code__.co_names
    member_offsets.install()
    assert sender.TxnOffsetCommitHandler is member_offsets.MemberTxnOffsetCommitHandler

    async def inspect():
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id="t")
        try:
            group = GroupMetadata("g", 3, "m-1")
            compat.attach_group_metadata(producer, group)
            manager = compat.transaction_manager(producer)
            manager.set_pid_and_epoch(7, 0)
            manager.begin_transaction()
            manager._txn_partitions.add("tp")
            manager.consumer_group_added("g")
            compat.fail_transaction_abortably(producer._sender, RuntimeError("refused"))
            kept = (manager.state.name, set(manager.txn_partitions), manager.is_empty_transaction())
            return compat.attached_group_metadata(producer._sender) is group, kept
        finally:
            await producer.client.close()

    # an abortable error that still knows what the broker's transaction holds (its abort sends EndTxn)
    assert asyncio.run(inspect()) == (True, ("ABORTABLE_ERROR", {"tp"}, False))


def test_a_cancelled_bootstrap_hands_over_the_connection_it_left_open():
    """A start cancelled while aiokafka's bootstrap waits: its connection is found in the
    cancellation's traceback (``start_client`` closes it; aiokafka 0.14 does not)."""
    import asyncio

    class Conn:
        closed = False

    async def bootstrap(bootstrap_conn):
        await asyncio.sleep(10)

    async def start(conn):
        task = asyncio.ensure_future(bootstrap(conn))
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError as exc:
            return compat.bootstrap_connections(exc)

    conn = Conn()
    assert asyncio.run(start(conn)) == [conn]


def test_a_join_completing_while_the_kafka_consumer_stops_is_ignored():
    """aiokafka may finish a rebalance during ``stop()``: the listener then has nothing to take
    (it used to raise "not started" from inside aiokafka's coordinator)."""
    import asyncio

    from aiokafka.structs import TopicPartition

    from detstream.transport.kafka.driver import AIOKafkaTransport

    told = []

    class Listener:
        async def on_partitions_assigned(self, tps):
            told.append(tps)

    consumer = AIOKafkaTransport("kafka://localhost:9092").create_consumer(client_id="w1", group_id="g")
    consumer._listener = Listener()  # stopped: no aiokafka consumer behind it
    asyncio.run(consumer._adapter.on_partitions_assigned({TopicPartition("orders", 0)}))
    assert told == []


def test_clients_bootstrapping_at_once_each_get_their_own_reasons_back():
    """Clients of one process starting together collect equal reasons lists; ending one
    removed the first equal list, another client's, and a later end raised ValueError
    (a worker's stop failed under --driver aiokafka, group_by_chain chaos)."""
    import logging

    from detstream.transport.aiokafka_logs import AIOKAFKA_LOGS

    log = logging.getLogger("aiokafka")  # aiokafka.client logs there
    first, second, third = (AIOKAFKA_LOGS.bootstrap_errors() for _ in range(3))
    collected = [first.__enter__(), second.__enter__(), third.__enter__()]
    second.__exit__(None, None, None)  # ends while its reasons equal the others' (empty)
    log.error("Unable connect to node with id 1: refused")
    first.__exit__(None, None, None)
    third.__exit__(None, None, None)
    assert collected == [["node with id 1: refused"], [], ["node with id 1: refused"]]


def test_a_keyed_record_goes_where_aiokafkas_default_partitioner_sends_it():
    """``default_partition`` takes a shortcut (a remembered murmur2) for aiokafka's own partitioner."""
    from aiokafka.partitioner import DefaultPartitioner

    class Producer:
        _partitioner = DefaultPartitioner()

    every = list(range(7))
    for key in [b"", b"a", b"word", "ünïcode".encode(), bytes(range(40)), bytes(200)] * 2:
        assert compat.default_partition(Producer(), key, every, every) == DefaultPartitioner()(key, every, every)


def test_a_partitions_fetch_state_is_read_without_a_request():
    """``fetch_state``: position, highwater and last stable offset of an assigned partition."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def inspect():
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", enable_auto_commit=False)
        tp, other = TopicPartition("t", 0), TopicPartition("t", 1)
        try:
            before = compat.fetch_state(consumer, tp)
            consumer.assign([tp])
            unfetched = compat.fetch_state(consumer, tp)
            state = compat.current_assignment(consumer).state_value(tp)
            state.reset_to(5)  # what the fetcher does once it knows where to start
            state.highwater, state.lso = 9, 7  # what a fetch response sets
            return before, unfetched, compat.fetch_state(consumer, tp), compat.fetch_state(consumer, other)
        finally:
            await consumer._client.close()

    before, unfetched, fetched, unassigned = asyncio.run(inspect())
    assert before == unassigned == (None, None, None)
    assert unfetched == (None, None, None)
    assert fetched == (5, 9, 7)


def test_a_batch_appender_builds_the_bytes_aiokafkas_append_builds():
    """``batch_appender``: the same batch as ``BatchBuilder.append`` record by record, and a
    full batch closes itself and takes nothing more, as there."""
    from aiokafka.producer.message_accumulator import BatchBuilder

    def builder():
        return BatchBuilder(200, 0)

    ours, theirs = builder(), builder()
    append = compat.batch_appender(ours)
    records = [(1000 + i, b"k%d" % i, b"v" * (i * 7), [("h", b"x")] if i % 2 else []) for i in range(12)]
    taken = [append(ms, key, value, headers) for ms, key, value, headers in records]
    expected = [theirs.append(timestamp=ms, key=key, value=value, headers=headers) is not None
                for ms, key, value, headers in records]
    assert taken == expected and False in taken  # some fit, then the batch was full
    assert ours._closed and theirs._closed
    assert not append(1, b"late", b"v", [])
    assert ours.record_count() == theirs.record_count()
    assert bytes(ours._build()) == bytes(theirs._build())


def test_a_batch_with_serializers_appends_through_them():
    from aiokafka.producer.message_accumulator import BatchBuilder

    batch = BatchBuilder(1000, 0, value_serializer=lambda v: v.encode())
    assert compat.batch_appender(batch)(1, None, "text", [])
    assert batch.record_count() == 1


def test_fetched_records_are_made_by_the_given_maker_from_then_on():
    """``build_fetched_records_with``: the records a fetch result still holds come out of
    aiokafka's iterator as ``make`` builds them (offsets, keys and values as aiokafka reads
    them); a fetch error and a consumer not started are left alone."""
    import asyncio
    from types import SimpleNamespace

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.consumer.fetcher import Fetcher, FetchError, FetchResult, PartitionRecords
    from aiokafka.record.default_records import DefaultRecordBatchBuilder
    from aiokafka.record.memory_records import MemoryRecords

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 16)
    for i in range(4):
        builder.append(i, timestamp=1000 + i, key=b"k%d" % i, value=b"v%d" % i,
                       headers=[("h", b"x")] if i == 3 else [])
    tp = TopicPartition("t", 0)

    def fetched() -> PartitionRecords:
        return PartitionRecords(tp, MemoryRecords(bytes(builder.build())), [], 0, None, None, True,
                                0)

    records = fetched()
    first = next(records)  # aiokafka's own record, made before the maker was set
    error = FetchError(error=RuntimeError("x"), backoff=0)
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_records={
        tp: FetchResult(tp, assignment=None, partition_records=records, backoff=0),
        TopicPartition("t", 1): error,
    }))
    compat.build_fetched_records_with(consumer, lambda where, r: (where, r.offset, r.key, r.value,
                                                                  tuple(r.headers)))
    assert (first.offset, first.key) == (0, b"k0")
    assert list(records) == [(tp, 1, b"k1", b"v1", ()), (tp, 2, b"k2", b"v2", ()),
                             (tp, 3, b"k3", b"v3", (("h", b"x"),))]
    assert [(r.offset, r.timestamp) for r in fetched()] == [(i, 1000 + i) for i in range(4)]
    assert "_records" in Fetcher.__init__.__code__.co_names

    async def not_started() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")
        try:
            compat.build_fetched_records_with(consumer, lambda where, r: None)  # nothing to reach
        finally:
            await consumer._client.close()

    asyncio.run(not_started())


def test_a_record_without_a_key_goes_where_aiokafkas_default_partitioner_draws_it():
    """The Kafka driver draws a keyless record's partition itself, as aiokafka's
    ``DefaultPartitioner`` does: ``random.choice`` of the available partitions, else of all."""
    import random

    from aiokafka.partitioner import DefaultPartitioner

    every, available = [0, 1, 2, 3, 4, 5], [1, 3, 4]
    for partitions in (available, []):
        random.seed(7)
        theirs = [DefaultPartitioner()(None, every, partitions) for _ in range(50)]
        random.seed(7)
        ours = [random.choice(partitions or every) for _ in range(50)]
        assert ours == theirs and len(set(ours)) > 1


def test_an_expulsion_resets_the_coordinator_the_way_compat_reads_it():
    """aiokafka's answer to an unknown member id or a stale generation (``reset_generation``)
    leaves generation -1 and an empty member id: what ``compat.membership_reset`` (and so
    ``KafkaConsumer.expelled``) looks for. Before that, a joined member is not reset."""
    from types import SimpleNamespace

    from aiokafka.consumer.group_coordinator import GroupCoordinator

    coordinator = GroupCoordinator.__new__(GroupCoordinator)  # no client, no task
    coordinator.generation, coordinator.member_id = 3, "w1-5e3a"
    coordinator._rejoin_needed_fut = SimpleNamespace(done=lambda: True)  # rejoin requested already
    consumer = SimpleNamespace(_coordinator=coordinator)
    assert not compat.membership_reset(consumer)
    coordinator.reset_generation()
    assert compat.membership_reset(consumer)
    assert not compat.membership_reset(SimpleNamespace(_coordinator=None))


def test_watched_heartbeats_report_the_send_time_of_those_the_group_answered():
    """``compat.watch_heartbeats`` wraps aiokafka's own ``_do_heartbeat`` (which its heartbeat
    routine looks up at each beat): an answer with no error, or "rebalancing" (aiokafka counts
    both as success), reports when that heartbeat was sent; an unknown member id does not."""
    from types import SimpleNamespace

    from aiokafka.consumer.group_coordinator import GroupCoordinator
    from aiokafka.errors import RebalanceInProgressError, UnknownMemberIdError

    coordinator = GroupCoordinator.__new__(GroupCoordinator)  # no client, no task
    coordinator.group_id, coordinator.generation, coordinator.member_id = "g", 3, "w1-5e3a"
    coordinator._rejoin_needed_fut = SimpleNamespace(done=lambda: True)
    coordinator.request_rejoin = lambda: None
    answers = []

    async def send(request):
        await asyncio.sleep(0.25)  # the round trip: the report names the send, not the answer
        return SimpleNamespace(error_code=answers.pop(0))

    coordinator._send_req = send
    reported: list[float] = []
    consumer = SimpleNamespace(_coordinator=coordinator)
    compat.watch_heartbeats(consumer, reported.append)
    compat.watch_heartbeats(consumer, reported.append)  # once: not wrapped twice

    async def beats():
        loop = asyncio.get_running_loop()
        results = []
        for code in (0, RebalanceInProgressError.errno, UnknownMemberIdError.errno):
            answers.append(code)
            sent = loop.time()
            results.append((await coordinator._do_heartbeat(), sent))
        return results

    results = asyncio.run(beats())
    assert [ok for ok, _ in results] == [True, True, False]
    assert len(reported) == 2  # the send's time, not the answer's 0.25 s later
    assert all(sent <= at < sent + 0.2 for at, (_, sent) in zip(reported, results[:2], strict=True))
    assert compat.membership_reset(consumer)  # the unknown member id reset it, as aiokafka does


def test_an_abort_after_an_abortable_error_leaves_no_unread_future_exception_behind():
    """aiokafka's abort replaces the failed transaction's waiter without reading its error;
    read first (as the transactional producer's abort does), asyncio has nothing to log."""
    import gc

    from aiokafka import AIOKafkaProducer

    async def abort_after_error(read_first: bool) -> list[str]:
        logged: list[str] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: logged.append(ctx["message"]))
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", transactional_id="t")
        try:
            manager = compat.transaction_manager(producer)
            manager.set_pid_and_epoch(7, 0)
            manager.begin_transaction()
            manager.error_transaction(RuntimeError("CommitFailedError"))
            read = compat.read_transaction_error(producer) if read_first else None
            manager.aborting_transaction()  # what AIOKafkaProducer.abort_transaction does first
            gc.collect()
            return logged + ([repr(read)] if read_first else [])
        finally:
            await producer.client.close()

    assert asyncio.run(abort_after_error(False)) == ["Future exception was never retrieved"]
    assert asyncio.run(abort_after_error(True)) == ["RuntimeError('CommitFailedError')"]


def test_a_failed_offset_lookup_cancels_its_requests_to_the_other_brokers():
    """aiokafka's lookup gathers one ListOffsets request per leader; when one fails, the
    others ran on (a broker the host cannot reach: until its request timeout, past the
    consumer's stop). Driven through aiokafka's own lookup code, with a client whose
    broker 1 fails and whose broker 2 never answers."""
    from aiokafka import TopicPartition
    from aiokafka.consumer.fetcher import Fetcher
    from aiokafka.errors import KafkaConnectionError

    import detstream.transport.kafka.consumer  # noqa: F401 - installs the cancelling lookup

    class Client:
        def __init__(self) -> None:
            self.cluster = self
            self.waiting: list[asyncio.Task[object]] = []

        async def _maybe_wait_metadata(self) -> None:
            return None

        def leader_for_partition(self, tp: TopicPartition) -> int:
            return 1 + tp.partition

        async def send(self, node_id: int, request: object) -> object:
            if node_id == 1:
                await asyncio.sleep(0)
                raise KafkaConnectionError("broker 1 closed the connection")
            self.waiting.append(asyncio.current_task())  # type: ignore[arg-type]
            return await asyncio.get_running_loop().create_future()  # never answered

    class Lookup:  # aiokafka's own methods (as they were), on an object with what they read
        _isolation_level = 0
        _proc_offset_requests = Fetcher._proc_offset_requests.__wrapped__
        _proc_offset_request = Fetcher._proc_offset_request.__wrapped__

        def __init__(self) -> None:
            self._client = Client()

    async def lookup(cancel_orphans: bool) -> bool:
        if cancel_orphans:
            compat.cancel_orphaned_offset_requests(Lookup)
        fetcher = Lookup()
        with pytest.raises(KafkaConnectionError):
            await fetcher._proc_offset_requests({TopicPartition("t", 0): -2, TopicPartition("t", 1): -2})
        for _ in range(3):
            await asyncio.sleep(0)
        (orphan,) = fetcher._client.waiting
        running = not orphan.done()
        orphan.cancel()
        return running

    assert asyncio.run(lookup(cancel_orphans=False))  # aiokafka alone leaves it running
    assert not asyncio.run(lookup(cancel_orphans=True))
