"""Faust's own examples as `detstream worker --faust-compat` processes on a real broker.

Four of faust-streaming's examples, unmodified (fetched and cached by
``tests/faust_examples/sdist.py``), each in a way that shows it working:

- ``hello_world.py``: its timer sends greetings to its agent, which prints them;
- ``word_count.py`` on two workers: both send the words from their task, and
  ``GET /count/<word>/`` (``@app.table_route``) gives one and the same count
  from either worker: the worker not holding the word proxies the request;
- ``withdrawals.py``: its own ``produce`` command (``@app.command`` with
  ``faust.cli.option``) feeds it; the hour-window totals per user in the
  changelog add up to the withdrawals in the topic;
- ``advanced/isolated_partitions_crashing.py``: the same, counting per user
  with one actor per partition.

The examples name their topics and app ids themselves, so each test first
deletes what an earlier run left on the broker (their topics and internal
topics). ``BROKER_URL`` points them at the test broker, ``--datadir`` keeps
their RocksDB tables in the test's directory, and each worker has its own web
port.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from tests.faust_examples.sdist import faust_examples
from tests.integration.helpers import WorkerProcess, fold_topic, now

DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def examples_root() -> Path:
    return faust_examples().parent


@pytest.fixture
def run(examples_root: Path, kafka_bootstrap: str, tmp_path: Path):
    """Factory: ``run(name, *args)`` starts ``python -m detstream *args`` in the sdist's directory."""
    spawned: list[WorkerProcess] = []
    env = {**os.environ, "BROKER_URL": f"kafka://{kafka_bootstrap}", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("PYTHONHASHSEED", None)

    def start(name: str, *args: str) -> WorkerProcess:
        process = WorkerProcess(examples_root, env, ["-m", "detstream", *args], name,
                                timeout=DEADLINE_S)
        spawned.append(process)
        return process

    def worker(name: str, example: str, port: int | None = None) -> WorkerProcess:
        return start(name, "worker", f"examples/{example}.py", "--faust-compat", "-l", "info",
                     "--datadir", str(tmp_path / name), "--web-port", str(port or _free_port()))

    start.worker = worker  # type: ignore[attr-defined]
    yield start
    for process in spawned:
        process.kill()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _forget(bootstrap: str, exact: set[str], prefix: str) -> None:
    """Delete the example's topics and internal topics (``prefix``*) left by an earlier run."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t in exact or t.startswith(prefix)]
        if not doomed:
            return
        await admin.delete_topics(doomed)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while set(doomed) & set(await admin.list_topics()):
            assert loop.time() < deadline, f"topics {doomed} still there after 60s"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def _stop(*processes: WorkerProcess) -> None:
    for process in processes:
        process.signal(signal.SIGTERM)
    for process in processes:
        assert process.wait() == 0, process.tail()
        assert "Traceback" not in process.log(), process.tail()


def test_hello_world_timer_sends_and_agent_prints(kafka_bootstrap: str, run) -> None:
    asyncio.run(_forget(kafka_bootstrap, {"greetings"}, "hello-world-"))
    worker = run.worker("hello", "hello_world")
    worker.wait_for("ready:")
    worker.wait_for("hello 99\n")  # the timer's first round, printed by the agent
    assert "hello 0\n" in worker.output()
    _stop(worker)


def test_word_count_table_route_answers_from_either_worker(kafka_bootstrap: str, run) -> None:
    asyncio.run(_forget(kafka_bootstrap, {"posts"}, "word-counts-"))
    ports = _free_port(), _free_port()
    first = run.worker("w1", "word_count", ports[0])
    first.wait_for("ready:")
    second = run.worker("w2", "word_count", ports[1])
    second.wait_for("ready:")
    words = ["the", "quick", "brown", "fox"]
    deadline = now() + DEADLINE_S
    answers: dict[str, tuple[object, object]] = {}
    while now() < deadline:  # both senders done (1000 per word each) and both workers agree
        answers = {w: tuple(p.get(f"http://127.0.0.1:{port}/count/{w}/")[2]
                            for p, port in ((first, ports[0]), (second, ports[1])))
                   for w in words}
        if all(a == b and a[w] >= 2000 for w, (a, b) in answers.items()):  # type: ignore[index]
            break
    else:
        pytest.fail(f"the workers never agreed on counts >= 2000: {answers}")
    printed = first.output() + second.output()
    assert "TALLY" in printed  # the example's own prints (its task, on_rebalance_complete)
    _stop(first, second)


def _totals_by_user(state: dict, record) -> None:
    """Fold a windowed changelog (keys ``[user, [start, end]]``) into totals per user."""
    windows = state.setdefault("windows", {})
    if record.value is None:
        windows.pop(record.key, None)
    else:
        windows[record.key] = (json.loads(record.key)[0], json.loads(record.value))
    totals: dict[str, float] = {}
    for user, value in windows.values():
        totals[user] = totals.get(user, 0.0) + value
    state["totals"] = totals


def _withdrawals_in(state: dict, record) -> None:
    """Fold the withdrawals topic: amount and number of withdrawals per user."""
    withdrawal = json.loads(record.value)
    user = withdrawal["user"]
    totals, counts = state.setdefault("totals", {}), state.setdefault("counts", {})
    totals[user] = totals.get(user, 0.0) + withdrawal["amount"]
    counts[user] = counts.get(user, 0) + 1
    state["count"] = state.get("count", 0) + 1


def _close(a: dict[str, float], b: dict[str, float]) -> bool:
    return set(a) == set(b) and all(abs(a[k] - b[k]) <= 1e-6 * max(1.0, abs(b[k])) for k in a)


def test_withdrawals_fed_by_its_own_produce_command(kafka_bootstrap: str, run) -> None:
    asyncio.run(_forget(kafka_bootstrap, {"withdrawals"}, "faust-withdrawals-v5-"))
    worker = run.worker("withdrawals", "withdrawals")
    worker.wait_for("ready:")
    produce = run("produce", "--faust-compat", "-A", "examples/withdrawals.py", "produce",
                  "--max-messages", "300", "--max-latency", "0")
    assert produce.wait() == 0, produce.tail()
    assert "+SEND 0" in produce.output()
    sent = asyncio.run(fold_topic(kafka_bootstrap, "withdrawals", lambda s: s.get("count") == 300,
                                  "300 withdrawals in the topic", state={}, apply=_withdrawals_in))
    asyncio.run(fold_topic(
        kafka_bootstrap, "faust-withdrawals-v5-user_to_total-changelog",
        lambda s: _close(s.get("totals", {}), sent["totals"]),
        "hour-window totals per user == the withdrawals sent", state={}, apply=_totals_by_user,
        timeout=DEADLINE_S,
    ))
    _stop(worker)


def _counts_in(state: dict, record) -> None:
    if record.value is None:
        state.pop(json.loads(record.key), None)
    else:
        state[json.loads(record.key)] = json.loads(record.value)


def test_isolated_partitions_count_every_withdrawal(kafka_bootstrap: str, run) -> None:
    asyncio.run(_forget(kafka_bootstrap, {"withdrawals129", "withdrawalz129"}, "faust-withdrawals29-"))
    worker = run.worker("isolated", "advanced/isolated_partitions_crashing")
    worker.wait_for("ready:")
    produce = run("produce", "--faust-compat", "-A", "examples/advanced/isolated_partitions_crashing.py",
                  "produce", "--max-messages", "200", "--max-latency", "0")
    assert produce.wait() == 0, produce.tail()
    sent = asyncio.run(fold_topic(kafka_bootstrap, "withdrawals129", lambda s: s.get("count") == 200,
                                  "200 withdrawals in the topic", state={}, apply=_withdrawals_in))
    asyncio.run(fold_topic(kafka_bootstrap, "faust-withdrawals29-withdrawal-counts-changelog",
                           lambda s: s == sent["counts"], "withdrawal counts == withdrawals per user",
                           state={}, apply=_counts_in, timeout=DEADLINE_S))
    worker.wait_for("Progressing: was 0 now 200")  # the example's task, every 5 s
    _stop(worker)
