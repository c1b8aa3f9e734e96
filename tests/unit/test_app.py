"""The core App API running on the simulator (broker='sim://')."""

import asyncio

import pytest

import detstream
from detstream.errors import InvalidArgument, TableWriteError
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class Point(detstream.Record):
    x: int
    y: int = 0


def run_app(app, body, *, seed=0):
    return sim_testing.run_app(app, body, seed=seed, config=FAST)


def test_anonymous_agent_topic_is_named_from_app_and_agent():
    app = detstream.App("stream-example", broker="sim://")

    @app.agent()
    async def myagent(stream):
        async for value in stream:
            yield value

    assert myagent.channel.get_topic_name() == f"stream-example-{__name__}.{myagent.fun.__qualname__}"
    assert myagent.name == f"{__name__}.test_anonymous_agent_topic_is_named_from_app_and_agent.<locals>.myagent"


def test_agent_receives_records_and_yield_forwards_to_sink():
    app = detstream.App("fwd", broker="sim://", topic_partitions=2)
    points = app.topic("points", value_type=Point, partitions=2, internal=True)
    seen, sunk = [], []

    @app.agent(points, sink=[sunk.append])
    async def double(stream):
        async for point in stream:
            seen.append(point)
            yield point.x * 2

    async def body(cluster):
        await asyncio.sleep(1)
        for i in range(5):
            await points.send(key=str(i).encode(), value=Point(x=i))
        await asyncio.sleep(5)

    run_app(app, body)
    assert sorted(p.x for p in seen) == [0, 1, 2, 3, 4]
    assert all(isinstance(p, Point) for p in seen)
    assert sorted(sunk) == [0, 2, 4, 6, 8]


def test_offsets_committed_after_processing():
    app = detstream.App("commits", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)

    @app.agent(topic)
    async def consume(stream):
        async for _ in stream:
            pass

    async def body(cluster):
        await asyncio.sleep(1)
        for i in range(7):
            await topic.send(value=f"v{i}")
        await asyncio.sleep(10)
        return dict(cluster.group("commits").committed)

    committed = run_app(app, body)
    assert committed[detstream.TP("in", 0)] == 7


def test_table_counts_and_changelog():
    app = detstream.App("counts", broker="sim://", topic_partitions=4)
    words = app.topic("words", partitions=4, internal=True, value_type=str)
    counts = app.Table("counts", default=int)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        for word in ["a", "b", "a", "c", "a"]:
            await words.send(key=word.encode(), value=word)
        await asyncio.sleep(5)
        changelog = [(r.key, r.value) for r in cluster.records("counts-counts-changelog")]
        return counts.as_dict(), changelog

    table, changelog = run_app(app, body)
    assert table == {"a": 3, "b": 1, "c": 1}
    assert (b'"a"', b"3") in changelog


def test_table_default_does_not_store_and_no_default_raises():
    app = detstream.App("defaults", broker="sim://")
    with_default = app.Table("with", default=int)
    without = app.Table("without")
    assert with_default["missing"] == 0
    assert "missing" not in with_default
    with pytest.raises(KeyError):
        without["missing"]


def test_table_write_outside_stream_is_refused():
    app = detstream.App("outside", broker="sim://")
    table = app.Table("t", default=int)
    with pytest.raises(TableWriteError, match="outside of stream iteration"):
        table["k"] = 1


def test_concurrent_agent_may_not_write_tables():
    app = detstream.App("concurrent", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)
    table = app.Table("t", default=int)
    errors = []

    @app.agent(topic, concurrency=2, on_error=lambda agent, exc: errors.append(exc))
    async def writer(stream):
        async for value in stream:
            table[value] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(value="x")
        await asyncio.sleep(3)

    run_app(app, body)
    assert errors and isinstance(errors[0], TableWriteError)
    assert "concurrency=2" in str(errors[0])


def test_failing_event_is_acked_and_agent_restarted():
    app = detstream.App("crashy", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)
    processed = []

    @app.agent(topic)
    async def fragile(stream):
        async for value in stream:
            if value == "boom":
                raise ValueError("bad value")
            processed.append(value)

    async def body(cluster):
        await asyncio.sleep(1)
        for value in ["a", "boom", "b"]:
            await topic.send(value=value)
        await asyncio.sleep(10)
        return dict(cluster.group("crashy").committed), [e.kind for e in cluster.trace.events]

    committed, kinds = run_app(app, body)
    assert processed == ["a", "b"]
    assert committed[detstream.TP("in", 0)] == 3


def test_channel_delivers_to_agent():
    app = detstream.App("channel", broker="sim://")
    channel = app.channel(value_type=Point)
    got = []

    @app.agent(channel)
    async def process(stream):
        async for event in stream:
            got.append(event)

    async def body(cluster):
        await channel.send(value=Point(303))
        await asyncio.sleep(1)

    run_app(app, body)
    assert got == [Point(303)]


