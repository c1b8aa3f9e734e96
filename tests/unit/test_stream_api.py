"""The Stream and Event API of Faust's streams guide, under the simulator.

``s1 & s2``, ``echo`` to topic names, ``take`` without ``within``,
processors that ``Skip``, ``noack_take``, ``take_with_timestamp``,
``group_by(topic=)``, ``derive_topic``, ``event.forward``/``send`` and
``await event.ack()``.
"""

import asyncio

import pytest

import detstream
from detstream import faust_compat
from detstream.errors import InvalidArgument, Skip
from detstream.stream_kinds import MergedStream
from sim.cluster import ClusterConfig
from sim.testing import run_app

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def _values(cluster, topic):
    return [r.value for r in cluster.records(topic)]


def test_combined_streams_yield_both_topics_values_and_ack_each_after_processing():
    # streams.rst "Combining streams": async for value in (s1 & s2)
    app = detstream.App("merge", broker="sim://")
    topic1 = app.topic("t1", value_type=str, partitions=1, internal=True)
    topic2 = app.topic("t2", value_type=str, partitions=1, internal=True)
    counts = app.Table("counts", default=int, partitions=1)
    seen = []

    @app.agent(topic1)
    async def merged(s1):
        s2 = app.stream(topic2)
        combined = s1 & s2
        assert isinstance(combined, MergedStream) and combined.nodes == [s1, s2]
        async for value in combined:
            event = detstream.current_event()
            counts[value] += 1  # a table write belongs to the event being processed
            seen.append((event.message.topic, value))
            if value == "slow":
                await asyncio.sleep(5)  # a commit meanwhile must not pass this event

    async def body(cluster):
        await asyncio.sleep(2)
        await topic1.send(value="a")
        await topic2.send(value="b")
        await topic2.send(value="slow")
        await asyncio.sleep(3)
        mid = dict(cluster.group("merge").committed)
        await asyncio.sleep(10)
        return mid, dict(cluster.group("merge").committed)

    mid, final = run_app(app, body, config=FAST)
    assert sorted(seen) == [("t1", "a"), ("t2", "b"), ("t2", "slow")]
    assert counts.as_dict() == {"a": 1, "b": 1, "slow": 1}
    assert mid[detstream.TP("t2", 0)] == 1  # "b" committed, "slow" not while processed
    assert final[detstream.TP("t1", 0)] == 1 and final[detstream.TP("t2", 0)] == 2


def test_combining_flattens_and_events_and_items_work():
    app = detstream.App("merge-shapes", broker="sim://")
    a, b, c = (app.channel(value_type=int) for _ in range(3))
    sa, sb, sc = a.stream(), b.stream(), c.stream()
    combined = (sa & sb) & sc
    assert combined.nodes == [sa, sb, sc]
    assert sa.combine(sa, sb).nodes == [sa, sb]
    got = []

    async def main():
        async def consume():
            async for key, value in combined.filter(lambda v: v != 0).items():
                got.append((key, value))
                if len(got) == 3:
                    return

        task = asyncio.ensure_future(consume())
        await a.send(key="ka", value=1)
        await b.send(key="kb", value=0)  # filtered out
        await b.send(key="kb", value=2)
        await c.send(key="kc", value=3)
        await asyncio.wait_for(task, 1)

    asyncio.run(main())
    assert sorted(got) == [("ka", 1), ("kb", 2), ("kc", 3)]
    with pytest.raises(InvalidArgument, match="no buffer"):
        combined.noack()


def test_joins_are_refused_as_not_implemented():
    # vskafka.rst: (s1 & s2).join() -- declared by Faust, never implemented
    app = detstream.App("joins", broker="sim://")
    s1, s2 = app.channel().stream(), app.channel().stream()
    for name in ("join", "left_join", "inner_join", "outer_join"):
        with pytest.raises(NotImplementedError, match=name):
            getattr(s1 & s2, name)()


def test_echo_sends_to_topics_named_or_given_and_returns_the_stream():
    # streams.rst "echo()": stream.echo('other_topic'), stream.echo(echo_topic1, echo_topic2)
    app = detstream.App("echo", broker="sim://")
    source = app.topic("sourcetopic", value_type=str, partitions=1, internal=True)
    copy1 = app.topic("source-copy-1", value_type=str)
    seen = []

    @app.agent(source)
    async def process(stream):
        stream.echo("other_topic", copy1)
        echoed = stream.echo("other_topic", copy1)  # again (as a restarted actor would): once
        assert echoed is stream
        async for value in echoed:
            seen.append(value)

    async def body(cluster):
        await asyncio.sleep(2)
        await source.send(value="x")
        await source.send(value="y")
        await asyncio.sleep(5)
        return _values(cluster, "other_topic"), _values(cluster, "source-copy-1")

    other, copied = run_app(app, body, config=FAST)
    assert seen == ["x", "y"]
    assert other == copied == [b'"x"', b'"y"']  # str topics, JSON text (the app's default)


