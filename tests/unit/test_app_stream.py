"""``app.stream()``, ``app.topics`` and streams made while the app runs (Faust's streams guide).

Streams over topics run under the simulator (``sim.testing.run_app``);
streams over iterables need only an event loop.
"""

import asyncio

import pytest

import detstream
from detstream.errors import InvalidArgument, Skip
from detstream.stream_kinds import IterableStream
from sim.cluster import ClusterConfig
from sim.testing import run_app

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class Withdrawal(detstream.Record):
    account: str
    amount: float


def test_a_topic_streamed_only_by_a_task_is_subscribed_and_committed():
    # streams.rst: "a more practical example" -- a topic nothing else consumes, iterated in a task
    app = detstream.App("task-stream", broker="sim://")
    withdrawals = app.topic("withdrawals", value_type=Withdrawal, partitions=2)
    seen = []

    @app.task
    async def mytask():
        async for w in withdrawals.stream():
            seen.append(w.amount)

    async def body(cluster):
        await asyncio.sleep(10)
        assert withdrawals in app.topics and "withdrawals" in app.topics
        for i in range(6):
            await withdrawals.send(key=f"a{i}".encode(), value=Withdrawal(f"a{i}", float(i)))
        await asyncio.sleep(10)
        return dict(cluster.group("task-stream").committed)

    committed = run_app(app, body, config=FAST)
    assert sorted(seen) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert sum(committed.get(detstream.TP("withdrawals", p), 0) for p in (0, 1)) == 6


def test_app_stream_of_a_topic_with_processors_in_order_sync_and_async():
    # streams.rst "Processors": s = app.stream(my_topic, processors=[...])
    app = detstream.App("processors", broker="sim://")
    topic = app.topic("words", value_type=str, partitions=1, internal=True)
    seen = []

    def add_default_language(value):
        return value if ":" in value else f"US:{value}"

    async def add_client_info(value):
        await asyncio.sleep(0)
        return f"{value}@client"

    @app.task
    async def consume():
        s = app.stream(topic, processors=[add_default_language, add_client_info])
        async for value in s:
            seen.append(value)

    async def body(cluster):
        await asyncio.sleep(10)
        for word in ["hi", "NO:hei"]:
            await topic.send(value=word)
        await asyncio.sleep(5)

    run_app(app, body, config=FAST)
    assert seen == ["US:hi@client", "NO:hei@client"]


def test_app_stream_of_a_channel_is_its_stream_and_names_are_refused():
    app = detstream.App("of-channel", broker="sim://")
    channel = app.channel(value_type=int)
    stream = app.stream(channel)
    assert isinstance(stream, detstream.Stream) and stream.channel is channel
    with pytest.raises(InvalidArgument, match=r"app.stream\(app.topic\('orders'\)\)"):
        app.stream("orders")


def test_app_stream_over_iterables_yields_their_values_and_ends():
    app = detstream.App("iterables", broker="sim://")

    async def numbers():
        for n in range(4):
            yield n

    def skip_two(value):
        if value == 2:
            raise Skip()
        return value

    async def main():
        plain = [v async for v in app.stream([1, 2, 3])]
        processed = [v async for v in app.stream(numbers(), processors=[skip_two])]
        filtered = [v async for v in app.stream(range(6)).filter(lambda v: v % 2)]
        items = [kv async for kv in app.stream(["a"]).items()]
        counted = [iv async for iv in app.stream(["x", "y"]).enumerate(start=1)]
        return plain, processed, filtered, items, counted

    plain, processed, filtered, items, counted = asyncio.run(main())
    assert plain == [1, 2, 3]
    assert processed == [0, 1, 3]
    assert filtered == [1, 3, 5]
    assert items == [(None, "a")]
    assert counted == [(1, "x"), (2, "y")]


def test_stream_over_an_iterator_made_by_hand_as_in_the_guide():
    # streams.rst: topic_iterator = aiter(topic); app.topics.add(topic); Stream(topic_iterator, app=app)
    app = detstream.App("by-hand", broker="sim://")
    topic = app.topic("orders", value_type=str, partitions=1, internal=True)
    seen = []

    async def custom_agent(app, topic):
        topic_iterator = aiter(topic)
        app.topics.add(topic)
        stream = detstream.Stream(topic_iterator, app=app)
        assert isinstance(stream, IterableStream)
        async for value in stream:
            seen.append(value)

    @app.task
    async def run():
        await custom_agent(app, topic)

    async def body(cluster):
        await asyncio.sleep(10)
        for value in ["a", "b", "c"]:
            await topic.send(value=value)
        await asyncio.sleep(5)
        return dict(cluster.group("by-hand").committed)

    committed = run_app(app, body, config=FAST)
    assert seen == ["a", "b", "c"]
    assert committed[detstream.TP("orders", 0)] >= 2  # acked as the outer stream advanced


def test_iterable_streams_refuse_what_needs_a_buffer():
    app = detstream.App("no-buffer", broker="sim://")
    stream = app.stream([1, 2])
    for call in (lambda: stream.group_by(lambda v: v, name="n"), lambda: stream.through("t"),
                 stream.noack, lambda: stream.events()):
        with pytest.raises(InvalidArgument):
            call()
    with pytest.raises(InvalidArgument, match="needs app="):
        detstream.Stream([1, 2])
    with pytest.raises(InvalidArgument, match="channel, topic, stream or"):
        app.stream(42)


