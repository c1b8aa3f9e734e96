"""The sim consumer under broker and network faults: fetch, group requests, commits."""

import asyncio

import pytest

from detstream._types import TP
from sim.brokers import GROUP_COORDINATOR_TOPIC, coordinator_partition
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.network import LinkConditions
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.5, broker_session_timeout=2.0)


class Listener:
    def __init__(self):
        self.assigned = []

    async def on_partitions_revoked(self, revoked):
        pass

    async def on_partitions_assigned(self, assigned):
        self.assigned.append(set(assigned))


async def fill(cluster, tps, count, start=0):
    producer = SimTransport(cluster=cluster, name="feed").create_producer(client_id="feed")
    for i in range(start, start + count):
        for tp in tps:
            await producer.send(tp.topic, key=None, value=str(i).encode(), partition=tp.partition)


async def read_until(consumer, want, limit=60.0):
    got = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while sum(len(v) for v in got.values()) < want and loop.time() < deadline:
        for tp, records in (await consumer.getmany(1.0)).items():
            got.setdefault(tp, []).extend(r.value for r in records)
    return got


def test_fetch_skips_a_partition_whose_leader_crashed_and_resumes_after_failover():
    async def main(cluster):
        cluster.create_topic("t", 6, by="test")
        tps = [TP("t", p) for p in range(6)]
        await fill(cluster, tps, 3)
        victim = cluster.brokers.leader(tps[0])
        orphaned = [tp for tp in tps if cluster.brokers.leader(tp) == victim]
        consumer = SimTransport(cluster=cluster, name="c").create_consumer(client_id="c", group_id=None)
        consumer.assign(tps)
        await consumer.getmany(1.0)  # metadata known, positions set
        for tp in tps:
            consumer.seek(tp, 0)
        cluster.brokers.crash(victim)
        early = await consumer.getmany(0.5)
        got = {tp: [r.value for r in records] for tp, records in early.items()}
        rest = await read_until(consumer, 18 - sum(len(values) for values in got.values()))
        for tp, values in rest.items():
            got.setdefault(tp, []).extend(values)
        return orphaned, set(early), got

    orphaned, early, got = simulate(main, config=FAST)
    assert orphaned and not (set(orphaned) & early)  # nothing from the dead leader...
    assert early  # ...while the other partitions kept flowing
    assert all(got[tp] == [b"0", b"1", b"2"] for tp in got) and len(got) == 6


def test_commit_retries_while_the_group_coordinator_is_down():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        consumer = SimTransport(cluster=cluster, name="c").create_consumer(client_id="c", group_id="g")
        consumer.subscribe(["t"], Listener())
        await consumer.start()
        await asyncio.sleep(2.0)
        where = coordinator_partition(GROUP_COORDINATOR_TOPIC, "g")
        cluster.brokers.crash(cluster.brokers.leader(where))
        await consumer.commit({TP("t", 0): 5})
        committed = await consumer.committed(TP("t", 0))
        generations = [e.fields["generation"] for e in cluster.trace.of_kind("rebalance")]
        retried = [e.fields for e in cluster.trace.of_kind("retried")]
        await consumer.stop()
        return committed, generations, retried

    committed, generations, retried = simulate(main, config=FAST)
    assert committed == 5
    assert generations == [1]  # the coordinator moved; the group did not rebalance
    assert retried[0]["request"] == "offset-commit"
    assert retried[0]["error"] == "CoordinatorNotAvailableError"


@pytest.mark.parametrize(("cut", "held"), [(1.0, True), (8.0, False)])
def test_a_fetch_caught_by_a_partition_is_held_until_it_heals_or_lost_past_its_timeout(cut, held):
    """TCP holds the fetch's response while the host is cut off: the records arrive at the
    heal. A cut longer than the request timeout loses the fetch: nothing until the timeout;
    the next fetch, still cut off, is held until the heal."""
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        await fill(cluster, [TP("t", 0)], 2)
        conditions = LinkConditions()
        consumer = SimTransport(cluster=cluster, name="c", conditions=conditions).create_consumer(
            client_id="c", group_id=None
        )
        consumer.assign([TP("t", 0)])
        loop = asyncio.get_running_loop()
        conditions.drop(until=loop.time() + cut)
        start = loop.time()
        got = await read_until(consumer, 2)
        return loop.time() - start, got, cluster.stats["request-dropped"], cluster.stats["request-held"]

    waited, got, dropped, was_held = simulate(main, config=ClusterConfig(request_timeout=5.0))
    assert got == {TP("t", 0): [b"0", b"1"]}
    if held:
        assert 1.0 <= waited < 1.2 and (dropped, was_held) == (0, 1)
    else:
        assert 8.0 <= waited < 8.2 and (dropped, was_held) == (1, 1)


