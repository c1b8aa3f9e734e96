"""``app.send_threadsafe`` (detstream/threadsafe.py): sending from other threads.

These run a real asyncio loop (threads cannot run under the simulator) with
an app on an in-memory sim cluster of its own: no broker, and no waiting
beyond the sends themselves.
"""

import asyncio
import concurrent.futures
import json
import random
import threading

import pytest

import detstream
from detstream.errors import CodecError, ImproperlyConfigured, InvalidArgument
from sim.cluster import ClusterConfig, SimCluster
from sim.driver import SimTransport
from sim.errors import RealIOForbidden
from sim.testing import simulate
from sim.trace import Trace


def make_app(cluster):
    app = detstream.App("threads", broker=SimTransport(cluster=cluster, name="w1"),
                        web_enabled=False)
    events = app.topic("events", internal=True, partitions=2, value_type=str)
    local = app.channel()
    return app, events, local


def run_on_real_loop(body):
    """``body(app, events, local, cluster)`` on a plain asyncio loop, the app started."""

    async def main():
        loop = asyncio.get_running_loop()
        cluster = SimCluster(Trace(loop.time), rng=random.Random(0),
                             config=ClusterConfig(initial_rebalance_delay=0.01))
        app, events, local = make_app(cluster)
        await app.start()
        await asyncio.sleep(0)  # one turn: the engine's tasks start before a quick stop
        try:
            return await body(app, events, local, cluster)
        finally:
            await app.stop()

    return asyncio.run(main())


def values_in(cluster, topic):
    """Raw keys and the str values (JSON text under the app's default value_serializer)."""
    return [(r.key, json.loads(r.value)) for r in cluster.records(topic)]


def test_a_thread_sends_and_gets_the_record_metadata():
    async def body(app, events, local, cluster):
        def in_thread():
            futures = [app.send_threadsafe("events", key=b"k", value=f"v{i}") for i in range(3)]
            assert all(isinstance(f, concurrent.futures.Future) for f in futures)
            return [f.result(timeout=30) for f in futures], threading.current_thread()

        metadata, thread = await asyncio.get_running_loop().run_in_executor(None, in_thread)
        assert thread is not threading.main_thread()
        return metadata, values_in(cluster, "events")

    metadata, records = run_on_real_loop(body)
    assert [(m.topic, m.offset) for m in metadata] == [("events", 0), ("events", 1), ("events", 2)]
    assert len({m.partition for m in metadata}) == 1  # one key, one partition
    assert records == [(b"k", "v0"), (b"k", "v1"), (b"k", "v2")]


def test_many_threads_at_once_lose_nothing_and_keep_each_threads_order():
    async def body(app, events, local, cluster):
        def sender(n):
            futures = [app.send_threadsafe(events, key=f"t{n}".encode(), value=f"{n}-{i}")
                       for i in range(25)]
            return [f.result(timeout=30).offset for f in futures]

        loop = asyncio.get_running_loop()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            offsets = await asyncio.gather(*(loop.run_in_executor(pool, sender, n)
                                             for n in range(4)))
        return offsets, values_in(cluster, "events")

    offsets, records = run_on_real_loop(body)
    assert all(o == sorted(o) for o in offsets)  # a thread's sends keep their order
    assert sorted(v for _, v in records) == sorted(
        f"{n}-{i}" for n in range(4) for i in range(25))
    for n in range(4):
        mine = [v for k, v in records if k == f"t{n}".encode()]
        assert mine == [f"{n}-{i}" for i in range(25)]


def test_the_faust_pattern_run_coroutine_threadsafe_on_app_loop_works():
    async def body(app, events, local, cluster):
        assert app.loop is asyncio.get_running_loop()

        def in_thread():
            asyncio.run_coroutine_threadsafe(
                app.send("events", value="via app.loop"), app.loop).result(timeout=30)
            return app.send_threadsafe("events", value="flushed").result(timeout=30)

        await asyncio.get_running_loop().run_in_executor(None, in_thread)
        return sorted(v for _, v in values_in(cluster, "events"))

    assert run_on_real_loop(body) == ["flushed", "via app.loop"]


def test_channels_and_agents_are_targets_too():
    async def body(app, events, local, cluster):
        got = []
        queue = local.subscribe()

        def in_thread():
            return app.send_threadsafe(local, value={"x": 1}).result(timeout=30)

        result = await asyncio.get_running_loop().run_in_executor(None, in_thread)
        got.append((await queue.get()).value)
        return result, got

    metadata, got = run_on_real_loop(body)
    assert got == [{"x": 1}]
    assert (metadata.topic, metadata.partition, metadata.offset) == ("<anon>", -1, -1)


def test_send_errors_are_raised_by_the_future():
    async def body(app, events, local, cluster):
        def in_thread():
            future = app.send_threadsafe("events", value=object(), value_serializer="json")
            try:
                future.result(timeout=30)
            except Exception as exc:
                return exc
            return None

        return await asyncio.get_running_loop().run_in_executor(None, in_thread)

    assert isinstance(run_on_real_loop(body), CodecError)


def test_an_app_that_is_not_running_refuses_clearly():
    app = detstream.App("idle", broker="sim://")
    with pytest.raises(ImproperlyConfigured, match="app 'idle' is not running: start it"):
        app.send_threadsafe("events", value="x")

    async def body(app, events, local, cluster):
        return app

    stopped = run_on_real_loop(body)
    with pytest.raises(ImproperlyConfigured, match="is not running"):
        stopped.send_threadsafe("events", value="late")


def test_calling_it_on_the_apps_own_loop_is_refused():
    async def body(app, events, local, cluster):
        with pytest.raises(InvalidArgument, match="use `await app.send"):
            app.send_threadsafe("events", value="x")

    run_on_real_loop(body)


def test_the_simulator_refuses_threads():
    async def main(cluster):
        with pytest.raises(RealIOForbidden):
            threading.Thread(target=lambda: None).start()

    simulate(main, seed=0)
