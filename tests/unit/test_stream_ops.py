"""Stream.take() batching and Stream.through() under the simulator."""

import asyncio
import json

import detstream
from detstream.events import current_event
from sim import testing as sim_testing
from sim.cluster import ClusterConfig
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def run_app(app, body, *, seed=0):
    return sim_testing.run_app(app, body, seed=seed, config=FAST)


def _getters():
    return [t for t in asyncio.all_tasks() if not t.done() and "Queue.get" in repr(t.get_coro())]


def test_take_batches_by_size_from_a_topic():
    app = detstream.App("take-size", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)
    batches = []

    @app.agent(topic)
    async def consume(stream):
        async for batch in stream.take(3, within=10):
            batches.append(batch)

    async def body(cluster):
        await asyncio.sleep(1)
        for i in range(7):
            await topic.send(value=f"v{i}")
        await asyncio.sleep(20)

    run_app(app, body)
    assert batches == [["v0", "v1", "v2"], ["v3", "v4", "v5"], ["v6"]]


def test_take_batches_by_time_at_exact_virtual_times():
    app = detstream.App("take-time", broker="sim://")
    channel = app.channel(value_type=int)
    seen = []

    @app.agent(channel)
    async def consume(stream):
        loop = asyncio.get_running_loop()
        async for batch in stream.take(10, within=3):
            seen.append((round(loop.time() - start[0], 6), batch))

    start = []

    async def body(cluster):
        loop = asyncio.get_running_loop()
        await asyncio.sleep(1)
        start.append(loop.time())
        await channel.send(value=0)
        await asyncio.sleep(1)
        await channel.send(value=1)
        await asyncio.sleep(4)  # t=5: after the first batch closed at t=3
        await channel.send(value=2)
        await asyncio.sleep(10)
        for i in range(10, 22):  # a full batch goes at once, the rest waits `within`
            await channel.send(value=i)
        await asyncio.sleep(10)

    run_app(app, body)
    assert seen == [
        (3.0, [0, 1]),
        (8.0, [2]),
        (15.0, list(range(10, 20))),
        (18.0, [20, 21]),
    ]


def test_take_is_deterministic_and_leaves_no_tasks():
    def once():
        app = detstream.App("take-det", broker="sim://", topic_partitions=2)
        topic = app.topic("in", partitions=2, internal=True, value_type=str)
        log = []

        @app.agent(topic)
        async def consume(stream):
            loop = asyncio.get_running_loop()
            async for batch in stream.take(4, within=0.5):
                log.append((loop.time(), batch))
                await asyncio.sleep(0.3)

        async def main(cluster):
            await app.start()
            await asyncio.sleep(1)
            for i in range(11):
                await topic.send(key=str(i).encode(), value=f"v{i}")
                await asyncio.sleep(0.1 * (i % 3))
            await asyncio.sleep(5)
            await app.stop()
            await asyncio.sleep(0)
            return log, _getters()

        return simulate(main, seed=3, config=FAST)

    first, stray = once()
    assert stray == []
    assert sorted(v for _, batch in first for v in batch) == sorted(f"v{i}" for i in range(11))
    assert once()[0] == first


def test_take_acks_and_commits_only_after_the_batch_body():
    app = detstream.App("take-acks", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)
    tp = detstream.TP("in", 0)
    during = []
    cluster_ref = []

    def committed():
        return cluster_ref[0].group("take-acks").committed.get(tp)

    @app.agent(topic)
    async def consume(stream):
        async for batch in stream.take(4, within=30):
            assert current_event().value == batch[-1]
            during.append(("body-start", committed()))
            await asyncio.sleep(10)  # several commit intervals
            during.append(("body-end", committed()))

    async def body(cluster):
        cluster_ref.append(cluster)
        await asyncio.sleep(1)
        for i in range(3):
            await topic.send(value=f"v{i}")
        await asyncio.sleep(10)  # batch being collected: nothing acked yet
        collecting = committed()
        await topic.send(value="v3")  # completes the batch
        await asyncio.sleep(20)
        return collecting, committed()

    collecting, after = run_app(app, body)
    assert collecting is None
    assert during == [("body-start", None), ("body-end", None)]
    assert after == 4


def test_take_body_can_write_a_table():
    app = detstream.App("take-table", broker="sim://", topic_partitions=2)
    words = app.topic("words", partitions=2, internal=True, value_type=str)
    counts = app.Table("counts", default=int)

    @app.agent(words)
    async def count(stream):
        async for batch in stream.take(10, within=1):
            for word in batch:
                counts[word] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        for word in ["a", "b", "a", "c", "a"]:
            await words.send(key=word.encode(), value=word)
        await asyncio.sleep(5)
        changelog = [(r.key, r.value) for r in cluster.records("take-table-counts-changelog")]
        return counts.as_dict(), changelog

    table, changelog = run_app(app, body)
    assert table == {"a": 3, "b": 1, "c": 1}
    assert (b'"a"', b"3") in changelog


