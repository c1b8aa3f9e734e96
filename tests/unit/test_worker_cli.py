"""``detstream worker`` options: bad values exit 2 naming the option; good ones reach the Worker.

No broker: the Worker is built by the command but not run (its
``execute_from_commandline`` is replaced by one that records it).
"""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

import detstream
import detstream.worker
from detstream.cli.main import main

APP_SOURCE = """
import detstream
app = detstream.App("cliapp", broker="kafka://localhost:1", datadir="from-settings")
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "cliproj.py").write_text(APP_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def built(monkeypatch):
    """The Worker each invocation built, instead of running it."""
    workers: list[detstream.worker.Worker] = []

    def record(self):
        workers.append(self)

    monkeypatch.setattr(detstream.worker.Worker, "execute_from_commandline", record)
    return workers


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--blocking-timeout", "0"], "'--blocking-timeout': 0.0 is not in the range x>0"),
        (["--blocking-timeout", "-1"], "'--blocking-timeout'"),
        (["--blocking-timeout", "soon"], "'soon' is not a valid float"),
        (["-p", "0"], "'-p' / '--web-port': 0 is not in the range 1<=x<=65535"),
        (["--web-port", "70000"], "'--web-port'"),
        (["--web-port", "http"], "'http' is not a valid integer"),
        (["-b", "http://0.0.0.0"], "'-b' / '--web-bind': 'http://0.0.0.0' is not a host name"),
        (["--web-bind", "0.0.0.0:6066"], "is not a host name or IP address"),
        (["-h", "my host"], "'-h' / '--web-host': 'my host' is not a host name"),
        (["--web-host", "-bad-.example.com"], "is not a host name"),
        (["-l", "verbose"], "'-l' / '--loglevel': 'verbose' is not one of"),
        (["-f", "no/such/dir/worker.log"], "directory"),
        (["--logfile", "."], "'.' is a directory"),
        (["--datadir", "cliproj.py"], "'--datadir': Directory 'cliproj.py' is a file"),
        (["-D", "cliproj.py/sub"], "cannot be created"),
        (["--with-web", "--nope"], "No such option '--nope'"),
    ],
)
def test_bad_values_exit_2_naming_the_option(project, built, args, says):
    result = run("worker", "cliproj.py", *args)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert built == []  # nothing was started


def test_a_datadir_under_a_read_only_directory_is_refused(project, built):
    if os.geteuid() == 0:
        pytest.skip("root may write anywhere")
    locked = project / "locked"
    locked.mkdir(mode=0o500)
    try:
        result = run("worker", "cliproj.py", "-D", str(locked / "data"))
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2 and "is not a writable directory" in result.output


def test_options_reach_the_worker(project, built):
    result = run("worker", "cliproj.py", "-l", "INFO", "-f", "w.log", "-p", "6099", "-b", "::",
                 "-h", "worker-1.example.com", "--without-web", "-D", "state/w1", "--debug",
                 "--blocking-timeout", "2.5", "-q")
    assert result.exit_code == 0, result.output
    (w,) = built
    assert (w.loglevel, w.logfile, w.web_port, w.web_bind, w.web_host, w.web_enabled) == (
        "info", "w.log", 6099, "::", "worker-1.example.com", False)
    assert (w.datadir, w.debug, w.blocking_timeout, w.quiet) == ("state/w1", True, 2.5, True)


def test_unset_options_leave_the_settings_in_charge(project, built):
    assert run("worker", "cliproj.py").exit_code == 0
    (w,) = built
    assert (w.datadir, w.debug, w.blocking_timeout, w.web_port, w.web_enabled) == (
        None, None, None, None, None)


def test_fausts_global_form_and_the_worker_option_wins(project, built):
    result = run("--debug", "-D", "global-dir", "--blocking-timeout", "3", "-A", "cliproj",
                 "worker", "--blocking-timeout", "1")
    assert result.exit_code == 0, result.output
    (w,) = built
    assert (w.debug, w.datadir, w.blocking_timeout) == (True, "global-dir", 1.0)
    assert run("--no-debug", "worker", "cliproj.py").exit_code == 0
    assert built[1].debug is False


def test_worker_options_become_the_apps_settings_and_show_in_the_banner():
    """What ``Worker.start`` does with them before the App starts (no broker needed for this)."""
    app = detstream.App("banner1", broker="kafka://localhost:1")
    w = detstream.worker.Worker(app, datadir="elsewhere", debug=True, blocking_timeout=0.75,
                                web_port=7001)
    w.apply_options(app)
    assert (app.conf.datadir, app.conf.debug, app.conf.blocking_timeout) == ("elsewhere", True, 0.75)
    assert app.conf.web_port == 7001 and app.conf.web_bind == "0.0.0.0"  # not given: unchanged
    banner = "\n".join(w.banner())
    assert "datadir    elsewhere" in banner
    assert "debug      on, blocking detector timeout 0.75s" in banner


def test_debug_without_a_timeout_uses_fausts_ten_seconds():
    app = detstream.App("banner2", broker="kafka://localhost:1")
    assert "debug      off" in "\n".join(detstream.worker.Worker(app).banner())
    detstream.worker.Worker(app, debug=True).apply_options(app)
    assert "debug      on, blocking detector timeout 10s" in "\n".join(
        detstream.worker.Worker(app).banner())


def test_the_worker_process_freezes_its_start_up_heap_and_collects_less_often():
    """A worker's events die young: the collector's default pace walked them for nothing."""
    import subprocess
    import sys

    probe = ("import gc, detstream.worker as w; w._freeze_startup_heap(); "
             "print(gc.get_threshold() == w.GC_THRESHOLDS, gc.get_freeze_count() > 0)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


# -- Faust's global options (faust --help) and process signals (workers guide) -------------

def test_fausts_global_logging_quiet_and_console_options_reach_the_worker(project, built):
    result = run("-l", "info", "-f", "global.log", "-q", "--console-port", "50555",
                 "-A", "cliproj", "worker")
    assert result.exit_code == 0, result.output
    (w,) = built
    assert (w.loglevel, w.logfile, w.quiet, w.console_port) == ("info", "global.log", True, 50555)
    assert run("-l", "crit", "worker", "cliproj.py", "-l", "debug").exit_code == 0
    assert built[1].loglevel == "debug"  # the worker's own option wins
    assert run("-l", "CRIT", "worker", "cliproj.py").exit_code == 0
    assert built[2].loglevel == "critical" and built[2].console_port == 50101  # Faust's default
    assert run("worker", "cliproj.py").exit_code == 0
    assert (built[3].loglevel, built[3].quiet) == ("warning", False)


def test_workdir_is_entered_before_the_app_is_loaded(project, built, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (elsewhere / "wdproj.py").write_text(APP_SOURCE.replace("cliapp", "wdapp"))
    os.chdir(project)
    result = run("-W", str(elsewhere), "-A", "wdproj.py", "worker")
    assert result.exit_code == 0, result.output
    assert built[0].app.conf.id == "wdapp" and os.getcwd() == str(elsewhere)
    result = run("-W", str(elsewhere / "missing"), "agents")
    assert result.exit_code == 2 and "'-W' / '--workdir'" in result.output


def test_only_asyncios_own_loop_is_taken(project, built):
    assert run("-L", "aio", "worker", "cliproj.py").exit_code == 0
    for loop in ("uvloop", "eventlet"):
        result = run("--loop", loop, "worker", "cliproj.py")
        assert result.exit_code == 2 and "eventlet and uvloop are not supported" in result.output
    assert len(built) == 1


def test_usr1_logs_every_threads_and_tasks_stack(caplog):
    import asyncio
    import logging
    import signal

    app = detstream.App("usr1", broker="kafka://localhost:1")
    worker = detstream.worker.Worker(app)

    async def main():
        async def stuck_somewhere():
            await asyncio.sleep(10)

        task = asyncio.ensure_future(stuck_somewhere())
        task.set_name("stuck-task")
        await asyncio.sleep(0)
        with caplog.at_level(logging.WARNING):
            worker._on_sigusr1(signal.SIGUSR1)
        task.cancel()

    asyncio.run(main())
    assert "USR1 received" in caplog.text and "Thread MainThread" in caplog.text
    assert "Task stuck-task" in caplog.text and "stuck_somewhere" in caplog.text
    assert not worker._stop_requested  # it stops nothing


def test_debug_console_is_aiomonitors_when_installed(monkeypatch, caplog):
    import asyncio
    import logging
    import sys
    import types

    from detstream.debugging import start_console

    loop = asyncio.new_event_loop()
    try:
        monkeypatch.setitem(sys.modules, "aiomonitor", None)  # not installed
        with caplog.at_level(logging.WARNING):
            assert start_console(loop, 50101) is None
        assert "aiomonitor is not installed (pip install aiomonitor)" in caplog.text

        started = []
        fake = types.ModuleType("aiomonitor")
        fake.start_monitor = lambda loop, *, port: started.append((loop, port)) or "monitor"
        monkeypatch.setitem(sys.modules, "aiomonitor", fake)
        assert start_console(loop, 50555) == "monitor" and started == [(loop, 50555)]

        def refuse(loop, *, port):
            raise OSError("address in use")

        fake.start_monitor = refuse
        assert start_console(loop, 50555) is None and "address in use" in caplog.text
    finally:
        loop.close()
