"""``app.topic(pattern=...)``: a regex subscription, including topics created later."""

import asyncio

import pytest

import detstream
from detstream.engine.conductor import PATTERN_REFRESH
from detstream.errors import InvalidArgument
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


async def produce(cluster, topic, values):
    producer = SimTransport(cluster=cluster, name="upstream").create_producer(client_id="upstream")
    for value in values:
        await producer.send(topic, key=None, value=value.encode())


def test_a_pattern_consumes_existing_and_later_topics_and_nothing_else():
    app = detstream.App("patterns", broker="sim://")
    events = app.topic(pattern="events-.*", value_type=str, value_serializer="raw")
    seen = []

    @app.agent(events)
    async def collect(stream):
        async for event in stream.events():
            seen.append((event.message.topic, event.value))

    async def body(cluster):
        await asyncio.sleep(1)
        await produce(cluster, "events-eu", ["e1"])
        await produce(cluster, "other", ["o1"])
        await asyncio.sleep(2)
        before_refresh = list(seen)
        await produce(cluster, "events-us", ["u1"])  # a topic created while running
        await asyncio.sleep(PATTERN_REFRESH + 10)
        return before_refresh

    async def main(cluster):
        cluster.create_topic("events-eu", 2, by="operator")  # there before the app starts
        cluster.create_topic("other", 1, by="operator")
        await app.start()
        try:
            return await body(cluster)
        finally:
            await app.stop()

    before = simulate(main, config=FAST)
    assert before == [("events-eu", "e1")]
    assert sorted(seen) == [("events-eu", "e1"), ("events-us", "u1")]


def test_a_bad_pattern_is_refused_naming_it():
    app = detstream.App("bad-pattern", broker="sim://")
    with pytest.raises(InvalidArgument, match=r"pattern='events-\('\) is not a regular expression"):
        app.topic(pattern="events-(")
