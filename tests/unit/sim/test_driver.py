"""The sim consumer under broker and network faults: fetch, group requests, commits."""

import asyncio

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


def test_dropped_fetch_returns_nothing_until_the_request_timeout():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        await fill(cluster, [TP("t", 0)], 2)
        conditions = LinkConditions()
        consumer = SimTransport(cluster=cluster, name="c", conditions=conditions).create_consumer(
            client_id="c", group_id=None
        )
        consumer.assign([TP("t", 0)])
        loop = asyncio.get_running_loop()
        conditions.drop(until=loop.time() + 1.0)
        start = loop.time()
        got = await read_until(consumer, 2)
        return loop.time() - start, got, cluster.stats["request-dropped"]

    waited, got, dropped = simulate(main, config=ClusterConfig(request_timeout=5.0))
    assert 5.0 <= waited < 6.1 and got == {TP("t", 0): [b"0", b"1"]} and dropped == 1
