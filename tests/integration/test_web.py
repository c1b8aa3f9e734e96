"""The worker's web server over real HTTP: aiohttp in front of ``app.web``.

``test_worker_serves_pages_on_the_real_broker`` runs a ``detstream worker``
process against the broker and reads its pages and built-in endpoints, and
``test_worker_serves_probes_and_metrics_that_move_on_the_real_broker`` its
``/health/``, ``/ready/`` and ``/metrics`` (each scrape parsed as Prometheus'
text format) before and after records arrive; the other tests need no broker (the web server starts before the App connects).
Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import textwrap
import time
from pathlib import Path

import pytest

import detstream
from detstream import web
from detstream.web.exposition import CONTENT_TYPE
from detstream.web.server import WebServer, WebServerError
from tests.integration.helpers import WorkerProcess, http, now, produce
from tests.unit.test_metrics import parse

APP_SOURCE = '''
import os

import detstream
from detstream import web

app = detstream.App(
    os.environ["IT_APP_ID"],
    broker=os.environ["DETSTREAM_IT_BROKER"],
    topic_partitions=2,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
)
words = app.topic(os.environ["IT_WORDS"], value_type=str)
counts = app.Table("counts", default=int, key_type=str, value_type=int)


@app.agent(words)
async def count(stream):
    async for word in stream.group_by(lambda w: w, name="by-word"):
        counts[word] += 1


@app.page("/hello/")
async def hello(web, request):
    return web.json({"hello": request.query.get("name", "world"), "app": web.app.conf.id})


@app.page("/count/{word}/")
class Count(web.View):
    async def get(self, request, word):
        return self.json({word: counts[word]})


@app.page("/boom/")
async def boom(web, request):
    raise RuntimeError("boom")


if __name__ == "__main__":
    app.main()
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def spawn(tmp_path: Path):
    """spawn(broker, words, *args) -> WorkerProcess running APP_SOURCE; kills leftovers."""
    spawned: list[WorkerProcess] = []
    (tmp_path / "web_app.py").write_text(textwrap.dedent(APP_SOURCE))

    def make(broker: str, words: str, *args: str) -> WorkerProcess:
        env = {**os.environ, "DETSTREAM_IT_BROKER": broker, "IT_WORDS": words,
               "IT_APP_ID": f"it-web-{secrets.token_hex(4)}", "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONHASHSEED", None)
        worker = WorkerProcess(tmp_path, env, ["-m", "detstream", "worker", "web_app.py", *args], "w")
        spawned.append(worker)
        return worker

    yield make
    for worker in spawned:
        worker.kill()


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


# -- a worker process on the real broker --------------------------------------------------------
def test_worker_serves_pages_on_the_real_broker(kafka_bootstrap: str, new_topic, spawn) -> None:
    words = new_topic(partitions=2)
    port = free_port()
    worker = spawn(f"kafka://{kafka_bootstrap}", words, "-l", "info", "-b", "127.0.0.1",
                   "-p", str(port))
    worker.wait_for(f"web        http://localhost:{port}/ (listening on 127.0.0.1)")
    base = f"http://127.0.0.1:{port}"

    status, headers, body = worker.get(f"{base}/hello/?name=kafka")
    assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
    assert body["hello"] == "kafka" and body["app"].startswith("it-web-")
    worker.wait_for("ready:")
    _, _, index = worker.get(f"{base}/", until=lambda s, b: b["status"] == "running")
    assert index["app"] == body["app"] and index["leader"] is True and index["partitions"] > 0
    _, _, assignment = worker.get(f"{base}/assignment/")
    assert assignment["actives"][words] == [0, 1]

    asyncio.run(produce(kafka_bootstrap, words, ["a", "b", "a", "c", "a"], keyed=True))
    _, _, table = worker.get(f"{base}/table/counts/",
                             until=lambda s, b: b == {"a": 3, "b": 1, "c": 1})
    assert worker.get(f"{base}/count/a/")[2] == {"a": 3}
    assert worker.get(f"{base}/table/counts/a/")[2] == {"a": 3}
    assert worker.get(f"{base}/table/counts/zzz/")[0] == 404
    assert worker.get(f"{base}/table/nope/")[0] == 404
    crashed = worker.get(f"{base}/boom/")
    assert crashed[0] == 500 and crashed[2]["type"] == "RuntimeError"
    assert worker.get(f"{base}/hello/")[2]["hello"] == "world"  # still serving after a 500
    assert "view 'boom' raised on GET /boom/" in worker.log()

    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.tail()
    assert "stopped cleanly" in worker.output()
    assert refused(port)


def scrape(worker: WorkerProcess, url: str, until, timeout: float = 60.0) -> dict:
    """GET ``/metrics`` until ``until(samples)`` holds; every scrape must parse as the format."""
    deadline = now() + timeout
    samples: dict = {}
    while True:
        assert worker.proc.poll() is None, worker.tail()
        status, headers, body = http("GET", url)
        assert status == 200 and headers["Content-Type"] == CONTENT_TYPE, (status, headers)
        samples = parse(body.decode("utf-8"))
        if until(samples):
            return samples
        assert now() < deadline, f"/metrics never got there; last:\n{body.decode()}\n{worker.tail()}"
        time.sleep(0.1)


def test_worker_serves_probes_and_metrics_that_move_on_the_real_broker(
    kafka_bootstrap: str, new_topic, spawn
) -> None:
    words = new_topic(partitions=2)
    port = free_port()
    worker = spawn(f"kafka://{kafka_bootstrap}", words, "-l", "info", "-b", "127.0.0.1",
                   "-p", str(port))
    base = f"http://127.0.0.1:{port}"
    worker.wait_for(f"web        http://localhost:{port}/ (listening on 127.0.0.1)")
    assert worker.get(f"{base}/health/")[0] == 200
    status, _, ready = worker.get(f"{base}/ready/", until=lambda s, b: s == 200)
    assert ready["status"] == "ready" and ready["partitions"] > 0

    agent = "web_app.count"
    repartition = f"{agent}-{words}-by-word-repartition"
    before = scrape(worker, f"{base}/metrics", lambda m: m["detstream_app_ready"] == {(): 1.0})
    assert before["detstream_app_crashed"] == {(): 0.0}
    assert before["detstream_rebalances_total"][()] >= 1
    assert before["detstream_assigned_topic_partitions"][(("topic", words),)] == 2
    assert set(before["detstream_agent_events_total"].values()) == {0.0}

    asyncio.run(produce(kafka_bootstrap, words, ["a", "b", "a", "c", "a"], keyed=True))

    def moved(m: dict) -> bool:
        events = m.get("detstream_agent_events_total", {})
        return (events.get((("agent", agent), ("topic", repartition))) == 5
                and m["detstream_commit_latency_seconds_count"][()] >= 1
                and sum(m.get("detstream_consumer_committed_offset", {}).values()) >= 10)

    after = scrape(worker, f"{base}/metrics", moved)
    received = after["detstream_messages_received_total"]
    assert sum(v for labels, v in received.items() if ("topic", words) in labels) == 5
    assert after["detstream_agent_events_total"][(("agent", agent), ("topic", words))] == 5
    assert after["detstream_messages_sent_total"][(("topic", repartition),)] == 5
    assert after["detstream_consumer_lag"] and set(after["detstream_consumer_lag"].values()) == {0.0}
    positions = after["detstream_consumer_position"]
    assert sum(v for labels, v in positions.items() if ("topic", words) in labels) == 5
    buckets = after["detstream_commit_latency_seconds_bucket"]
    assert buckets[(("le", "+Inf"),)] == after["detstream_commit_latency_seconds_count"][()]
    assert after["detstream_commit_failures_total"] == {(): 0.0}
    status, headers, _ = http("HEAD", f"{base}/metrics")
    assert status == 200 and headers["Content-Type"] == CONTENT_TYPE
    assert http("POST", f"{base}/ready/")[0] == 405

    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.tail()


# -- no broker needed --------------------------------------------------------------------------------
def test_port_in_use_exits_1_naming_the_port_and_the_option(spawn) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = spawn(f"kafka://127.0.0.1:{free_port()}", "words", "-b", "127.0.0.1",
                       "-p", str(port))
        assert worker.wait(30) == 1, worker.tail()
    output = worker.output() + worker.log()
    assert f"port {port} is already in use" in output
    assert "--web-port" in output and "--without-web" in output
    assert "Traceback" not in output


def test_without_web_serves_nothing(spawn) -> None:
    port = free_port()
    worker = spawn(f"kafka://127.0.0.1:{free_port()}", "words", "--without-web", "-p", str(port))
    worker.wait_for("web        disabled")
    assert refused(port)
    worker.proc.send_signal(signal.SIGTERM)  # still waiting for its (absent) broker
    assert worker.wait(30) == 0, worker.tail()


def test_web_server_over_http_matches_the_in_process_client() -> None:
    app = detstream.App("it-web-server", broker="kafka://127.0.0.1:1")

    @app.page("/echo/{key}/")
    class Echo(web.View):
        async def get(self, request, key):
            return self.json({"key": key, "q": request.query.getall("q", [])})

        async def post(self, request, key):
            return self.json({"key": key, "body": await request.json()}, status=201)

    async def main() -> None:
        import aiohttp

        server = WebServer(app, bind="127.0.0.1", port=0)
        await server.start()
        assert server.port != 0
        base = f"http://127.0.0.1:{server.port}"
        client = app.web.client()
        try:
            async with aiohttp.ClientSession() as session:
                for method, path, kwargs in [
                    ("GET", "/echo/a%2Fb/?q=1%262&q=x", {}),
                    ("POST", "/echo/k/", {"json": {"n": 1}}),
                    ("POST", "/echo/k/", {"data": b"{bad"}),
                    ("DELETE", "/echo/k/", {}),
                    ("GET", "/echo", {}),
                    ("GET", "/", {}),
                    ("GET", "/table/none/", {}),
                ]:
                    async with session.request(method, base + path, **kwargs) as response:
                        over_http = (response.status, await response.json())
                    local = await client.request(method, path, **kwargs)
                    assert over_http == (local.status, local.json()), (method, path)
                async with session.head(base + "/echo/x/") as response:
                    assert response.status == 200
                port = server.port
                second = WebServer(app, bind="127.0.0.1", port=port)
                with pytest.raises(WebServerError, match=f"port {port} is already in use"):
                    await second.start()
        finally:
            await server.stop()
        assert refused(server.port)

    asyncio.run(main())