# -- a waiting fetch wakes for its own partitions ---------------------------------------
def _consumer(cluster, tps, isolation="read_uncommitted"):
    consumer = SimTransport(cluster=cluster, name="c").create_consumer(
        client_id="c", group_id=None, isolation_level=isolation
    )
    consumer.assign(tps)
    return consumer


async def _fetch_at(consumer, timeout):
    """(loop time when getmany returned, {tp: [values]})."""
    batch = await consumer.getmany(timeout)
    return asyncio.get_running_loop().time(), {tp: [r.value for r in rs] for tp, rs in batch.items()}


def test_a_waiting_fetch_sleeps_through_appends_to_other_partitions():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        cluster.create_topic("other", 4, by="test")
        reads = []
        consumer = _consumer(cluster, [TP("t", 0), TP("t", 1)])
        passes = consumer._read_available  # one pass over the consumer's partitions
        consumer._read_available = lambda: reads.append(passes()) or reads[-1]
        fetch = asyncio.ensure_future(_fetch_at(consumer, 10.0))
        await asyncio.sleep(1.0)
        await fill(cluster, [TP("other", p) for p in range(4)], 5)  # 20 appends elsewhere
        await asyncio.sleep(1.0)
        await fill(cluster, [TP("t", 1)], 1)
        appended = asyncio.get_running_loop().time()
        returned, got = await fetch
        return returned - appended, got, reads

    delay, got, reads = simulate(main, config=FAST)
    assert got == {TP("t", 1): [b"0"]} and delay < 0.01
    assert len(reads) == 2  # its partitions when the fetch began, and again when t[1] grew


def test_seek_resume_and_new_partitions_wake_a_waiting_fetch():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        t0, t1 = TP("t", 0), TP("t", 1)
        await fill(cluster, [t0, t1], 1)
        consumer = _consumer(cluster, [t0])
        await consumer.getmany(1.0)  # t[0] read to its end
        results = []
        for change in (
            lambda: consumer.seek(t0, 0),
            lambda: consumer.assign([t0, t1]),
            lambda: consumer.resume(t1),
        ):
            fetch = asyncio.ensure_future(_fetch_at(consumer, 10.0))
            await asyncio.sleep(1.0)
            changed = asyncio.get_running_loop().time()
            change()
            returned, got = await fetch
            results.append((returned - changed, got))
            if len(results) == 2:
                consumer.seek(t1, 0)
                consumer.pause(t1)
        return results

    (seek, assign, resume) = simulate(main, config=FAST)
    assert seek[1] == {TP("t", 0): [b"0"]}
    assert assign[1] == {TP("t", 1): [b"0"]}
    assert resume[1] == {TP("t", 1): [b"0"]}
    assert all(delay < 0.01 for delay, _ in (seek, assign, resume))


def test_a_group_assignment_wakes_a_fetch_that_waited_without_partitions():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        await fill(cluster, [TP("t", 0)], 2)
        consumer = SimTransport(cluster=cluster, name="c").create_consumer(client_id="c", group_id="g")
        listener = Listener()
        consumer.subscribe(["t"], listener)
        await consumer.start()
        returned, got = await _fetch_at(consumer, 30.0)  # nothing assigned yet
        await consumer.stop()
        return returned, got

    returned, got = simulate(main, config=FAST)
    assert got == {TP("t", 0): [b"0", b"1"]}
    assert returned < 2.0  # the join (0.5 s of initial delay), not the fetch timeout


