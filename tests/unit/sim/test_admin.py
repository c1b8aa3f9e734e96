"""The sim admin picks its broker as aiokafka does: a down broker fails the request at once."""

from __future__ import annotations

import asyncio
import random

import pytest

from detstream import mutants
from detstream.transport.any_broker import ADMIN_GIVES_UP, ADMIN_RETRY_BACKOFF
from sim.admin import SimAdmin
from sim.cluster import ClusterConfig, SimCluster
from sim.kafka_errors import ConnectionClosedError, NodeNotReadyError
from sim.loop import run
from sim.network import Link
from sim.seeds import SeedStreams
from sim.trace import Trace


def _cluster(seed: int = 1) -> SimCluster:
    loop = asyncio.get_running_loop()
    cluster = SimCluster(Trace(loop.time), rng=random.Random(0), admin=SeedStreams(seed).admin())
    cluster.create_topic("orders", 3, by="operator")
    return cluster


def test_metadata_requests_ride_out_a_down_broker_that_is_still_known():
    """b2 crashed, the controller has not noticed: a third of the picks fail, the engine asks again."""

    async def main():
        cluster = _cluster()
        admin = SimAdmin(cluster, "w1")
        cluster.brokers.crash(2)
        began = asyncio.get_running_loop().time()
        counts = [await admin.partitions_for("orders") for _ in range(12)]
        topics = await admin.list_topics()
        failed = cluster.stats["admin-node-not-ready"]
        waited = asyncio.get_running_loop().time() - began
        return counts, topics, failed, waited, cluster.trace.lines

    counts, topics, failed, waited, lines = run(main())
    assert counts == [3] * 12 and topics == {"orders"}
    assert failed > 0  # some picks met b2 ...
    assert waited == pytest.approx(failed * ADMIN_RETRY_BACKOFF)  # ... and were asked again after a backoff
    assert sum(" admin-node-not-ready broker=b2 " in line for line in lines) == failed


def test_the_request_fails_at_once_with_node_not_ready_where_the_engine_gives_up():
    """The retry is the engine's (``transport.any_broker``): without it the caller sees the error."""

    async def main():
        cluster = _cluster()
        admin = SimAdmin(cluster, "w1")
        cluster.brokers.crash(2)
        loop = asyncio.get_running_loop()
        with mutants.enabled(ADMIN_GIVES_UP):
            for _ in range(50):
                began = loop.time()
                try:
                    await admin.partitions_for("orders")
                except NodeNotReadyError:
                    return loop.time() - began
        return None

    assert run(main()) == 0.0  # at once: nothing was sent


def test_once_the_controller_dropped_the_broker_every_request_reaches_a_live_one():
    async def main():
        cluster = _cluster()
        admin = SimAdmin(cluster, "w1")
        cluster.brokers.crash(2)
        await asyncio.sleep(cluster.brokers.session_timeout + 1.0)  # the controller noticed
        for _ in range(20):
            await admin.partitions_for("orders")
        return cluster.stats["admin-node-not-ready"]

    assert run(main()) == 0


def test_nothing_is_drawn_while_every_known_broker_is_up():
    """A run whose admin never meets a down broker keeps its trace: the stream is untouched."""

    async def main():
        cluster = _cluster()
        picks = cluster.admin_picks
        assert picks is not None
        state = picks.getstate()
        admin = SimAdmin(cluster, "w1")
        for _ in range(5):
            await admin.partitions_for("orders")
        return picks.getstate() == state

    assert run(main())


def test_the_picks_are_the_seeds():
    """Same seed, same failures; another seed, other picks."""

    async def picks(seed: int) -> list[str]:
        cluster = _cluster(seed)
        admin = SimAdmin(cluster, "w1")
        cluster.brokers.crash(1)
        for _ in range(10):
            await admin.list_topics()
        return cluster.trace.lines

    assert run(picks(1)) == run(picks(1))
    assert {tuple(run(picks(seed))) for seed in range(1, 6)} != {tuple(run(picks(1)))}


def _cutting_resets(seed: int = 1) -> SimCluster:
    """A cluster whose lost requests all close their connection (aiokafka: KafkaConnectionError)."""
    loop = asyncio.get_running_loop()
    return SimCluster(
        Trace(loop.time), rng=random.Random(0), admin=SeedStreams(seed).admin(),
        config=ClusterConfig(reset_share=1.0),
    )


def test_a_create_topics_whose_connection_closes_is_asked_again_by_the_engine():
    """CreateTopics to the controller, its connection reset while the host's link drops: aiokafka
    raises (found on the wire: a worker's start failed), and ``to_the_controller`` asks again."""

    async def main():
        cluster = _cutting_resets()
        link = Link("w1")
        link.conditions.drop(until=1.0)
        admin = SimAdmin(cluster, "w1", link)
        await admin.create_topic("orders", partitions=3)  # (False if a reset try was applied)
        return cluster.partitions_for("orders", by="operator"), cluster.stats["connection-reset"]

    partitions, resets = run(main())
    assert partitions == 3 and resets > 0


def test_the_closed_connection_reaches_the_caller_where_the_engine_gives_up():
    async def main():
        cluster = _cutting_resets()
        link = Link("w1")
        link.conditions.drop(until=1.0)
        admin = SimAdmin(cluster, "w1", link)
        with mutants.enabled(ADMIN_GIVES_UP):
            with pytest.raises(ConnectionClosedError):
                await admin.create_topic("orders", partitions=3)

    run(main())