def test_app_topics_add_checks_its_argument_and_discard_forgets():
    app = detstream.App("topics-api", broker="sim://")
    other = detstream.App("other", broker="sim://")
    topic = app.topic("t")
    app.topics.add(topic)  # before start: the first subscription takes it
    assert topic in app.topics and len(app.topics) == 1
    assert "t" not in app.topics  # by name: only once a stream reads it
    topic.stream()
    assert "t" in app.topics and app.topics.acking_topics == {"t"}
    app.topics.discard(topic)
    assert topic in app.topics  # still read by its stream
    with pytest.raises(InvalidArgument, match="takes a topic"):
        app.topics.add("t")
    with pytest.raises(InvalidArgument, match="belongs to"):
        app.topics.add(other.topic("t"))


def test_finalize_resolves_the_settings_and_flow_control_keeps_fausts_calls(caplog):
    app = detstream.App("fin", broker="sim://")
    assert not app.finalized and not app.configured
    app.finalize()
    app.finalize()
    assert app.finalized and app.configured
    app.conf.store = "memory://"
    assert app.conf.store == "memory://"
    flow = app.flow_control
    assert flow.is_active()  # detstream's streams never wait on it
    flow.suspend()
    flow.suspend()
    assert not flow.is_active()
    assert [r.message for r in caplog.records].count(
        next(r.message for r in caplog.records if "flow_control.suspend" in r.message)) == 1

    async def waits():
        waiter = asyncio.ensure_future(flow.wait_for_resume())
        await asyncio.sleep(0)
        assert not waiter.done()
        flow.resume()
        await waiter

    asyncio.run(waits())
    assert flow.is_active()


def test_the_streams_of_a_task_that_ended_do_not_hold_up_their_topic():
    # a task reading a topic an agent reads too raises at its second value: its stream's buffer
    # goes, and what it held is released, so the agent's offsets are committed to the end
    app = detstream.App("task-ends", broker="sim://")
    topic = app.topic("orders", value_type=str, partitions=1, internal=True)
    processed, read_by_task = [], []

    @app.agent(topic)
    async def process(stream):
        async for value in stream:
            processed.append(value)

    @app.task
    async def fragile():
        async for value in topic.stream():
            read_by_task.append(value)
            if len(read_by_task) == 2:
                raise RuntimeError("the task gives up")

    async def body(cluster):
        await asyncio.sleep(5)
        for i in range(10):
            await topic.send(value=f"o{i}")
        await asyncio.sleep(10)
        before = len(topic.subscribers)
        await app.stop_sources()
        return before, dict(cluster.group("task-ends").committed)

    buffers, committed = run_app(app, body, config=FAST)
    assert read_by_task == ["o0", "o1"]
    assert processed == [f"o{i}" for i in range(10)]
    assert buffers == 1  # the agent's; the task's left when the task ended
    assert committed[detstream.TP("orders", 0)] == 10


def test_stopping_sources_closes_a_task_stream_and_releases_what_it_held():
    app = detstream.App("task-stopped", broker="sim://")
    topic = app.topic("orders", value_type=str, partitions=1, internal=True)
    processed = []

    @app.agent(topic)
    async def process(stream):
        async for value in stream:
            processed.append(value)

    @app.task
    async def slow_reader():
        async for _ in topic.stream():
            await asyncio.sleep(1000)  # holds its buffer full of unread records

    async def body(cluster):
        await asyncio.sleep(5)
        for i in range(5):
            await topic.send(value=f"o{i}")
        await asyncio.sleep(5)
        stuck = dict(cluster.group("task-stopped").committed)
        await app.stop_sources()
        await asyncio.sleep(10)
        return stuck, dict(cluster.group("task-stopped").committed)

    stuck, committed = run_app(app, body, config=FAST)
    assert processed == [f"o{i}" for i in range(5)]
    assert stuck.get(detstream.TP("orders", 0), 0) == 0  # the reader held every record
    assert committed[detstream.TP("orders", 0)] == 5


def test_streams_an_agent_makes_are_closed_when_its_actor_restarts():
    # an agent combining its stream with app.stream(other) raises once: the supervisor restarts
    # it, which makes a new stream over `other`; the old one lets go, so `other` is committed
    app = detstream.App("agent-restarts", broker="sim://")
    main = app.topic("main", value_type=str, partitions=1, internal=True)
    other = app.topic("other", value_type=str, partitions=1, internal=True)
    seen = []

    @app.agent(main)
    async def both(stream):
        async for value in stream & app.stream(other):
            seen.append(value)
            if value == "boom":
                raise RuntimeError("restart me")

    async def body(cluster):
        await asyncio.sleep(5)
        await other.send(value="boom")
        await asyncio.sleep(5)
        for value in ["a", "b", "c"]:
            await other.send(value=value)
        await main.send(value="m")
        await asyncio.sleep(10)
        return len(other.subscribers), dict(cluster.group("agent-restarts").committed)

    buffers, committed = run_app(app, body, config=FAST)
    assert sorted(seen) == ["a", "b", "boom", "c", "m"]
    assert buffers == 1
    assert committed[detstream.TP("other", 0)] == 4 and committed[detstream.TP("main", 0)] == 1
