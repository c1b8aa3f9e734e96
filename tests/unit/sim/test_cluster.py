"""The simulated cluster: logs, keyed partitioning, and the group protocol."""

import asyncio

import pytest

from detstream._types import TP
from detstream.errors import CommitFailedError
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.5)


class Recorder:
    def __init__(self):
        self.assigned: list[set[TP]] = []
        self.revoked: list[set[TP]] = []

    async def on_partitions_revoked(self, revoked):
        self.revoked.append(set(revoked))

    async def on_partitions_assigned(self, assigned):
        self.assigned.append(set(assigned))


def test_produce_and_fetch_in_order():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        for i in range(10):
            await producer.send("t", key=None, value=str(i).encode(), partition=i % 2)
        consumer = SimTransport(cluster=cluster, name="c").create_consumer(client_id="c", group_id=None)
        consumer.assign([TP("t", 0), TP("t", 1)])
        batch = await consumer.getmany(1.0)
        return {tp: [(r.offset, r.value) for r in recs] for tp, recs in batch.items()}

    got = simulate(main)
    assert got[TP("t", 0)] == [(i, str(2 * i).encode()) for i in range(5)]
    assert got[TP("t", 1)] == [(i, str(2 * i + 1).encode()) for i in range(5)]


def test_same_key_same_partition_across_runs():
    async def main(cluster):
        cluster.create_topic("t", 8, by="test")
        producer = SimTransport(cluster=cluster, name="p").create_producer(client_id="p")
        out = {}
        for key in (b"alice", b"bob", b"carol", b"alice", b"bob"):
            meta = await producer.send("t", key=key, value=b"v")
            out.setdefault(key, set()).add(meta.partition)
        return out

    first = simulate(main, seed=1)
    second = simulate(main, seed=2)
    assert all(len(parts) == 1 for parts in first.values())
    assert first == second


def test_getmany_waits_in_virtual_time_then_returns_empty():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        consumer = SimTransport(cluster=cluster, name="c").create_consumer(client_id="c", group_id=None)
        consumer.assign([TP("t", 0)])
        loop = asyncio.get_running_loop()
        start = loop.time()
        batch = await consumer.getmany(5.0)
        return batch, loop.time() - start

    batch, waited = simulate(main)
    assert batch == {} and waited == pytest.approx(5.0)


def _members(cluster, n, topics=("t",)):
    consumers, listeners = [], []
    for i in range(n):
        consumer = SimTransport(cluster=cluster, name=f"w{i}").create_consumer(client_id=f"w{i}", group_id="g")
        listener = Recorder()
        consumer.subscribe(topics, listener)
        consumers.append(consumer)
        listeners.append(listener)
    return consumers, listeners


def test_group_spreads_partitions_once_over_members():
    async def main(cluster):
        cluster.create_topic("t", 6, by="test")
        consumers, listeners = _members(cluster, 3)
        for c in consumers:
            await c.start()
        await asyncio.sleep(5)
        result = [c.assignment() for c in consumers], cluster.group("g").generation
        for c in consumers:
            await c.stop()
        return result

    assignments, generation = simulate(main, config=FAST)
    assert generation == 1
    assert all(len(a) == 2 for a in assignments)
    assert set().union(*assignments) == {TP("t", p) for p in range(6)}


def test_leave_triggers_rebalance_and_revoke_before_assign():
    async def main(cluster):
        cluster.create_topic("t", 4, by="test")
        consumers, listeners = _members(cluster, 2)
        for c in consumers:
            await c.start()
        await asyncio.sleep(5)
        await consumers[1].stop()
        await asyncio.sleep(10)
        return consumers[0].assignment(), listeners[0], cluster.group("g").generation

    remaining, listener, generation = simulate(main, config=FAST)
    assert generation == 2
    assert remaining == {TP("t", p) for p in range(4)}
    assert listener.revoked[-1] == {tp for tp in listener.assigned[0]}
    assert listener.assigned[-1] == remaining


def test_silent_member_expelled_after_session_timeout():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        consumers, _ = _members(cluster, 2)
        for c in consumers:
            c.session_timeout = 10.0
            await c.start()
        await asyncio.sleep(5)
        consumers[1]._task.cancel()  # stalls: no heartbeats, no leave
        await asyncio.sleep(30)
        kinds = [(e.kind, e.fields.get("reason")) for e in cluster.trace.events]
        return consumers[0].assignment(), kinds

    remaining, kinds = simulate(main, config=FAST)
    assert ("member-expired", "session-timeout") in kinds
    assert remaining == {TP("t", 0), TP("t", 1)}


def test_commit_from_previous_generation_is_fenced():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        consumers, _ = _members(cluster, 1)
        await consumers[0].start()
        await asyncio.sleep(2)
        await consumers[0].commit({TP("t", 0): 1})
        zombie_generation = consumers[0].generation
        late, _ = _members(cluster, 1)
        await late[0].start()
        await asyncio.sleep(8)
        consumers[0].group.generation = zombie_generation  # a zombie still thinks it is current
        with pytest.raises(CommitFailedError, match="rejected"):
            await consumers[0].commit({TP("t", 0): 5})
        return cluster.group("g").committed

    committed = simulate(main, config=FAST)
    assert committed == {TP("t", 0): 1}


