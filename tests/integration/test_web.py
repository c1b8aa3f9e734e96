"""The worker's web server over real HTTP: aiohttp in front of ``app.web``.

``test_worker_serves_pages_on_the_real_broker`` runs a ``detstream worker``
process against the broker and reads its pages and built-in endpoints; the
other tests need no broker (the web server starts before the App connects).
Every wait polls with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import detstream
from detstream import web
from detstream.web.server import WebServer, WebServerError

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable
DEADLINE_S = 60.0

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


def _now() -> float:
    return time.monotonic()  # noqa: TID251 - the test harness waits on real processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class Worker:
    """A ``detstream worker`` subprocess with its output in files."""

    def __init__(self, cwd: Path, env: dict[str, str], args: list[str]) -> None:
        self.out, self.err = cwd / "w.out", cwd / "w.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([PYTHON, "-m", "detstream", "worker", *args], cwd=cwd,
                                         env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)

    def tail(self) -> str:
        log = "\n".join(self.err.read_text(errors="replace").splitlines()[-30:])
        return f"--- stdout ---\n{self.out.read_text(errors='replace')}--- stderr ---\n{log}"

    def wait_for(self, text: str, timeout: float = DEADLINE_S) -> None:
        deadline = _now() + timeout
        while text not in self.out.read_text(errors="replace"):
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}\n{self.tail()}"
            assert _now() < deadline, f"no {text!r} in {timeout}s\n{self.tail()}"
            time.sleep(0.05)

    def get(self, url: str, until=lambda status, body: True, timeout: float = DEADLINE_S):
        """GET ``url`` until it answers and ``until(status, json)`` holds (bounded)."""
        deadline = _now() + timeout
        last: object = None
        while True:
            assert self.proc.poll() is None, f"worker exited {self.proc.returncode}\n{self.tail()}"
            try:
                status, headers, body = http("GET", url)
                last = (status, body)
                if until(status, json.loads(body)):
                    return status, headers, json.loads(body)
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            assert _now() < deadline, f"GET {url}: last answer {last!r}\n{self.tail()}"
            time.sleep(0.05)

    def wait(self, timeout: float = DEADLINE_S) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker did not exit within {timeout}s\n{self.tail()}")


@pytest.fixture
def spawn(tmp_path: Path):
    """spawn(broker, words, *args) -> Worker running APP_SOURCE; kills leftovers."""
    spawned: list[Worker] = []
    (tmp_path / "web_app.py").write_text(textwrap.dedent(APP_SOURCE))

    def make(broker: str, words: str, *args: str) -> Worker:
        env = {**os.environ, "DETSTREAM_IT_BROKER": broker, "IT_WORDS": words,
               "IT_APP_ID": f"it-web-{secrets.token_hex(4)}", "PYTHONUNBUFFERED": "1"}
        env.pop("PYTHONHASHSEED", None)
        worker = Worker(tmp_path, env, ["web_app.py", *args])
        spawned.append(worker)
        return worker

    yield make
    for worker in spawned:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


async def produce(bootstrap: str, topic: str, words: list[str]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, w.encode(), key=w.encode())
                               for w in words])
    finally:
        await producer.stop()


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

    asyncio.run(produce(kafka_bootstrap, words, ["a", "b", "a", "c", "a"]))
    _, _, table = worker.get(f"{base}/table/counts/",
                             until=lambda s, b: b == {"a": 3, "b": 1, "c": 1})
    assert worker.get(f"{base}/count/a/")[2] == {"a": 3}
    assert worker.get(f"{base}/table/counts/a/")[2] == {"a": 3}
    assert worker.get(f"{base}/table/counts/zzz/")[0] == 404
    assert worker.get(f"{base}/table/nope/")[0] == 404
    crashed = worker.get(f"{base}/boom/")
    assert crashed[0] == 500 and crashed[2]["type"] == "RuntimeError"
    assert worker.get(f"{base}/hello/")[2]["hello"] == "world"  # still serving after a 500
    assert "view 'boom' raised on GET /boom/" in worker.err.read_text()

    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.tail()
    assert "stopped cleanly" in worker.out.read_text()
    assert refused(port)


# -- no broker needed --------------------------------------------------------------------------------
def test_port_in_use_exits_1_naming_the_port_and_the_option(spawn) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        worker = spawn(f"kafka://127.0.0.1:{free_port()}", "words", "-b", "127.0.0.1",
                       "-p", str(port))
        assert worker.wait(30) == 1, worker.tail()
    output = worker.out.read_text() + worker.err.read_text()
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
