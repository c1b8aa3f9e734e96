"""Brokers and partition leaders: placement, failover, controlled shutdown, restart, moves."""

import asyncio

import pytest

from detstream._types import TP
from sim.brokers import (
    GROUP_COORDINATOR_TOPIC,
    coordinator_partition,
    parse_broker,
)
from sim.cluster import ClusterConfig
from sim.kafka_errors import (
    BrokerNotAvailableError,
    CoordinatorNotAvailableError,
    LeaderNotAvailableError,
    NotCoordinatorError,
    NotLeaderForPartitionError,
)
from sim.testing import simulate


def leaders(cluster, topic):
    return [cluster.brokers.leader(TP(topic, p)) for p in range(cluster.topics[topic].partitions)]


def test_placement_is_deterministic_and_spreads_leaders():
    async def main(cluster):
        cluster.create_topic("t", 12, by="test")
        return leaders(cluster, "t"), cluster.brokers.replicas(TP("t", 0))

    first, replicas = simulate(main, seed=1)
    second, _ = simulate(main, seed=2)
    assert first == second  # crc32 placement: no seed, no PYTHONHASHSEED
    assert set(first) == {1, 2, 3}
    assert sorted(replicas) == [1, 2, 3] and replicas[0] == first[0]


def test_crashed_leader_fails_over_after_the_session_timeout():
    async def main(cluster):
        cluster.create_topic("t", 6, by="test")
        before = leaders(cluster, "t")
        victim = before[0]
        cluster.brokers.crash(victim)
        during = leaders(cluster, "t")
        with pytest.raises(BrokerNotAvailableError):
            cluster.brokers.serve(TP("t", 0), victim)
        await asyncio.sleep(cluster.config.broker_session_timeout + 0.1)
        after = leaders(cluster, "t")
        return victim, before, during, after

    victim, before, during, after = simulate(main)
    assert during == before  # the controller has not noticed yet
    assert victim not in after
    assert all(a == b for a, b in zip(after, before, strict=True) if b != victim)  # others keep theirs


def test_controlled_shutdown_moves_leaders_first_and_old_metadata_gets_not_leader():
    async def main(cluster):
        cluster.create_topic("t", 6, by="test")
        before = leaders(cluster, "t")
        victim = before[0]
        cluster.brokers.shutdown(victim)
        moved = leaders(cluster, "t")
        errors = []
        survivor = next(b for b in (1, 2, 3) if b != victim and b != moved[0])
        for broker in (victim, survivor):
            try:
                cluster.brokers.serve(TP("t", 0), broker)
            except Exception as exc:
                errors.append(type(exc))
        return victim, moved, errors

    victim, moved, errors = simulate(main)
    assert victim not in moved
    assert errors == [BrokerNotAvailableError, NotLeaderForPartitionError]


def test_partition_without_live_replica_is_offline_until_one_restarts():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        tp = TP("t", 0)
        for broker in (1, 2):
            cluster.brokers.shutdown(broker)
        cluster.brokers.crash(3)
        await asyncio.sleep(10)
        offline = cluster.brokers.leader(tp)
        with pytest.raises(LeaderNotAvailableError):
            cluster.brokers.serve(tp, offline)
        cluster.brokers.restart(2)
        return offline, cluster.brokers.leader(tp)

    offline, back = simulate(main, config=ClusterConfig(broker_session_timeout=5.0))
    assert offline is None and back == 2


def test_move_leaders_moves_every_partition_it_can():
    async def main(cluster):
        cluster.create_topic("t", 3, by="test")
        start = leaders(cluster, "t")
        moved = cluster.brokers.move_leaders(start[0])
        return start, leaders(cluster, "t"), moved

    start, after, moved = simulate(main)
    assert moved == start.count(start[0])
    assert start[0] not in after


def test_move_leaders_keeps_a_partition_whose_other_replicas_are_down():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        cluster.brokers.shutdown(2)
        cluster.brokers.shutdown(3)
        return cluster.brokers.move_leaders(1), cluster.brokers.leader(TP("t", 0))

    assert simulate(main) == (0, 1)


def test_coordinator_errors_name_the_coordinator():
    async def main(cluster):
        where = coordinator_partition(GROUP_COORDINATOR_TOPIC, "g")
        leader = cluster.brokers.leader(where)
        cluster.brokers.move_leaders(leader)
        with pytest.raises(NotCoordinatorError):
            cluster.brokers.serve_coordinator(where, leader)
        new = cluster.brokers.leader(where)
        cluster.brokers.crash(new)
        with pytest.raises(CoordinatorNotAvailableError):
            cluster.brokers.serve_coordinator(where, new)
        return [e.kind for e in cluster.trace.events]

    kinds = simulate(main)
    assert kinds.count("leader") == 1 and "broker-crash" in kinds


def test_parse_broker():
    assert parse_broker("b2") == 2
    assert parse_broker("w2") is None and parse_broker("b") is None