# -- waiting fetches: an event wakes only the fetches of its partition ------------------
async def _watch(cluster, name, tps, woken, timeout=10.0):
    """Wait on ``tps`` (None: any partition); note ``(name, wake-up time)``."""
    await cluster.wait_for_append(timeout, tps)
    woken.append((name, asyncio.get_running_loop().time()))


def _append(cluster, tp):
    cluster.append("test", tp, key=None, value=b"v", timestamp=0.0)


def test_an_append_wakes_the_fetches_of_its_partition_in_the_order_they_began_to_wait():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        t0, t1 = TP("t", 0), TP("t", 1)
        woken = []
        tasks = [
            asyncio.ensure_future(_watch(cluster, name, tps, woken))
            for name, tps in [("b", [t0]), ("other", [t1]), ("any", None), ("a", [t1, t0])]
        ]
        await asyncio.sleep(1.0)
        _append(cluster, t0)
        await asyncio.sleep(1.0)
        _append(cluster, t1)
        await asyncio.gather(*tasks)
        return woken, cluster._fetch_waiters, cluster._waiting_on, cluster._waiting_any

    woken, *registrations = simulate(main)
    assert woken == [("b", 1.0), ("any", 1.0), ("a", 1.0), ("other", 2.0)]
    assert not any(registrations[0]) and not any(registrations[2])  # nothing left behind
    assert all(not waiting for waiting in registrations[1].values())


def test_a_wait_times_out_and_a_wake_without_a_partition_wakes_every_fetch():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        woken = []
        tasks = [
            asyncio.ensure_future(_watch(cluster, "t0", [TP("t", 0)], woken, timeout=3.0)),
            asyncio.ensure_future(_watch(cluster, "t1", [TP("t", 1)], woken, timeout=30.0)),
            asyncio.ensure_future(_watch(cluster, "none", [], woken, timeout=30.0)),
        ]
        await asyncio.sleep(5.0)
        cluster.wake_fetchers()
        await asyncio.gather(*tasks)
        return woken

    assert simulate(main) == [("t0", 3.0), ("t1", 5.0), ("none", 5.0)]


def test_a_transaction_marker_and_a_leader_change_wake_the_fetches_of_their_partition():
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        t0, t1 = TP("t", 0), TP("t", 1)
        woken = []
        tasks = [asyncio.ensure_future(_watch(cluster, n, [tp], woken)) for n, tp in [("t0", t0), ("t1", t1)]]
        await asyncio.sleep(1.0)
        cluster.write_marker(t0, producer_id=7, commit=True, offsets=[])
        await asyncio.sleep(1.0)
        cluster.brokers.move_leaders(cluster.brokers.leader(t1))
        await asyncio.gather(*tasks)
        return woken

    assert simulate(main) == [("t0", 1.0), ("t1", 2.0)]


def test_a_cancelled_wait_leaves_no_waiter_behind():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        task = asyncio.ensure_future(cluster.wait_for_append(10.0, [TP("t", 0)]))
        await asyncio.sleep(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        _append(cluster, TP("t", 0))
        return task.cancelled(), dict(cluster._fetch_waiters), dict(cluster._waiting_on[TP("t", 0)])

    assert simulate(main) == (True, {}, {})


def test_record_count_is_the_length_of_what_a_final_read_gets():
    from sim.runner import SimOptions, run

    report = run("examples/word_count.py", SimOptions(seed=1, workers=2, duration=5.0, faults="chaos"))
    cluster = report.cluster
    for topic in sorted(cluster.topics):
        for committed in (True, False):
            assert cluster.record_count(topic, read_committed=committed) == len(
                cluster.records(topic, read_committed=committed)), (topic, committed)


def test_a_member_is_in_doubt_while_its_heartbeats_go_unanswered_for_half_a_session():
    """``membership_in_doubt`` (the seam): answered heartbeats keep a member out of doubt; a
    stall of its heartbeats longer than half the session puts it in doubt, and the first one
    answered after it takes it out (the group did not expel it: the stall was shorter than
    the session). Past the session the member stays in doubt until it is told, and joins
    again as a new member."""
    async def main(cluster):
        cluster.create_topic("t", 2, by="test")
        consumers, _ = _members(cluster, 1)
        consumer = consumers[0]
        consumer.session_timeout, consumer.heartbeat_interval = 6.0, 1.0
        await consumer.start()
        await asyncio.sleep(5)  # past half the session, heartbeats answered
        seen = [consumer.membership_in_doubt]
        consumer.stall(4.0)
        await asyncio.sleep(2.5)  # 2.5 s unanswered (+ at most one interval before): not yet
        seen.append(consumer.membership_in_doubt)
        await asyncio.sleep(1.0)
        seen.append(consumer.membership_in_doubt)
        await asyncio.sleep(2.0)  # the stall ended; the next heartbeat was answered
        seen += [consumer.membership_in_doubt, consumer.expelled]
        generation = consumer.generation
        consumer.stall(12.0)
        await asyncio.sleep(8.0)  # expelled by now, but it does not know
        seen += [consumer.membership_in_doubt, consumer.expelled]
        await asyncio.sleep(6.0)  # told at its next heartbeat; it joined again since
        seen += [consumer.membership_in_doubt, consumer.generation > generation]
        return seen

    assert simulate(main, config=FAST) == [False, False, True, False, False, True, False, False, True]
