"""Several apps in one process: ``Worker(app1, app2, ...)`` (Faust's ``*services``), and
App instances that share nothing but the process."""

import asyncio
import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mode import Service

import detstream
from detstream.errors import ImproperlyConfigured, InvalidArgument
from detstream.worker import Worker
from sim.cluster import ClusterConfig
from sim.testing import simulate

ROOT = Path(__file__).resolve().parents[2]
FAST = ClusterConfig(initial_rebalance_delay=0.1)


def make_app(app_id, log):
    """An app counting words of its own topic in a table named like the other app's."""
    app = detstream.App(app_id, broker="sim://", web_enabled=False, topic_partitions=2)
    words = app.topic(f"{app_id}-words", internal=True, partitions=2, value_type=str)
    counts = app.Table("counts", default=int)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    @app.service
    class Lifecycle(Service):
        async def on_start(self):
            log.append(f"start {app_id}")

        async def on_stop(self):
            log.append(f"stop {app_id}")

    @app.on_worker_init.connect
    def init(sender, **kwargs):
        log.append(f"init {sender.conf.id}")

    return app, words, counts


def test_await_start_runs_both_apps_until_stopped():
    log = []

    async def main(cluster):
        (app1, words1, counts1), (app2, words2, counts2) = make_app("demo1", log), make_app("demo2", log)
        out = io.StringIO()
        worker = Worker(app1, app2, stdout=out)
        assert worker.app is app1 and worker.apps == [app1, app2]
        running = asyncio.ensure_future(worker.start())  # daemon: returns once stopped
        await asyncio.sleep(2)
        for word in ["a", "b", "a"]:
            await words1.send(key=word.encode(), value=word)
        await words2.send(key=b"z", value="z")
        await asyncio.sleep(5)
        tables = counts1.as_dict(), counts2.as_dict()
        assert not running.done()
        worker.request_stop()
        await running
        committed = {g: sum(cluster.group(g).committed.values()) for g in ("demo1", "demo2")}
        return tables, worker.exit_code, out.getvalue(), committed, (app1, app2)

    tables, code, out, committed, apps = simulate(main, seed=1, config=FAST)
    assert tables == ({"a": 2, "b": 1}, {"z": 1})  # same table name, separate state
    assert code == 0 and "stopped cleanly" in out
    assert "also       app 'demo2' on sim://, 1 agents" in out
    assert committed == {"demo1": 3, "demo2": 1}  # a consumer group each
    assert all(app.should_stop for app in apps)
    assert log == ["init demo1", "init demo2", "start demo1", "start demo2", "stop demo2",
                   "stop demo1"]


def test_daemon_false_start_returns_once_started_and_stop_stops_both():
    log = []

    async def main(cluster):
        (app1, *_), (app2, *_) = make_app("one", log), make_app("two", log)
        worker = Worker(app1, app2, daemon=False, quiet=True)
        await worker.start()
        started = [app._started.is_set() for app in (app1, app2)]
        await asyncio.sleep(1)
        await worker.stop()
        return started, [app.should_stop for app in (app1, app2)]

    assert simulate(main, seed=2, config=FAST) == ([True, True], [True, True])
    assert log[-2:] == ["stop two", "stop one"]


def test_a_crash_of_the_second_app_stops_the_worker_with_exit_code_1():
    async def main(cluster):
        (app1, *_), (app2, *_) = make_app("main-app", []), make_app("other-app", [])
        worker = Worker(app1, app2, quiet=True)
        running = asyncio.ensure_future(worker.start())
        await asyncio.sleep(2)
        await app2.crash(RuntimeError("planted"))
        await running
        return worker.exit_code, app1.should_stop

    assert simulate(main, seed=3, config=FAST) == (1, True)


def test_an_error_while_starting_is_raised_by_await_start():
    async def main(cluster):
        app = detstream.App("bad-broker", broker="nosuch://x", web_enabled=False)
        worker = Worker(app, quiet=True)
        with pytest.raises(ImproperlyConfigured) as info:
            await worker.start()
        return worker.exit_code, str(info.value)

    code, message = simulate(main, seed=4)
    assert code == 1 and "nosuch" in message


def test_apps_in_one_process_share_no_registry():
    first, second = detstream.App("demo1"), detstream.App("demo2")
    first.topic("t")
    first.Table("counts")

    @first.agent()
    async def only_in_first(stream):
        async for _ in stream:
            pass

    seen = []
    first.on_worker_init.connect(lambda sender, **kw: seen.append(sender.conf.id))
    second.on_worker_init.send()
    first.on_worker_init.send()
    assert list(second.agents) == [] and second.tables.tables == {}
    assert second._topics == [] and seen == ["demo1"]  # instance handlers are per app
    second.Table("counts")  # the same name in another app is no clash
    assert first.conf.id != second.conf.id and first.conf is not second.conf


@pytest.mark.parametrize("services, error, match", [
    (("not a service",), InvalidArgument, "must be detstream Apps or mode Services, got str"),
    (("self",), InvalidArgument, "is given twice"),
])
def test_bad_services_are_refused(services, error, match):
    app = detstream.App("main")
    services = tuple(app if s == "self" else s for s in services)
    with pytest.raises(error, match=match):
        Worker(app, *services)


SCRIPT = textwrap.dedent("""
    import asyncio

    import detstream
    from detstream.worker import Worker

    app1 = detstream.App('demo1', broker='sim://', web_enabled=False)
    app2 = detstream.App('demo2', broker='sim://', web_enabled=False)
    worker = Worker(app1, app2, loglevel='warning')
    first_ran = asyncio.Event()  # each app starts its tasks once its own group took it in

    @app1.task
    async def first():
        print('demo1 task ran', flush=True)
        first_ran.set()

    @app2.task
    async def second():
        await first_ran.wait()
        print('demo2 task ran', flush=True)
        worker.request_stop()

    worker.execute_from_commandline()
""")


def test_execute_from_commandline_runs_both_apps_and_exits_0(tmp_path):
    script = tmp_path / "two_apps.py"
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         cwd=tmp_path, timeout=120, check=False,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "demo1 task ran" in lines and "demo2 task ran" in lines
    assert lines.index("demo1 task ran") < lines.index("demo2 task ran")
    assert lines[-1] == "stopped cleanly"