def test_a_read_committed_fetch_wakes_when_the_transaction_commits():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(
            client_id="p", transactional_id="tx"
        )
        await producer.start()
        await producer.begin_transaction()
        await producer.send("t", key=None, value=b"c1", partition=0)
        consumer = _consumer(cluster, [TP("t", 0)], "read_committed")
        fetch = asyncio.ensure_future(_fetch_at(consumer, 10.0))
        await asyncio.sleep(1.0)
        await producer.commit_transaction()
        committed = asyncio.get_running_loop().time()
        returned, got = await fetch
        return returned - committed, got

    delay, got = simulate(main, config=FAST)
    assert got == {TP("t", 0): [b"c1"]} and delay < 0.01


def test_a_fetch_that_skipped_a_moved_partition_refreshes_its_metadata_without_waiting():
    async def main(cluster):
        cluster.create_topic("t", 6, by="test")
        tps = [TP("t", p) for p in range(6)]
        await fill(cluster, tps, 1)
        consumer = _consumer(cluster, tps)
        await read_until(consumer, 6)  # metadata known, everything read
        moved_from = cluster.brokers.leader(tps[0])
        cluster.brokers.move_leaders(moved_from)
        moved = [tp for tp in tps if cluster.brokers.leader(tp) != moved_from]
        await fill(cluster, [tps[0]], 1, start=1)  # only a partition whose leader moved grows
        loop = asyncio.get_running_loop()
        start = loop.time()
        returned, got = await _fetch_at(consumer, 10.0)
        return returned - start, got, tps[0] in moved

    took, got, moved = simulate(main, config=FAST)
    assert moved and got == {TP("t", 0): [b"1"]}
    assert took < 0.5  # retry_backoff and a metadata round trip, not a wait for more data


def test_a_deny_reads_window_refuses_fetches_and_commits_not_retriably():
    async def main(cluster):
        from sim.kafka_errors import TopicAuthorizationFailedError

        cluster.create_topic("t", 1, by="test")
        conditions = LinkConditions()
        transport = SimTransport(cluster=cluster, name="c", conditions=conditions)
        consumer = transport.create_consumer(client_id="c", group_id="g")
        consumer.subscribe(["t"], Listener())
        await consumer.start()
        await asyncio.sleep(2.0)
        conditions.deny_reads(until=asyncio.get_running_loop().time() + 1.0)
        refused = []
        for call in (lambda: consumer.getmany(0.1), lambda: consumer.commit({TP("t", 0): 1})):
            try:
                await call()
            except TopicAuthorizationFailedError as exc:
                refused.append(str(exc))
        await asyncio.sleep(1.0)  # the window closed: both work again
        await consumer.getmany(0.1)
        await consumer.commit({TP("t", 0): 1})
        committed = await consumer.committed(TP("t", 0))
        await consumer.stop()
        return refused, committed, dict(cluster.stats)

    refused, committed, stats = simulate(main, config=FAST)
    assert [text.split(" (")[0] for text in refused] == ["c may not fetch ['t']", "c may not commit ['t']"]
    assert committed == 1
    assert stats["fetch-denied"] == 1 and stats["commit-denied"] == 1


def test_a_deny_reads_window_reaches_a_fetch_waiting_for_data():
    """aiokafka's fetcher asks without pause, so an idle consumer hears the refusal when the
    window opens, not at its next look (its fetch wait is up to a heartbeat interval)."""
    async def main(cluster):
        from sim.kafka_errors import TopicAuthorizationFailedError

        cluster.create_topic("t", 1, by="test")
        conditions = LinkConditions()
        transport = SimTransport(cluster=cluster, name="c", conditions=conditions)
        reader = transport.create_consumer(client_id="c", group_id=None)
        reader.assign([TP("t", 0)])
        await reader.start()
        loop = asyncio.get_running_loop()
        fetch = asyncio.ensure_future(reader.getmany(30.0))  # nothing to read: it waits
        await asyncio.sleep(0.5)
        opened = loop.time()
        conditions.deny_reads(until=opened + 1.0)
        try:
            await fetch
        except TopicAuthorizationFailedError:
            return loop.time() - opened
        finally:
            await reader.stop()
        return None

    assert simulate(main, config=FAST) == 0.0
