"""Guide: "Application Signals". (The guide's ``Set[TP]`` annotations are ``set[TP]`` here.)"""

import asyncio
import io

import detstream as faust
from detstream.types import TP, AppT

from .helpers import python, simulate, start_worker, write_module


def make_app(log, name):
    app = faust.App("signals", broker="sim://", topic_partitions=4)
    app.topic("in", internal=True, partitions=4)

    @app.agent(app.topic("in"))
    async def consume(stream):
        async for _ in stream:
            pass

    @app.on_partitions_revoked.connect
    async def on_partitions_revoked(app: AppT, revoked: set[TP], **kwargs) -> None:
        log.append((name, "revoked", sorted(tp.partition for tp in revoked if tp.topic == "in")))

    @app.on_partitions_assigned.connect
    async def on_partitions_assigned(app: AppT, assigned: set[TP], **kwargs) -> None:
        log.append((name, "assigned", sorted(tp.partition for tp in assigned if tp.topic == "in")))

    return app


def test_revoked_and_assigned_signals_on_a_rebalance():
    log = []
    first, second = make_app(log, "w1"), make_app(log, "w2")

    async def main(cluster):
        await start_worker(first, cluster, "w1")
        await asyncio.sleep(5)
        await start_worker(second, cluster, "w2")  # a rebalance: w1 gives up half
        await asyncio.sleep(10)
        await second.stop()
        await first.stop()

    simulate(main, seed=1)
    log = [entry for entry in log if entry[2]]  # the first join revokes nothing
    assert log[0] == ("w1", "assigned", [0, 1, 2, 3])
    assert ("w1", "revoked", [0, 1, 2, 3]) in log  # revoked are the partitions held before
    final = {name: parts for name, kind, parts in log if kind == "assigned"}
    assert sorted(final["w1"] + final["w2"]) == [0, 1, 2, 3] and final["w1"] and final["w2"]


def test_connecting_to_the_class_is_called_for_every_app():
    calls = []

    @faust.App.on_partitions_revoked.connect
    async def on_partitions_revoked(app: AppT, revoked: set[TP], **kwargs) -> None:
        calls.append(app.client_name)

    try:
        first, second = make_app([], "w1"), make_app([], "w2")

        async def main(cluster):
            await start_worker(first, cluster, "w1")
            await asyncio.sleep(5)
            await start_worker(second, cluster, "w2")
            await asyncio.sleep(10)
            await second.stop()
            await first.stop()

        simulate(main, seed=1)
    finally:
        faust.App.on_partitions_revoked.disconnect(on_partitions_revoked)
    assert {"w1", "w2"} <= set(calls)


def test_on_configured_configures_the_app(monkeypatch):
    monkeypatch.setenv("FAUST_BROKER", "sim://")
    monkeypatch.setenv("STORE_URL", "rocksdb://")
    app = faust.App("myapp")

    @app.on_configured.connect
    def configure(app, conf, **kwargs):
        import os

        conf.broker = os.environ.get("FAUST_BROKER")
        conf.store = os.environ.get("STORE_URL")

    assert (app.conf.broker, app.conf.store) == ("sim://", "rocksdb://")


def test_before_and_after_configured(capsys):
    app = faust.App("myapp")

    @app.on_before_configured.connect
    def before_configuration(app, **kwargs):
        print(f"App {app} is being configured")

    @app.on_after_configured.connect
    def after_configuration(app, **kwargs):
        print(f"App {app} has been configured.")

    _ = app.conf
    _ = app.conf  # configured once
    assert capsys.readouterr().out == (f"App {app} is being configured\n"
                                       f"App {app} has been configured.\n")


def test_on_worker_init_is_sent_by_the_worker():
    app = faust.App("myapp", broker="sim://", web_enabled=False)
    calls = []

    @app.on_worker_init.connect
    def on_worker_init(app, **kwargs):
        calls.append(f"Working starting for app {app}")

    async def main(cluster):
        worker = faust.Worker(app, stdout=io.StringIO(), daemon=False)
        await worker.start()
        await asyncio.sleep(1)
        await worker.stop()

    simulate(main)
    assert calls == [f"Working starting for app {app}"]


def test_on_worker_init_is_sent_by_app_main(tmp_path):
    write_module(tmp_path, "myapp.py", """
        import detstream as faust

        app = faust.App('myapp', broker='sim://')

        @app.on_worker_init.connect
        def on_worker_init(app, **kwargs):
            print(f'Working starting for app {app}')

        if __name__ == '__main__':
            app.main()
    """)
    out = python("myapp.py", "agents", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "Working starting for app <App: myapp>"


def test_handlers_take_the_payload_positionally_and_the_signal_by_keyword():
    """"Signals accept positional arguments" and handlers take ``**kwargs``: as mode calls them,
    ``handler(sender, *args, signal=signal)``, so a handler names its parameters as it likes."""
    app = faust.App("signals", broker="sim://")
    calls = []

    @app.on_partitions_revoked.connect
    async def renamed(sender, partitions, **kwargs):
        calls.append((sender, partitions, kwargs["signal"]))

    @app.on_configured.connect
    def settings_named_otherwise(sender, settings, **kwargs):
        calls.append(("configured", settings.id))

    @app.on_partitions_revoked.connect
    async def without_kwargs(sender, partitions):  # the guide asks for **kwargs; not fatal
        calls.append(("no kwargs", partitions))

    _ = app.conf
    asyncio.run(app.on_partitions_revoked.send({TP("in", 1)}))
    assert calls == [("configured", "signals"), (app, {TP("in", 1)}, app.on_partitions_revoked),
                     ("no kwargs", {TP("in", 1)})]