def test_timer_ticks_in_virtual_time_from_when_the_app_is_operational():
    """The guide: the timer "will start 30 seconds after the worker instance has started and
    is in an operational state" (its first assignment taken, its tables recovered)."""
    app = detstream.App("timers", broker="sim://")
    ticks, complete = [], []

    @app.timer(2.0)
    async def tick():
        ticks.append(asyncio.get_running_loop().time())

    @app.on_rebalance_complete.connect
    async def operational(sender, **kwargs):
        complete.append(asyncio.get_running_loop().time())

    async def body(cluster):
        await asyncio.sleep(10.5)

    run_app(app, body)
    assert complete and complete[0] > 0.0
    assert [round(t - complete[0], 6) for t in ticks] == [2.0, 4.0, 6.0, 8.0, 10.0][:len(ticks)]
    assert len(ticks) == 5


def test_on_leader_timer_runs_on_the_leader_only():
    app = detstream.App("leader", broker="sim://")
    fired = []

    @app.timer(1.0, on_leader=True)
    async def lead(app):
        fired.append(app.is_leader())

    async def body(cluster):
        await asyncio.sleep(5)

    run_app(app, body)
    assert fired and all(fired)


def test_task_runs_once_after_start():
    app = detstream.App("tasks", broker="sim://")
    runs = []

    @app.task
    async def once(app):
        runs.append(app)

    run_app(app, lambda cluster: asyncio.sleep(1))
    assert runs == [app]


def test_partition_signals_fire_on_instance_and_class():
    app = detstream.App("signals", broker="sim://")
    seen = []

    @app.on_partitions_assigned.connect
    async def assigned(sender, assigned, **kwargs):
        seen.append(("instance", sender is app, bool(assigned)))

    def class_handler(sender, assigned, **kwargs):
        seen.append(("class", sender is app, bool(assigned)))

    detstream.App.on_partitions_assigned.connect(class_handler)
    try:
        run_app(app, lambda cluster: asyncio.sleep(1))
    finally:
        detstream.App.on_partitions_assigned.disconnect(class_handler)
    assert ("class", True, True) in seen and ("instance", True, True) in seen
    assert seen.index(("class", True, True)) < seen.index(("instance", True, True))


def test_bad_arguments_have_clear_errors():
    app = detstream.App("bad", broker="sim://")
    with pytest.raises(InvalidArgument, match="async def"):
        app.agent()(42)  # a plain function may return an async generator: judged when it runs
    with pytest.raises(InvalidArgument, match="concurrency"):
        app.agent(concurrency=0)(_noop_agent)
    with pytest.raises(InvalidArgument, match="interval"):
        app.timer(0)
    with pytest.raises(InvalidArgument, match="partitions"):
        app.topic("t", partitions=0)
    with pytest.raises(InvalidArgument, match="topic name"):
        app.topic()


async def _noop_agent(stream):
    async for _ in stream:
        pass


def test_setting_none_deletes_the_key_with_a_tombstone():
    app = detstream.App("nones", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)
    table = app.Table("t", default=int)

    @app.agent(topic)
    async def write(stream):
        async for value in stream:
            table[value] = None if value.startswith("-") else 1
            if value.startswith("-"):
                table[value[1:]] = None

    async def body(cluster):
        await asyncio.sleep(1)
        for value in ["a", "b", "-a"]:
            await topic.send(value=value)
        await asyncio.sleep(5)
        return table.as_dict(), [(r.key, r.value) for r in cluster.records("nones-t-changelog")]

    state, changelog = run_app(app, body)
    assert state == {"b": 1}
    assert dict(changelog)[b'"a"'] is None  # the key's last record is a tombstone


def test_engine_loop_failure_crashes_the_app_loudly():
    app = detstream.App("loud", broker="sim://")
    topic = app.topic("in", partitions=1, internal=True, value_type=str)

    @app.agent(topic)
    async def consume(stream):
        async for _ in stream:
            pass

    async def body(cluster):
        await asyncio.sleep(1)

        async def broken_commit(offsets):
            raise RuntimeError("broker said no")

        app.conductor.consumer.commit = broken_commit
        await topic.send(value="x")
        await asyncio.sleep(5)
        return app.crashed, [e.kind for e in cluster.trace.events]

    app.trace_hook = lambda actor, kind, **fields: kinds.append(kind)
    kinds = []
    crashed, _ = run_app(app, body)
    assert crashed
    assert "engine-error" in kinds


