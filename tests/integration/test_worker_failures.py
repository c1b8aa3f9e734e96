"""``detstream worker`` processes that cannot go on as planned (issue 9).

- two workers given one ``--datadir``: RocksDB is locked, the rebalance
  listener fails; the worker it hits stops with a clear error and exit 1
  instead of running on with its tables not recovered (aiokafka alone would
  log the listener's exception and go on);
- TERM while the broker is unreachable, from the start (a closed port) or
  lost while running: the worker stops within its shutdown timeout, prints
  "stopped cleanly", exits 0, with no traceback and no unclosed client;
- a broker outage of more than half a minute (a broker of the test's own,
  stopped and started again on its port): the worker logs it in a few dozen
  summarised lines (aiokafka alone logged tens of thousands a minute) and
  goes on processing once the broker is back.

Workers are subprocesses (``WorkerProcess``); every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.helpers import DEADLINE_S, REPO, WorkerProcess, fold_topic, now

APP_SOURCE = '''
import asyncio
import gc
import os

import detstream
from detstream.worker import Worker

app = detstream.App(
    os.environ["IT_APP_ID"],
    broker=os.environ["DETSTREAM_IT_BROKER"],
    store=os.environ.get("IT_STORE", "memory://"),
    topic_partitions=4,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
)
source = app.topic(os.environ["IT_APP_ID"] + "-in", value_type=str, internal=True)
output = app.topic(os.environ["IT_APP_ID"] + "-out", value_type=str, internal=True)
counts = app.Table("counts", default=int, key_type=str, value_type=int)


@app.agent(source, sink=[output])
async def count(stream):
    async for word in stream:
        counts[word] += 1
        yield word


@app.timer(0.3)
async def feed():
    if os.environ.get("IT_FEED"):
        await source.send(value="word")


@app.timer(0.1)
async def cut_the_network():
    """When the test creates CUT: the broker becomes unreachable, as a closed port is.

    Every connection to it is aborted and every new one refused, as when a
    broker host goes down (the broker itself is shared by the test suite).
    """
    if not os.path.exists("CUT") or getattr(app, "cut", False):
        return
    app.cut = True
    loop = asyncio.get_running_loop()

    async def refused(*args, **kwargs):
        raise ConnectionRefusedError(111, "Connect call failed (the test cut the network)")

    loop.create_connection = refused
    from aiokafka.conn import AIOKafkaConnection

    aborted = 0
    for conn in [o for o in gc.get_objects() if isinstance(o, AIOKafkaConnection)]:
        if conn._writer is not None:
            conn._writer.transport.abort()
            aborted += 1
    print(f"network cut: {{aborted}} connections aborted", flush=True)


if __name__ == "__main__":
    Worker(app, loglevel="info", web_enabled=False,
           shutdown_timeout={shutdown_timeout}).execute_from_commandline()
'''

SHUTDOWN_TIMEOUT = 12.0


@pytest.fixture
def workers(tmp_path: Path):
    """Factory: write the app, spawn workers of it; kills leftovers at teardown."""
    spawned: list[WorkerProcess] = []
    (tmp_path / "fail_app.py").write_text(APP_SOURCE.format(shutdown_timeout=SHUTDOWN_TIMEOUT))
    app_id = f"it-fail-{secrets.token_hex(4)}"

    def spawn(broker: str, args: list[str], name: str, **env: str) -> WorkerProcess:
        environ = {**os.environ, "DETSTREAM_IT_BROKER": broker, "IT_APP_ID": app_id,
                   "PYTHONUNBUFFERED": "1", **env}
        worker = WorkerProcess(tmp_path, environ, args, name)
        worker.app_id = app_id
        spawned.append(worker)
        return worker

    yield spawn
    for worker in spawned:
        worker.kill()


def closed_port() -> int:
    with socket.socket() as sock:  # bound, never listening, then closed: connections refused
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_stopped_cleanly(worker: WorkerProcess) -> None:
    assert worker.wait(SHUTDOWN_TIMEOUT + 5) == 0, worker.tail()
    assert worker.output().splitlines()[-1] == "stopped cleanly", worker.tail()
    log = worker.log()
    assert "Traceback" not in log, worker.tail(200)
    assert "Unclosed" not in log and "never retrieved" not in log, worker.tail(200)


# -- the rebalance listener fails ---------------------------------------------------------
def test_two_workers_sharing_a_datadir_one_stops_with_a_locked_error(
    kafka_bootstrap: str, workers, tmp_path: Path
) -> None:
    shared = tmp_path / "shared-data"
    args = ["-m", "detstream", "worker", "fail_app.py", "-l", "info", "--without-web",
            "--datadir", str(shared)]
    broker = f"kafka://{kafka_bootstrap}"
    first = workers(broker, args, "w1", IT_STORE="rocksdb://", IT_FEED="1")
    first.wait_for("ready:")
    second = workers(broker, args, "w2", IT_STORE="rocksdb://")
    # The second one's standbys (or actives) are the first one's open RocksDB partitions.
    crash = "crashed: RebalanceListenerError"
    deadline = now() + DEADLINE_S
    while not any(crash in w.output() or w.proc.poll() is not None for w in (first, second)):
        assert now() < deadline, f"no worker stopped\n{first.tail()}\n{second.tail()}"
        time.sleep(0.05)
    crashed = [w for w in (first, second) if crash in w.output()]
    for worker in crashed:  # it stops by itself: a TERM now could land after its stop
        worker.wait()
    for worker in (first, second):  # the other one may be failing too: both opened shared files
        worker.signal(signal.SIGTERM)
    codes = {worker.name: worker.wait() for worker in (first, second)}
    assert any(crash in w.output() for w in (first, second)), codes
    for worker in (first, second):
        if crash not in worker.output():  # it took its assignment whole, and stopped on TERM
            assert codes[worker.name] == 0 and "stopped cleanly" in worker.output(), worker.tail()
            continue
        # exit 1; or killed by the TERM sent to the other one, when it arrived after this
        # worker's own stop had finished (it was crashing at the same time)
        assert codes[worker.name] in (1, -signal.SIGTERM), worker.tail()
        out = worker.output()
        assert "crashed: RebalanceListenerError: the worker could not take its assignment" in out, out
        assert "is locked by another worker" in out and repr(str(shared)) in out, out
        assert "Give each worker its own datadir (--datadir DIR" in out, out
        # detstream took the failure: aiokafka never saw (and swallowed) it
        assert "User provided listener" not in worker.log(), worker.tail()


# -- TERM while the broker is unreachable -------------------------------------------------
def test_term_while_the_broker_was_never_reachable_stops_cleanly(workers) -> None:
    worker = workers(f"kafka://127.0.0.1:{closed_port()}", ["fail_app.py"], "w")
    worker.wait_for("cannot reach Kafka at 127.0.0.1", in_log=True, timeout=30)
    worker.signal(signal.SIGTERM)
    assert_stopped_cleanly(worker)


def test_term_after_the_broker_became_unreachable_stops_cleanly(
    kafka_bootstrap: str, workers, tmp_path: Path
) -> None:
    worker = workers(f"kafka://{kafka_bootstrap}", ["fail_app.py"], "w", IT_FEED="1")
    worker.wait_for("ready:")
    (tmp_path / "CUT").touch()
    worker.wait_for("network cut:")
    # the clients notice: their requests fail and are retried after a backoff
    worker.wait_for("Connect call failed (the test cut the network)", in_log=True, timeout=30)
    worker.signal(signal.SIGTERM)
    assert_stopped_cleanly(worker)


# -- a broker outage ----------------------------------------------------------------------
#: longer than the log filter's window (``aiokafka_logs.WINDOW``, 30 s): its summaries show.
OUTAGE_S = 35.0


class OwnBroker:
    """A broker of this test alone (``scripts/kafka-local`` in ``rundir``): it may go down."""

    def __init__(self, rundir: Path) -> None:
        self.rundir = rundir
        self.bootstrap = ""

    def _run(self, *args: str) -> str:
        proc = subprocess.run(
            [sys.executable, str(REPO / "scripts" / "kafka-local"), *args, "--dir", str(self.rundir)],
            capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, f"kafka-local {args[0]} failed:\n{proc.stderr}"
        return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""

    def start(self) -> None:
        port = ["--port", self.bootstrap.rpartition(":")[2]] if self.bootstrap else []
        self.bootstrap = self._run("start", "--timeout", "120", "--watch-pid", str(os.getpid()), *port)

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture
def own_broker(kafka_bootstrap: str, tmp_path: Path):
    """Needs what the session broker needs (``kafka_bootstrap``: skipped loudly without Java)."""
    broker = OwnBroker(tmp_path / "own-kafka")
    broker.start()
    yield broker
    broker.stop()


def test_a_broker_outage_is_logged_in_a_few_lines_and_survived(own_broker, workers) -> None:
    worker = workers(f"kafka://{own_broker.bootstrap}", ["fail_app.py"], "w", IT_FEED="1")
    worker.wait_for("ready:")
    before = len(worker.log().splitlines())
    own_broker.stop()
    down_at = now()
    worker.wait_for("Connect call failed", in_log=True, timeout=30)
    time.sleep(max(0.0, OUTAGE_S - (now() - down_at)))  # the outage itself: what is tested
    during = worker.log().splitlines()[before:]
    own_broker.start()
    back_at_ms = time.time() * 1000  # noqa: TID251 - compared with the broker's record timestamps

    def count_after(state: dict, record) -> None:  # the timer feeds; the agent forwards
        state["n"] = state.get("n", 0) + (record.timestamp >= back_at_ms)

    asyncio.run(fold_topic(own_broker.bootstrap, f"{worker.app_id}-out", lambda s: s.get("n", 0) >= 3,
                           "words processed after the outage", apply=count_after))
    worker.signal(signal.SIGTERM)
    assert_stopped_cleanly(worker)
    assert len(during) < 60, "\n".join(during[:80])
    assert any("more like" in line for line in during), "\n".join(during)
