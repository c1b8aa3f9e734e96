"""A consumer stopping mid-rebalance may let it run to its listener, as aiokafka's stop does."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest

from detstream._types import TP
from sim.cluster import ClusterConfig, SimCluster
from sim.driver import SimConsumer, SimTransport
from sim.kafka_errors import ConsumerStoppedError
from sim.loop import run
from sim.trace import Trace

FAST = ClusterConfig(initial_rebalance_delay=0.5, broker_session_timeout=2.0)


class StopsWhileRevoking:
    """Begins its consumer's stop from ``on_partitions_revoked``; notes what the stop allowed."""

    def __init__(self) -> None:
        self.consumer: SimConsumer | None = None
        self.stopping: asyncio.Future[None] | None = None
        self.assigned_during_stop: list[set[TP]] = []
        self.seen: dict[str, object] = {}

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if revoked and self.stopping is None:
            assert self.consumer is not None
            self.stopping = asyncio.ensure_future(self.consumer.stop())
            await asyncio.sleep(0)  # the stop has begun; this rebalance goes on

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        consumer = self.consumer
        if self.stopping is None or consumer is None:
            return
        self.assigned_during_stop.append(set(assigned))
        self.seen["generation"] = consumer.generation
        self.seen["start_offsets"] = await consumer.start_offsets(assigned)
        try:
            await consumer.getmany(0.1)
        except ConsumerStoppedError:
            self.seen["getmany"] = "stopped"


def _stop_during_rebalance(share: float) -> tuple[list[set[TP]], dict[str, object], list[str], int]:
    async def main():
        loop = asyncio.get_running_loop()
        cluster = SimCluster(
            Trace(loop.time), rng=random.Random(0), config=replace(FAST, rebalance_at_stop_share=share),
            stops=random.Random(7),
        )
        cluster.create_topic("t", 2, by="test")
        listener = StopsWhileRevoking()
        first = SimTransport(cluster=cluster, name="c1").create_consumer(client_id="c1", group_id="g")
        listener.consumer = first
        first.subscribe(["t"], listener)
        await first.start()
        await asyncio.sleep(3.0)  # c1 holds both partitions
        second = SimTransport(cluster=cluster, name="c2").create_consumer(client_id="c2", group_id="g")
        second.subscribe(["t"], _Quiet())
        await second.start()  # c1's next heartbeat hears of the rebalance: it revokes, and stops
        await asyncio.sleep(10.0)
        assert listener.stopping is not None and listener.stopping.done()
        listener.stopping.result()
        await second.stop()
        lines = [line for line in cluster.trace.lines if "rebalance-at-stop" in line]
        return listener.assigned_during_stop, listener.seen, lines, cluster.stats["rebalance-at-stop"]

    return run(main())


class _Quiet:
    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        pass

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        pass


def test_a_stop_that_lets_the_rebalance_finish_runs_the_listener_on_a_reachable_consumer():
    assigned, seen, lines, count = _stop_during_rebalance(share=1.0)
    assert len(assigned) == 1  # the join in flight completed and the listener ran during the stop
    assert seen["generation"] == 2
    assert set(seen["start_offsets"]) == assigned[0]  # the consumer answered, as aiokafka's does ...
    assert seen["getmany"] == "stopped"  # ... except getmany (ConsumerStoppedError)
    assert count == 1 and len(lines) == 1


def test_otherwise_the_stop_cancels_the_rebalance_at_once():
    assigned, seen, lines, count = _stop_during_rebalance(share=0.0)
    assert assigned == [] and count == 0 and lines == []


@pytest.mark.parametrize("share", [0.0, 1.0])
def test_the_same_draws_give_the_same_trace(share):
    assert _stop_during_rebalance(share) == _stop_during_rebalance(share)
