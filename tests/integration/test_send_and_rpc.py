"""``detstream send`` and agent RPC (ask/map/join) against a real broker.

A project (``rpc_app.py``, configured from the environment) is written into
tmp_path; workers run as ``python -m detstream worker`` subprocesses, sends
as ``detstream send`` subprocesses, and RPC callers as a client-only script
(``app.start_client()``). What the agents received is read back from their
output topic with aiokafka. Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.integration.helpers import DEADLINE_S, PYTHON, WorkerProcess, fold_topic, now

PARTITIONS = 4

APP_SOURCE = '''
"""Agents to send to and to ask, configured from the environment."""
import os

import detstream


class Order(detstream.Record):
    id: int
    item: str


app = detstream.App(
    os.environ["IT_APP_ID"],
    broker=os.environ["DETSTREAM_IT_BROKER"],
    topic_partitions={partitions},
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
    web_enabled=False,  # several workers on one machine
)
feed = app.topic(os.environ["IT_FEED"], value_type=str)
results = app.topic(os.environ["IT_APP_ID"] + "-results", value_type=str, internal=True)


@app.agent(key_type=str, value_type=str, sink=[results])
async def greet(stream):
    async for event in stream.events():
        yield f"greet:{{event.key}}:{{event.value}}"


@app.agent(value_type=Order, sink=[results])
async def orders(stream):
    async for order in stream:
        yield f"order:{{order.id}}:{{order.item}}"


@app.agent(feed, sink=[results])
async def relay(stream):
    async for value in stream:
        yield f"feed:{{value}}"


@app.agent()
async def double(stream):
    async for value in stream:
        yield value * 2


@app.agent()
async def whoami(stream):
    async for value in stream:
        yield [value, os.getpid()]


@app.agent()
async def quadruple(stream):
    async for value in stream:
        yield await double.ask(await double.ask(value, timeout=30), timeout=30)


if __name__ == "__main__":
    app.main()
'''

CLIENT_SOURCE = '''
"""An RPC caller: a client-only app (no group, no agents) asking the workers."""
import asyncio
import json
import os

from rpc_app import app, double, quadruple, whoami


async def main():
    await app.start_client()
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        asked = await double.ask(21, timeout=60)
        first_ask = loop.time() - started
        keyed = [(f"key-{{i}}", i) for i in range(16)]
        started = loop.time()
        joined = await double.kvjoin(keyed, timeout=60)
        join_s = loop.time() - started
        mapped = sorted([v async for v in double.map(range(8), timeout=60)])
        owners = await whoami.kvjoin(keyed, timeout=60)
        nested = await quadruple.kvjoin([(f"q-{{i}}", i) for i in range(6)], timeout=60)
        promise = await double.ask_nowait(50)
        later = await asyncio.wait_for(promise, 60)
        try:
            await double.ask(1, timeout=0.001)
            timeout_message = None
        except asyncio.TimeoutError as exc:
            timeout_message = str(exc)
        print(json.dumps(dict(
            asked=asked, joined=joined, mapped=mapped, owners=owners, nested=nested,
            later=later, timeout=timeout_message, reply_to=app.conf.reply_to,
            assignment=len(app.conductor.assignment()), first_ask_s=first_ask, join_s=join_s,
        )), flush=True)
    finally:
        await app.stop()


asyncio.run(main())
'''


@pytest.fixture
def project(tmp_path: Path, kafka_bootstrap: str, new_topic):
    """(app_id, feed topic, spawn(args, name), run(args) -> CompletedProcess); kills leftovers."""
    feed = new_topic(partitions=2)
    (tmp_path / "rpc_app.py").write_text(APP_SOURCE.format(partitions=PARTITIONS))
    (tmp_path / "rpc_client.py").write_text(textwrap.dedent(CLIENT_SOURCE.format()))
    app_id = f"it-rpc-{secrets.token_hex(4)}"
    env = {**os.environ, "DETSTREAM_IT_BROKER": f"kafka://{kafka_bootstrap}", "IT_APP_ID": app_id,
           "IT_FEED": feed, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONHASHSEED", None)
    spawned: list[WorkerProcess] = []

    def spawn(args: list[str], name: str) -> WorkerProcess:
        proc = WorkerProcess(tmp_path, env, args, name)
        spawned.append(proc)
        return proc

    def run(args: list[str], timeout: float = DEADLINE_S) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PYTHON, *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)

    yield app_id, feed, spawn, run
    for proc in spawned:
        proc.kill()


def read_values(bootstrap: str, topic: str, done, what: str) -> list[str]:
    """Values of ``topic`` from the beginning, until ``done(values)``.

    The results topic is ``value_type=str``: its values are JSON strings.
    """
    return asyncio.run(fold_topic(
        bootstrap, topic, done, what, state=[], partitions=PARTITIONS,
        apply=lambda values, r: values.append(json.loads(r.value)),
    ))


def _stop(*workers: WorkerProcess) -> None:
    for worker in workers:
        worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.wait() == 0, worker.tail()
        assert "stopped cleanly" in worker.output()


# -- detstream send ------------------------------------------------------------------------------
def test_send_to_agents_and_topics_reaches_the_worker(kafka_bootstrap: str, project) -> None:
    app_id, feed, spawn, run = project
    worker = spawn(["-m", "detstream", "worker", "rpc_app", "-l", "info"], "worker")
    worker.wait_for("ready:")

    started = now()
    sent = run(["-m", "detstream", "-A", "rpc_app", "send", "@greet", "hello", "-k", "k1"])
    send_s = now() - started
    assert sent.returncode == 0, sent.stderr
    (meta,) = [json.loads(line) for line in sent.stdout.splitlines()]
    assert meta["topic"] == f"{app_id}-rpc_app.greet" and meta["offset"] >= 0

    sent = run(["rpc_app.py", "send", feed, "hi", "-r", "2"])  # App.main(), a plain topic
    assert sent.returncode == 0, sent.stderr
    assert [json.loads(line)["topic"] for line in sent.stdout.splitlines()] == [feed, feed]

    sent = run(["-m", "detstream", "-A", "rpc_app", "send", "@rpc_app.orders",
                '{"id": 7, "item": "book"}', "--partition", "3"])
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["partition"] == 3

    sent = run(["rpc_app.py", "send", feed, '"quoted"'])  # a str topic: the quotes are text
    assert sent.returncode == 0, sent.stderr
    assert "is sent as text, quotes included" in sent.stderr

    expected = ["greet:k1:hello", "feed:hi", "feed:hi", "order:7:book", 'feed:"quoted"']
    values = read_values(
        kafka_bootstrap, f"{app_id}-results",
        lambda got: sorted(got) == sorted(expected), "the agents' outputs",
    )
    assert sorted(values) == sorted(expected)

    missing = run(["-m", "detstream", "-A", "rpc_app", "send", f"{app_id}-no-such-topic", "x"])
    assert missing.returncode == 2
    assert f"topic '{app_id}-no-such-topic' does not exist" in missing.stderr
    assert "@rpc_app.greet" in missing.stderr
    bad = run(["-m", "detstream", "-A", "rpc_app", "send", "@rpc_app.orders", "book"])
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "value 'book' for agent @rpc_app.orders is not JSON for model" in bad.stderr
    assert "type a JSON object" in bad.stderr
    unknown = run(["-m", "detstream", "-A", "rpc_app", "send", "@nope", "x"])
    assert unknown.returncode == 2 and "no agent named 'nope'" in unknown.stderr
    _stop(worker)
    print(f"\n[timing] one `detstream send` process (import, connect, send): {send_s:.2f}s")


# -- RPC ------------------------------------------------------------------------------------------
def test_ask_map_join_from_a_client_across_two_workers(project) -> None:
    app_id, _, spawn, run = project
    first = spawn(["-m", "detstream", "worker", "rpc_app", "-l", "info"], "w1")
    first.wait_for("ready:")
    second = spawn(["-m", "detstream", "worker", "rpc_app", "-l", "info"], "w2")
    second.wait_for("ready:")

    started = now()
    client = run(["rpc_client.py"], timeout=120)
    client_s = now() - started
    assert client.returncode == 0, f"{client.stderr}\n{first.tail()}\n{second.tail()}"
    result = json.loads(client.stdout.strip().splitlines()[-1])
    assert result["asked"] == 42
    assert result["joined"] == [2 * i for i in range(16)]
    assert result["mapped"] == [2 * i for i in range(8)]
    assert result["nested"] == [4 * i for i in range(6)]  # agents asking agents, across workers
    assert result["later"] == 100
    assert "rpc_app.double" in result["timeout"] and "correlation id" in result["timeout"]
    assert result["reply_to"].startswith("f-reply-")
    assert result["assignment"] == 0  # client-only: never a group member
    answered_by = {pid for _, pid in result["owners"]}
    assert answered_by == {first.proc.pid, second.proc.pid}, "both workers answer asks"
    _stop(first, second)
    print(f"\n[timing] client process {client_s:.2f}s: first ask {result['first_ask_s']:.2f}s "
          f"(reply topic + consumer), 16-ask join {result['join_s']:.3f}s")
