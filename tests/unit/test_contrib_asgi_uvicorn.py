"""``detstream.contrib.asgi`` with a real uvicorn, both directions (skipped without uvicorn).

uvicorn is not a dependency of detstream; where it is installed these tests
serve over real sockets on a real event loop, with a ``sim://`` cluster on
that loop, and send HTTP requests with aiohttp.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import socket
from typing import Any

import aiohttp
import pytest

import detstream
from detstream.contrib.asgi import FaustLifespanMiddleware, serve_asgi
from detstream.worker import Worker
from sim.cluster import ClusterConfig, SimCluster
from sim.driver import current_cluster
from sim.trace import Trace

uvicorn = pytest.importorskip("uvicorn")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Greeter:
    """An app taking greetings from ``POST /greet``; ``received`` once one arrived."""

    def __init__(self, **settings: Any) -> None:
        self.app = detstream.App("uvicorn-greeter", broker="sim://", topic_partitions=1,
                                 **settings)
        self.greetings = self.app.topic("greetings", value_type=str, internal=True, partitions=1)
        self.seen: list[str] = []
        self.received = asyncio.Event()

        @self.app.agent(self.greetings)
        async def greet(stream: Any) -> None:
            async for greeting in stream:
                self.seen.append(greeting)
                self.received.set()

        async def api(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "lifespan":  # an application without lifespan support
                await send({"type": "lifespan.startup.failed", "message": "no lifespan here"})
                return
            body = (await receive())["body"]
            metadata = await (await self.greetings.send(value=body.decode()))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body",
                        "body": json.dumps({"offset": metadata.offset}).encode()})

        #: a plain ASGI function (uvicorn takes a bound method for ASGI 2).
        self.api = api


def run_with_cluster(main: Any) -> Any:
    async def with_cluster() -> Any:
        loop = asyncio.get_running_loop()
        cluster = SimCluster(Trace(loop.time), rng=random.Random(1),
                             config=ClusterConfig(initial_rebalance_delay=0.1))
        current_cluster.set(cluster)
        return await asyncio.wait_for(main(), 60)

    return asyncio.run(with_cluster())


async def post(port: int, text: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/greet", data=text.encode()) as answer:
            return answer.status, await answer.json(content_type=None)


async def until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.02)


def test_uvicorn_runs_the_app_from_the_middlewares_lifespan(tmp_path):
    port = free_port()

    async def main() -> tuple[Any, ...]:
        greeter = Greeter(web_enabled=False, datadir=str(tmp_path))
        asgi = FaustLifespanMiddleware(greeter.api, greeter.app)
        server = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, lifespan="on",
                                               log_config=None))
        serving = asyncio.ensure_future(server.serve())
        await until(lambda: server.started)
        state = greeter.app.state
        answer = await post(port, "hello")
        await greeter.received.wait()
        server.should_exit = True
        await serving
        return state, answer, greeter.seen, greeter.app.should_stop

    state, answer, seen, stopped = run_with_cluster(main)
    assert state == "running" and answer == (200, {"offset": 0})
    assert seen == ["hello"] and stopped


def test_serve_asgi_serves_a_plain_asgi_function_from_the_worker(tmp_path):
    port = free_port()

    async def main() -> tuple[Any, ...]:
        greeter = Greeter(web_enabled=True, web_bind="127.0.0.1", web_port=port,
                          datadir=str(tmp_path))
        serve_asgi(greeter.app, greeter.api, lifespan="off")
        worker = Worker(greeter.app, stdout=io.StringIO())
        running = asyncio.ensure_future(worker.start())
        await until(lambda: getattr(worker.app_web_server, "_server", None) is not None
                    and worker.app_web_server._server.started)
        answer = await post(port, "from the worker")
        await greeter.received.wait()
        worker.request_stop()
        await running
        return answer, greeter.seen, worker.exit_code

    answer, seen, code = run_with_cluster(main)
    assert answer == (200, {"offset": 0}) and seen == ["from the worker"] and code == 0