def test_take_without_within_waits_for_a_full_batch():
    # streams.rst: stream.take(100) blocks until it has 100 values
    app = detstream.App("take-full", broker="sim://")
    channel = app.channel(value_type=int)
    batches = []

    @app.agent(channel)
    async def consume(stream):
        async for values in stream.take(3):
            batches.append((asyncio.get_running_loop().time(), values))

    async def body(cluster):
        for i in range(4):
            await channel.send(value=i)
            await asyncio.sleep(100)
        await asyncio.sleep(1000)

    run_app(app, body, config=FAST)
    assert [values for _, values in batches] == [[0, 1, 2]]  # the 4th waits for two more

    with pytest.raises(InvalidArgument, match="None to wait"):
        asyncio.run(anext(app.channel().stream().take(3, within=0)))


def test_processors_may_skip_and_noack_take_and_take_with_timestamp():
    app = detstream.App("batches", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True)  # json values: dicts
    stamped, unacked = [], []

    def drop_negative(value):
        if value["n"] < 0:
            raise Skip()
        return value

    @app.agent(topic)
    async def consume(stream):
        stream.add_processor(drop_negative)
        async for values in stream.take_with_timestamp(2, 5, "ts"):
            stamped.append(values)

    other = app.topic("manual", partitions=1, internal=True)

    @app.agent(other)
    async def manual(stream):
        async for events in stream.noack_take(2, within=1):
            unacked.append([e.value for e in events])
            for event in events:
                await event.ack()

    async def body(cluster):
        await asyncio.sleep(2)
        for n in (1, -1, 2):
            await topic.send(value={"n": n}, timestamp=1_700_000_100.0 + n)
        for n in (7, 8, 9):
            await other.send(value=n)
        await asyncio.sleep(10)
        return dict(cluster.group("batches").committed)

    committed = run_app(app, body, config=FAST)
    assert stamped == [[{"n": 1, "ts": 1_700_000_101.0}, {"n": 2, "ts": 1_700_000_102.0}]]
    assert unacked == [[7, 8], [9]]
    assert committed[detstream.TP("in", 0)] == 3  # the skipped value is acked too
    assert committed[detstream.TP("manual", 0)] == 3


def test_group_by_to_a_topic_given_and_derive_topic():
    app = detstream.App("gb-topic", broker="sim://")
    orders = app.topic("orders", partitions=1, internal=True)
    by_account = app.topic("by-account", partitions=2, internal=True)
    keys = []

    @app.agent(orders)
    async def process(stream):
        async for event in stream.group_by(lambda v: v["account"], name="acct",
                                           topic=by_account).events():
            keys.append((event.message.topic, event.key))

    async def body(cluster):
        await asyncio.sleep(2)
        await orders.send(value={"account": "A"})
        await asyncio.sleep(5)

    run_app(app, body, config=FAST)
    assert keys == [("by-account", b"A")]  # (its key type is bytes)

    fresh = detstream.App("derive", broker="sim://")
    stream = fresh.topic("orders", partitions=1, internal=True).stream()
    derived = stream.derive_topic("copies", prefix="x-", suffix="-y", value_type=int)
    assert derived.topics == ("x-copies-y",) and derived.schema.value_type is int
    assert derived.internal and derived.partitions == 1
    with pytest.raises(InvalidArgument, match="over a topic"):
        fresh.channel().stream().derive_topic("n")


def test_event_forward_sends_the_record_as_it_came_and_send_takes_names():
    # vskafka.rst: event.forward(topic) (awaited here: Faust's is a coroutine too)
    app = detstream.App("forward", broker="sim://")
    # raw source: its bytes differ from what large_transfers (json) would encode, so a
    # forward that re-encoded the value instead of sending the record as it came would show
    source = app.topic("transfers", key_type=str, value_type=str, value_serializer="raw",
                       partitions=1, internal=True)
    large = app.topic("large_transfers", value_type=str)
    results = []

    @app.agent(source)
    async def process(stream):
        async for event in stream.events():
            await event.forward(large)
            await event.send("resent", value=event.value.upper())
            results.append(await event.ack())  # awaitable, as the guide writes it
            results.append(bool(event.ack()))  # a second ack does nothing

    async def body(cluster):
        await asyncio.sleep(2)
        await source.send(key="k1", value="hello", headers={"h": b"1"})
        await asyncio.sleep(5)
        return cluster.records("large_transfers"), cluster.records("resent")

    forwarded, resent = run_app(app, body, config=FAST)
    assert [(r.key, r.value, tuple(r.headers)) for r in forwarded] == [
        (b"k1", b"hello", (("h", b"1"),))]
    assert [(r.key, r.value, tuple(r.headers)) for r in resent] == [
        (b"k1", b'"HELLO"', (("h", b"1"),))]  # serialised again, by its own (json) topic
    assert results == [True, False]


def test_faust_utils_aiter_has_aenumerate():
    # streams.rst "enumerate()": see also faust.utils.aiter.aenumerate
    with faust_compat.faust_alias():
        from faust.utils.aiter import aenumerate

    async def letters():
        for letter in "ab":
            yield letter

    async def main():
        return [pair async for pair in aenumerate(letters(), 1)]

    assert asyncio.run(main()) == [(1, "a"), (2, "b")]