def test_agent_names_do_not_depend_on_running_as_main(tmp_path):
    import subprocess
    import sys

    project = tmp_path / "proj_main.py"
    project.write_text(
        "import detstream\n"
        "app = detstream.App('m', broker='sim://')\n"
        "@app.agent()\n"
        "async def hello(stream):\n"
        "    async for _ in stream:\n"
        "        pass\n"
        "print(hello.name)\n"
    )
    as_script = subprocess.run([sys.executable, str(project)], capture_output=True, text=True, cwd=tmp_path)
    as_module = subprocess.run([sys.executable, "-c", "import proj_main"], capture_output=True, text=True, cwd=tmp_path)
    assert as_script.stdout.strip() == as_module.stdout.strip() == "proj_main.hello"


def test_an_app_stopped_right_after_start_leaves_no_unawaited_engine_coroutine():
    import gc
    import warnings

    from sim.testing import run_app

    app = detstream.App("quick-stop", broker="sim://")
    topic = app.topic("t", internal=True)

    @app.agent(topic)
    async def consume(stream):
        async for _ in stream:
            pass

    async def body(cluster):
        return None  # stop at once: the engine's loop tasks never got to run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_app(app, body)
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


def test_signals_connect_with_or_without_parentheses():
    # application.rst: @app.on_produce_message.connect(), @faust.App.on_partitions_revoked.connect
    app = detstream.App("connects", broker="sim://")
    seen = []

    @app.on_configured.connect()
    def configure(app, conf, **kwargs):
        seen.append(("configured", conf.id))

    @detstream.App.on_after_configured.connect()
    def after(app, **kwargs):
        seen.append(("after", app.conf.id))

    try:
        app.finalize()
    finally:
        detstream.App.on_after_configured.disconnect(after)
    assert seen == [("configured", "connects"), ("after", "connects")]
    with pytest.raises(TypeError, match="no options"):
        app.on_configured.connect(configure, weak=True)


def test_bytes_are_sent_as_they_are_whatever_the_codec():
    """Faust's rule: a bytes key or value is encoded already (``json.dumps(x).encode()``),
    so no codec touches it; a JSON consumer of the topic then reads what it encodes."""
    app = detstream.App("raw-bytes", broker="sim://", topic_partitions=1)
    orders = app.topic("orders", partitions=1, internal=True)  # no types: json values
    typed = app.topic("typed", value_type=int, value_serializer="json", partitions=1, internal=True)
    seen = []

    @app.agent(orders)
    async def read(stream):
        async for value in stream:
            seen.append(value)

    async def body(cluster):
        await asyncio.sleep(1)
        await orders.send(key=b"k", value=b'{"id": 1}')
        await typed.send(value=b"raw")
        await asyncio.sleep(3)
        return ([(r.key, r.value) for r in cluster.records("orders")],
                [r.value for r in cluster.records("typed")])

    written, typed_written = run_app(app, body)
    assert written == [(b"k", b'{"id": 1}')] and typed_written == [b"raw"]
    assert seen == [{"id": 1}]


def test_an_internal_topic_made_after_the_app_stopped_is_made():
    """Outside a loop, after a run: nothing to declare it on (the next start declares it)."""
    app = detstream.App("stopped-topics", broker="sim://")

    async def body(cluster):
        await asyncio.sleep(1)

    run_app(app, body)
    topic = app.topic("later", internal=True)
    assert topic in app._topics


def test_fausts_other_app_members():
    """``config_source=``, ``on_before_shutdown`` (after the consumer stopped, before the
    producer's flush), ``commit()``, ``in_recovery``, ``Worker()``, ``worker_init()`` and a
    topic's ``key_serializer``/``value_serializer``: faust-inventory.md, section 2."""
    from detstream.worker import Worker

    app = detstream.App("members", broker="sim://", config_source={"topic_partitions": 3})
    assert app.conf.topic_partitions == 3
    seen = []

    @app.on_before_shutdown.connect
    async def before_shutdown(sender, **kwargs):
        seen.append(("shutdown", sender.conductor.consumer is None or sender.conductor.stopping))

    @app.on_worker_init.connect
    def init(sender, **kwargs):
        seen.append(("init",))

    topic = app.topic("in", internal=True, value_serializer="raw")
    assert (topic.key_serializer, topic.value_serializer) == (None, "raw")

    @app.agent(topic)
    async def agent(stream):
        async for _ in stream:
            pass

    async def body(cluster):
        await topic.send(value=b"x")
        await asyncio.sleep(1)
        return await app.commit(), app.in_recovery

    app.worker_init()
    app.worker_init()  # once
    committed, recovering = run_app(app, body)
    assert (committed, recovering) == (True, False)
    assert seen == [("init",), ("shutdown", True)]
    assert isinstance(app.Worker(loglevel="info"), Worker)