def test_through_forwards_to_a_second_stage():
    app = detstream.App("through", broker="sim://")
    source = app.topic("src", partitions=1, internal=True, value_type=str)
    seen = []

    @app.agent(source)
    async def stage(stream):
        async for event in stream.through("mid").events():
            seen.append((event.message.topic, event.key, event.value))

    async def body(cluster):
        await asyncio.sleep(1)
        for i in range(3):
            await source.send(key=f"k{i}".encode(), value=f"v{i}")
        await asyncio.sleep(10)
        mid = [(r.key, r.value) for r in cluster.records("mid")]
        return mid, dict(cluster.group("through").committed)

    mid, committed = run_app(app, body)
    assert [m[0] for m in mid] == [b"k0", b"k1", b"k2"]
    assert [(t, v) for t, _, v in seen] == [("mid", "v0"), ("mid", "v1"), ("mid", "v2")]
    assert committed[detstream.TP("src", 0)] == 3
    assert sum(offset for tp, offset in committed.items() if tp.topic == "mid") == 3


def test_take_keeps_a_collected_batch_across_a_decode_error_restart():
    app = detstream.App("take-decode", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=int, value_serializer="json")
    raw = app.topic("in", partitions=1, internal=True, value_serializer="raw")
    batches, starts = [], []

    @app.agent(topic)
    async def consume(stream):
        starts.append(len(batches))  # restarted after the undecodable record
        async for batch in stream.take(3, within=5):
            batches.append(batch)

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(value=1)
        await raw.send(value=b"{not json")
        await topic.send(value=2)
        await topic.send(value=3)
        await asyncio.sleep(20)
        return dict(cluster.group("take-decode").committed)

    committed = run_app(app, body)
    assert starts == [0, 0]
    assert batches == [[1, 2, 3]]
    assert committed[detstream.TP("in", 0)] == 4


def test_group_by_keeps_the_event_time_of_each_record():
    """Windowed tables after a repartition window by event time, as before it."""
    app = detstream.App("group-by-time", broker="sim://")

    class Click(detstream.Record):
        user: str

    clicks = app.topic("clicks", partitions=2, internal=True, value_type=Click)
    seen = []

    @app.agent(clicks)
    async def by_user(stream):
        async for event in stream.group_by(Click.user).events():
            seen.append((event.value.user, event.message.timestamp))

    async def body(cluster):
        await asyncio.sleep(1)
        await clicks.send(value=Click(user="ann"), timestamp=1000.0)
        await clicks.send(value=Click(user="bob"), timestamp=2000.5)
        await asyncio.sleep(10)

    run_app(app, body)
    assert sorted(seen) == [("ann", 1000.0), ("bob", 2000.5)]


def test_group_by_forwards_the_value_bytes_as_they_came():
    """As Faust: a repartition re-keys the record and keeps its value's bytes (a field this
    app's model does not know survives it); a processor's new value is encoded instead."""
    app = detstream.App("group-by-bytes", broker="sim://")

    class Click(detstream.Record):
        user: str

    clicks = app.topic("clicks", partitions=1, internal=True, value_type=Click)
    views = app.topic("views", partitions=1, internal=True, value_type=Click)
    sent = b'{"user":"ann","page":"/home","__faust":{"ns":"x.Other"}}'
    seen = []

    @app.agent(clicks)
    async def by_user(stream):
        async for click in stream.group_by(Click.user):
            seen.append(click.user)

    @app.agent(views)
    async def renamed(stream):
        async for view in stream.filter(lambda view: True).group_by(Click.user):
            seen.append(view.user)

    async def body(cluster):
        await asyncio.sleep(1)
        for name in ("clicks", "views"):  # the bytes as another producer wrote them
            await app.topic(name, internal=True, value_type=bytes).send(value=sent)
        await asyncio.sleep(10)
        return {
            name.split("-")[-3]: [record.value for record in cluster.records(name)]
            for name in cluster.topics if name.endswith("-repartition")
        }

    forwarded = run_app(app, body)
    assert seen == ["ann", "ann"]
    assert forwarded["clicks"] == [sent]
    (processed,) = forwarded["views"]
    assert json.loads(processed)["user"] == "ann" and b"page" not in processed


def test_current_event_is_the_yielded_one_and_none_while_the_next_one_is_prepared():
    """A processor runs between two events (none is current); the body sees its own event."""
    app = detstream.App("current-event", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)
    seen = []

    @app.agent(topic)
    async def consume(stream):
        stream.add_processor(lambda value: seen.append(("processor", value, current_event())) or value)
        async for value in stream:
            seen.append(("body", value, current_event().value))

    async def body(cluster):
        await asyncio.sleep(1)
        for value in ("a", "b", "c"):  # sent back to back: fetched, and ready, together
            await topic.send(value=value)
        await asyncio.sleep(5)

    run_app(app, body)
    assert seen == [step for value in "abc"
                    for step in (("processor", value, None), ("body", value, value))]
