"""Sim clients stop in time with the cluster unreachable: they honour the app's stop budget.

As ``detstream worker``'s clients do on aiokafka (``transport/kafka_closing``):
past the budget, what still waits for the cluster is given up, so a graceful
stop ends within the shutdown timeout (issue 9's SIGTERM with the broker gone).
"""

import asyncio

import pytest

from sim.driver import SimTransport
from sim.kafka_errors import ProducerClosedError
from sim.testing import simulate


class _App:
    """Just what the transport reads of an app: its stop budget."""

    def __init__(self, budget):
        self.budget = budget

    def stop_budget(self):
        return self.budget


async def _unreachable_producer(cluster, budget):
    """A producer that knows topic t (it sent there once) and then loses every request."""
    cluster.create_topic("t", 1, by="test")
    transport = SimTransport(cluster=cluster, name="w1", app=_App(budget))
    producer = transport.create_producer(client_id="w1")
    await producer.send("t", key=None, value=b"first", partition=0)  # t's metadata learnt
    transport.link.conditions.drop(until=10_000.0)  # every request lost from now on
    return producer


def test_a_producer_stopped_under_a_budget_fails_its_unsent_records_at_the_budget():
    async def main(cluster):
        producer = await _unreachable_producer(cluster, budget=2.0)
        sent = asyncio.ensure_future(producer.send("t", key=None, value=b"x", partition=0))
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await producer.stop()
        with pytest.raises(ProducerClosedError, match="unsent"):
            await sent
        return loop.time() - began

    took = simulate(main)
    assert took == pytest.approx(2.0)


def test_a_producer_stopped_with_no_budget_waits_for_its_records():
    async def main(cluster):
        producer = await _unreachable_producer(cluster, budget=None)
        sent = asyncio.ensure_future(producer.send("t", key=None, value=b"x", partition=0))
        await asyncio.sleep(0.1)
        stop = asyncio.ensure_future(producer.stop())
        await asyncio.sleep(60.0)
        return stop.done(), sent.done()

    assert simulate(main) == (False, False)  # still retrying: no deadline, no give-up


def test_a_send_waiting_for_metadata_at_a_budgeted_stop_fails_unsent():
    """A first send to a topic waits for its metadata (aiokafka's does); the cluster unreachable,
    a stop under a budget gives it up at the budget, as it gives up queued records."""
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        transport = SimTransport(cluster=cluster, name="w1", app=_App(2.0))
        producer = transport.create_producer(client_id="w1")
        transport.link.conditions.drop(until=10_000.0)
        sent = asyncio.ensure_future(producer.send("t", key=None, value=b"x", partition=0))
        await asyncio.sleep(0.1)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await producer.stop()
        with pytest.raises(ProducerClosedError, match="metadata"):
            await sent
        return loop.time() - began

    assert simulate(main) == pytest.approx(2.0)
