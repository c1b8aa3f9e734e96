"""Guide: "Starting the App" -- the four entry points: the CLI, ``faust.Worker`` (from sync
code, from async code, with several apps) and ``app.start()``."""

import asyncio
import io
import sys
from textwrap import dedent

from mode import Service

import detstream as faust

from .helpers import python, simulate, wait_for, write_module

#: The project the CLI tests start. It stops itself: a task sends the process a TERM
#: once the app runs, which must stop the worker gracefully.
MYPROJ = """
    import os
    import signal

    import detstream as faust

    app = faust_app = faust.App('myproj', broker='sim://', web_enabled=False)

    @app.task
    async def stop_soon():
        print('RUNNING', flush=True)
        os.kill(os.getpid(), signal.SIGTERM)
"""


def test_faust_dash_a_myproj_worker(tmp_path):
    write_module(tmp_path, "myproj.py", MYPROJ)
    for target in ("myproj", "myproj:faust_app"):
        out = python("-m", "detstream", "-A", target, "worker", "-l", "info", cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("detstream worker: app 'myproj'")
        assert "RUNNING" in lines and lines[-1] == "stopped cleanly"
        assert "TERM received: stopping gracefully" in out.stderr.replace("SIGTERM", "TERM")


def test_worker_execute_from_commandline(tmp_path):
    write_module(tmp_path, "run.py", dedent(MYPROJ) + dedent("""
        worker = faust.Worker(app, loglevel='info')
        worker.execute_from_commandline()
    """))
    out = python("run.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "stopped cleanly"


def test_await_worker_start_and_stop_and_shutdown_loop(tmp_path):
    write_module(tmp_path, "embed.py", dedent(MYPROJ) + dedent("""
        import asyncio

        async def start_worker(worker: faust.Worker) -> None:
            await worker.start()

        def manage_loop():
            loop = asyncio.new_event_loop()  # the guide: asyncio.get_event_loop()
            worker = faust.Worker(app, loop=loop)
            try:
                loop.run_until_complete(start_worker(worker))
            finally:
                worker.stop_and_shutdown_loop()
            print('loop closed:', loop.is_closed(), 'exit code:', worker.exit_code)

        manage_loop()
    """))
    out = python("embed.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "RUNNING" in lines
    assert lines[-2:] == ["stopped cleanly", "loop closed: True exit code: 0"]


def test_several_apps_in_one_worker():
    apps = [faust.App(f"app{n}", broker="sim://", web_enabled=False) for n in range(1, 5)]

    async def main(cluster):
        worker = faust.Worker(*apps, stdout=io.StringIO())
        running = asyncio.ensure_future(worker.start())
        await wait_for(lambda: all(app._started.is_set() for app in apps))
        worker.request_stop()
        await running
        return worker.app, [app.should_stop for app in apps]

    main_app, stopped = simulate(main)
    assert main_app is apps[0] and stopped == [True] * 4


def test_the_worker_autodiscovers(tmp_path, monkeypatch):
    write_module(tmp_path, "discoproj/__init__.py", "")
    write_module(tmp_path, "discoproj/app.py", """
        import detstream as faust
        app = faust.App('disco', broker='sim://', web_enabled=False, autodiscover=True)
    """)
    write_module(tmp_path, "discoproj/agents.py", """
        from discoproj.app import app

        @app.agent()
        async def found(stream):
            async for _ in stream:
                pass
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        from discoproj.app import app

        async def main(cluster):
            worker = faust.Worker(app, daemon=False, quiet=True)
            await worker.start()
            names = list(app.agents)
            await worker.stop()
            return names

        assert simulate(main) == ["discoproj.agents.found"]
    finally:
        for name in [n for n in sys.modules if n.startswith("discoproj")]:
            del sys.modules[name]


def test_app_start_directly_and_in_the_background():
    app = faust.App("direct", broker="sim://")
    seen = []

    @app.agent(app.channel())
    async def agent(stream):
        async for value in stream:
            seen.append(value)

    async def start_app(app):
        await app.start()

    def start_in_loop(app):
        # the guide: loop.ensure_future(app.start()); event loops have no ensure_future
        return asyncio.ensure_future(app.start())

    async def main(cluster):
        starting = start_in_loop(app)
        await starting
        await asyncio.sleep(1)
        await agent.channel.send(value="hi")
        await asyncio.sleep(1)
        await app.stop()
        other = faust.App("direct-2", broker="sim://")
        await start_app(other)
        await asyncio.sleep(1)
        running = other._started.is_set()
        await other.stop()
        return running

    assert simulate(main) is True
    assert seen == ["hi"]


def test_the_app_as_a_dependency_of_a_mode_service():
    faust_app = faust.App("dependency", broker="sim://")
    ticks = []

    @faust_app.timer(1.0)
    async def tick():
        ticks.append(1)

    class MyService(Service):

        def on_init_dependencies(self):
            return [faust_app]

    async def main(cluster):
        service = MyService()
        await service.start()
        await asyncio.sleep(3.5)
        started = faust_app._started.is_set()
        await service.stop()
        return started, faust_app.should_stop

    assert simulate(main) == (True, True)
    assert len(ticks) == 3


def test_a_worker_changes_to_its_workdir_when_it_starts(tmp_path, monkeypatch):
    """The guide's Worker: "Changing the directory when the ``workdir`` argument is set"."""
    import os

    import pytest

    monkeypatch.chdir(os.getcwd())  # restored after the test
    app = faust.App("workdir", broker="sim://", web_enabled=False)
    seen = []

    @app.on_worker_init.connect
    def where(app, **kwargs):
        seen.append(os.getcwd())

    async def main(cluster):
        worker = faust.Worker(app, stdout=io.StringIO(), daemon=False, workdir=tmp_path)
        await worker.start()
        await worker.stop()

    simulate(main)
    assert seen == [str(tmp_path)]
    with pytest.raises(ValueError, match="not a directory"):
        faust.Worker(app, workdir=tmp_path / "missing")
