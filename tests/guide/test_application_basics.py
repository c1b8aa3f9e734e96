"""Guide: "What is an Application?" -- an App, several per process, shared with threads."""

import asyncio
import random
import threading

import detstream as faust
from detstream.stores.rocksdb import RocksDBStore
from sim.cluster import ClusterConfig, SimCluster
from sim.driver import SimTransport
from sim.trace import Trace

from .helpers import run_app, simulate, start_worker


def test_create_an_app_with_a_broker_and_a_store():
    # >>> app = faust.App('example', broker='kafka://', store='rocksdb://')
    app = faust.App("example", broker="kafka://", store="rocksdb://")
    assert app.conf.id == "example"
    assert app.conf.broker == "kafka://" and app.conf.store == "rocksdb://"
    table = app.Table("t")
    assert isinstance(table.data, RocksDBStore)  # the store URL picks the table storage
    assert app.agents == {}  # nothing connects or starts when the App is made


def test_an_app_defines_agents_topics_channels_views_and_commands():
    app = faust.App("example", broker="sim://")
    topic = app.topic("t", value_type=str, internal=True)
    channel = app.channel()
    got = []

    @app.agent(topic)
    async def agent(stream):
        async for value in stream:
            got.append(value)

    @app.page("/hello/")
    async def hello(web, request):
        return web.json("hi")

    @app.command()
    async def cmd():
        """A command."""

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(value="x")
        await asyncio.sleep(3)
        return (await app.web.client().get("/hello/")).json()

    assert run_app(app, body) == "hi"
    assert got == ["x"] and "cmd" in app.commands and channel.app is app


def test_multiple_application_instances_in_the_same_process():
    # >>> app1 = faust.App('demo1')
    # >>> app2 = faust.App('demo2')
    app1, app2 = faust.App("demo1", broker="sim://"), faust.App("demo2", broker="sim://")
    counts = {}
    for app in (app1, app2):
        table = app.Table("counts", default=int)
        topic = app.topic(f"{app.conf.id}-in", internal=True, partitions=1, value_type=str)
        counts[app.conf.id] = (table, topic)

        @app.agent(topic)
        async def count(stream, table=table):
            async for word in stream:
                table[word] += 1

    async def main(cluster):
        await start_worker(app1, cluster, "w1")
        await start_worker(app2, cluster, "w2")
        await asyncio.sleep(1)
        await counts["demo1"][1].send(value="a")
        await counts["demo2"][1].send(value="b")
        await counts["demo2"][1].send(value="b")
        await asyncio.sleep(5)
        result = {name: table.as_dict() for name, (table, _) in counts.items()}
        groups = sorted(g for g in ("demo1", "demo2") if cluster.group(g).committed)
        await app2.stop()
        await app1.stop()
        return result, groups

    result, groups = simulate(main)
    assert result == {"demo1": {"a": 1}, "demo2": {"b": 2}}
    assert groups == ["demo1", "demo2"]


def test_share_an_app_between_multiple_threads():
    """The app is thread safe: another thread sends with ``app.send_threadsafe``."""

    async def main():
        loop = asyncio.get_running_loop()
        cluster = SimCluster(Trace(loop.time), rng=random.Random(0),
                             config=ClusterConfig(initial_rebalance_delay=0.01))
        app = faust.App("threads", broker=SimTransport(cluster=cluster, name="w1"),
                        web_enabled=False)
        await app.start()
        await asyncio.sleep(0)

        def from_a_thread():
            assert threading.current_thread() is not threading.main_thread()
            return app.send_threadsafe("greetings", value="hi").result(timeout=30)

        try:
            metadata = await loop.run_in_executor(None, from_a_thread)
        finally:
            await app.stop()
        return metadata.topic, [r.value for r in cluster.records("greetings")]

    assert asyncio.run(main()) == ("greetings", [b'"hi"'])
