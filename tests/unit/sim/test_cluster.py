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
        consumers[0]._generation = zombie_generation  # a zombie still thinks it is current
        with pytest.raises(CommitFailedError, match="rejected"):
            await consumers[0].commit({TP("t", 0): 5})
        return cluster.group("g").committed

    committed = simulate(main, config=FAST)
    assert committed == {TP("t", 0): 1}
