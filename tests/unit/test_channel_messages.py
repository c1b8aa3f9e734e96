"""Faust's channels guide: iterating a channel gives events; send, as_future_message,
publish_message and declare on channels and topics; on the simulator."""

import asyncio

import pytest

import detstream
from detstream.errors import InvalidArgument
from detstream.events import Event
from detstream.pending import FutureMessage, PendingMessage
from sim.cluster import ClusterConfig
from sim.testing import run_app

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def test_the_guides_channel_loop_reads_events():
    app = detstream.App("chan-loop", broker="sim://")

    async def body(cluster):
        channel = app.channel()
        seen = []

        async def main():
            async for event in channel:
                seen.append((type(event), event.value))
                # the channel is infinite so we break after first event
                break

        reader = asyncio.ensure_future(main())
        await asyncio.sleep(0.1)  # reading before anything is put
        await channel.put(1)
        await asyncio.wait_for(reader, 5)
        return seen

    assert run_app(app, body, config=FAST) == [(Event, 1)]


def test_channel_send_returns_the_done_future_and_calls_back_with_it():
    app = detstream.App("chan-send", broker="sim://")
    called = []

    async def body(cluster):
        channel = app.channel()
        buffer = channel.subscribe()
        fut = await channel.send(key="k", value="v", headers={"h": b"1"}, callback=called.append)
        event = await buffer.get()
        return fut, event

    fut, event = run_app(app, body, config=FAST)
    assert isinstance(fut, FutureMessage) and fut.done()
    assert (fut.result().topic, fut.result().partition, fut.result().offset) == ("<anon>", -1, -1)
    assert called == [fut]
    assert (event.key, event.value, event.headers) == ("k", "v", {"h": b"1"})


def test_as_future_message_then_publish_message_on_a_channel():
    app = detstream.App("chan-publish", broker="sim://")

    async def body(cluster):
        channel = app.channel()
        buffer = channel.subscribe()
        fut = channel.as_future_message(key=b"k", value=3, timestamp=5.0)
        pending = fut.message
        before = fut.done()
        assert await channel.publish_message(fut) is fut
        return pending, before, fut.result(), await buffer.get()

    pending, before, metadata, event = run_app(app, body, config=FAST)
    assert isinstance(pending, PendingMessage) and (pending.key, pending.value) == (b"k", 3)
    assert before is False
    assert metadata.timestamp == 5.0
    assert (event.key, event.value) == (b"k", 3)


def test_a_put_event_is_put_as_it_is():
    app = detstream.App("chan-put-event", broker="sim://")

    async def body(cluster):
        channel = app.channel()
        buffer = channel.subscribe()
        event = Event(app, "k", "v", {}, None)
        await channel.put(event)
        return event, await buffer.get()

    event, got = run_app(app, body, config=FAST)
    assert got is event


def test_a_topics_future_message_is_encoded_and_resolves_on_the_ack():
    app = detstream.App("topic-publish", broker="sim://")
    topic = app.topic("out", key_type=str, value_type=int)
    called = []

    async def body(cluster):
        fut = topic.as_future_message(key="k", value=7, callback=called.append)
        await topic.publish_message(fut)
        await asyncio.wait_for(fut, 10)
        return fut, [(r.key, r.value) for r in cluster.records("out")]

    fut, records = run_app(app, body, config=FAST)
    assert (fut.message.key, fut.message.value, fut.message.topic) == (b"k", b"7", "out")
    assert fut.result().topic == "out" and fut.result().offset == 0
    assert called == [fut]
    assert records == [(b"k", b"7")]


def test_a_topic_future_message_takes_only_its_own_schema():
    app = detstream.App("topic-schema")
    topic = app.topic("t")
    with pytest.raises(InvalidArgument, match="own schema"):
        topic.as_future_message(value=1, schema=detstream.Schema())


def test_declaring_a_channel_does_nothing():
    app = detstream.App("chan-declare", broker="sim://")

    async def body(cluster):
        channel = app.channel()
        return await channel.maybe_declare(), await channel.declare()

    assert run_app(app, body, config=FAST) == (None, None)


def test_an_internal_topic_is_declared_by_the_app():
    app = detstream.App("internal", broker="sim://", topic_partitions=3)
    app.topic("mine", internal=True)

    async def body(cluster):
        await asyncio.sleep(0.5)
        return cluster.topics["mine"].partitions

    assert run_app(app, body, config=FAST) == 3
