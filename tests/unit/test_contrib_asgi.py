"""``detstream.contrib.asgi``: an App co-hosted with an ASGI application on one event loop.

No web framework and no ASGI server here: the server's side of the ASGI
protocol (lifespan messages, an HTTP request) is driven by hand, on the
simulator's virtual loop, against a sim:// cluster.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from mode import Service

import detstream
from detstream.contrib.asgi import (
    AppNotRunnable,
    AsgiService,
    FaustLifespanMiddleware,
    LoopMismatch,
    bind_to_running_loop,
    faust_app_running,
    faust_lifespan,
    serve_asgi,
)
from detstream.errors import AutodiscoverError, ImproperlyConfigured, InvalidArgument
from detstream.worker import Worker
from sim.cluster import ClusterConfig
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)
LIFESPAN_SCOPE = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}


class Greeter:
    """An app whose agent takes greetings; ``received`` is set once ``expected`` arrived."""

    def __init__(self, app_id: str = "asgi-greeter", expected: int = 0, **settings: Any) -> None:
        settings = {"broker": "sim://", "web_enabled": False, "topic_partitions": 2, **settings}
        self.app = detstream.App(app_id, **settings)
        self.greetings = self.app.topic("greetings", value_type=str, internal=True, partitions=2)
        self.seen: list[str] = []
        self.expected = expected
        self.received = asyncio.Event()

        @self.app.agent(self.greetings)
        async def greet(stream: Any) -> None:
            async for greeting in stream:
                self.seen.append(greeting)
                if len(self.seen) >= self.expected:
                    self.received.set()

    def endpoint(self) -> Any:
        """The web application: ``POST /greet`` sends its body to the topic, answers the offset."""

        async def api(scope: dict[str, Any], receive: Any, send: Any) -> None:
            assert scope["type"] == "http", f"the endpoint got a {scope['type']} scope"
            body = (await receive())["body"]
            sent = await self.greetings.send(key=body, value=body.decode())
            metadata = await sent  # acknowledged by the broker (Faust's FutureMessage)
            answer = json.dumps({"partition": metadata.partition, "offset": metadata.offset})
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": answer.encode()})

        return api


class LifespanServer:
    """The ASGI server's side of one lifespan scope, by hand."""

    def __init__(self, asgi_app: Any) -> None:
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task = asyncio.ensure_future(
            asgi_app(dict(LIFESPAN_SCOPE), self.to_app.get, self.from_app.put)
        )

    async def tell(self, kind: str) -> dict[str, Any]:
        """Send a lifespan message; the application's answer."""
        await self.to_app.put({"type": kind})
        return await asyncio.wait_for(self.from_app.get(), 120)

    async def startup(self) -> dict[str, Any]:
        return await self.tell("lifespan.startup")

    async def shutdown(self) -> dict[str, Any]:
        return await self.tell("lifespan.shutdown")


async def post(asgi_app: Any, path: str, body: bytes) -> tuple[int, Any]:
    """One HTTP request through ``asgi_app``: its status and JSON answer."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [], "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asgi_app(scope, receive, send)
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))


class TinyFramework:
    """What a framework does with ``lifespan=`` (Starlette's and FastAPI's way), by hand:
    the handler is called with the application and entered as an async context manager."""

    def __init__(self, endpoint: Any, lifespan: Any) -> None:
        self.endpoint = endpoint
        self.lifespan = lifespan

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.endpoint(scope, receive, send)
            return
        assert (await receive())["type"] == "lifespan.startup"
        context = self.lifespan(self)
        try:
            await context.__aenter__()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        await context.__aexit__(None, None, None)
        await send({"type": "lifespan.shutdown.complete"})


def other_tasks() -> list[str]:
    """The tasks left running beside the test's own (an app stopped cleanly leaves none)."""
    current = asyncio.current_task()
    return [repr(t) for t in asyncio.all_tasks() if t is not current and not t.done()]


# -- the ASGI server drives: the lifespan starts and stops the App -----------------------------

def test_an_endpoint_sends_while_the_middleware_runs_the_app_and_shutdown_stops_it_cleanly():
    async def main(cluster: Any) -> dict[str, Any]:
        facts: dict[str, Any] = {"tasks_before": other_tasks()}
        greeter = Greeter(expected=6)
        asgi = FaustLifespanMiddleware(greeter.endpoint(), greeter.app)
        server = LifespanServer(asgi)
        facts["startup"] = await server.startup()
        facts["state_after_startup"] = greeter.app.state
        facts["answers"] = [await post(asgi, "/greet", f"hello {i}".encode()) for i in range(6)]
        await asyncio.wait_for(greeter.received.wait(), 60)
        facts["shutdown"] = await server.shutdown()
        await asyncio.wait_for(server.task, 1)  # the lifespan call returned
        facts["seen"] = sorted(greeter.seen)
        facts["stopped"] = greeter.app.should_stop
        facts["committed"] = sum(cluster.group("asgi-greeter").committed.values())
        facts["tasks_after"] = other_tasks()
        return facts

    facts = simulate(main, seed=3, config=FAST)
    assert facts["startup"] == {"type": "lifespan.startup.complete"}
    assert facts["state_after_startup"] == "running"
    assert [status for status, _ in facts["answers"]] == [200] * 6
    assert facts["seen"] == [f"hello {i}" for i in range(6)]
    assert facts["shutdown"] == {"type": "lifespan.shutdown.complete"}
    assert facts["stopped"] is True
    assert facts["committed"] == 6  # the graceful stop committed every greeting processed
    assert facts["tasks_after"] == facts["tasks_before"]  # nothing of the app left running


def test_faust_lifespan_in_a_frameworks_lifespan_hook():
    async def main(cluster: Any) -> tuple[Any, ...]:
        greeter = Greeter(expected=2)
        api = TinyFramework(greeter.endpoint(), faust_lifespan(greeter.app))
        server = LifespanServer(api)
        startup = await server.startup()
        answers = [await post(api, "/greet", b"a"), await post(api, "/greet", b"b")]
        await asyncio.wait_for(greeter.received.wait(), 60)
        shutdown = await server.shutdown()
        return startup, answers, sorted(greeter.seen), shutdown, greeter.app.should_stop

    startup, answers, seen, shutdown, stopped = simulate(main, seed=1, config=FAST)
    assert startup == {"type": "lifespan.startup.complete"}
    assert [status for status, _ in answers] == [200, 200]
    assert seen == ["a", "b"] and stopped
    assert shutdown == {"type": "lifespan.shutdown.complete"}


def test_faust_app_running_composes_with_a_lifespan_of_ones_own():
    """Faust's fastapi_example.py: the app runs around the user's own setup and teardown."""
    events: list[str] = []

    async def main(cluster: Any) -> None:
        greeter = Greeter(expected=1)

        @asynccontextmanager
        async def lifespan(api: Any) -> AsyncIterator[None]:
            async with faust_app_running(greeter.app) as running:
                assert running is greeter.app
                events.append(f"setup, app {greeter.app.state}")
                yield
                events.append(f"teardown, app {greeter.app.state}")
            events.append(f"after, app stopped: {greeter.app.should_stop}")

        api = TinyFramework(greeter.endpoint(), lifespan)
        server = LifespanServer(api)
        await server.startup()
        await post(api, "/greet", b"hi")
        await asyncio.wait_for(greeter.received.wait(), 60)
        await server.shutdown()

    simulate(main, seed=2, config=FAST)
    assert events == ["setup, app running", "teardown, app running", "after, app stopped: True"]


def test_an_app_already_running_on_the_loop_is_used_and_left_running():
    async def main(cluster: Any) -> tuple[Any, ...]:
        greeter = Greeter()
        await greeter.app.start()  # a worker's, or an outer lifespan's
        server = LifespanServer(FaustLifespanMiddleware(greeter.endpoint(), greeter.app))
        answers = await server.startup(), await server.shutdown()
        still_running = greeter.app.state
        await greeter.app.stop()
        return answers, still_running

    answers, still_running = simulate(main, seed=1, config=FAST)
    assert answers == ({"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"})
    assert still_running == "running"


# -- bad use: lifespan.startup.failed (or shutdown.failed), with the reason ---------------------

def test_a_failed_startup_answers_startup_failed_and_stops_what_started():
    async def main(cluster: Any) -> tuple[Any, ...]:
        greeter = Greeter()

        @greeter.app.service
        class Database(Service):
            async def on_start(self) -> None:
                raise RuntimeError("the database is unreachable")

        tasks_before = other_tasks()
        server = LifespanServer(FaustLifespanMiddleware(greeter.endpoint(), greeter.app))
        answer = await server.startup()
        await asyncio.wait_for(server.task, 120)  # the lifespan is over: no shutdown follows
        return answer, greeter.app.should_stop, server.from_app.empty(), tasks_before, other_tasks()

    answer, stopped, nothing_more, tasks_before, tasks_after = simulate(main, seed=1, config=FAST)
    assert answer == {"type": "lifespan.startup.failed",
                      "message": "RuntimeError: the database is unreachable"}
    assert stopped and nothing_more
    assert tasks_after == tasks_before  # the half-started app was stopped


def test_a_bad_broker_url_fails_the_startup_naming_it():
    async def main(cluster: Any) -> dict[str, Any]:
        greeter = Greeter(broker="nosuch://localhost")
        server = LifespanServer(FaustLifespanMiddleware(greeter.endpoint(), greeter.app))
        return await server.startup()

    answer = simulate(main, seed=1)
    assert answer["type"] == "lifespan.startup.failed"
    assert "nosuch" in answer["message"]


@pytest.mark.parametrize(("first", "expected"), [
    ("lifespan.shutdown", "expected a 'lifespan.startup' message, got 'lifespan.shutdown'"),
    ("http.request", "expected a 'lifespan.startup' message, got 'http.request'"),
])
def test_lifespan_messages_out_of_order_fail_the_startup(first, expected):
    async def main(cluster: Any) -> tuple[Any, ...]:
        greeter = Greeter()
        server = LifespanServer(FaustLifespanMiddleware(greeter.endpoint(), greeter.app))
        answer = await server.tell(first)
        await asyncio.wait_for(server.task, 1)
        return answer, greeter.app.state

    answer, state = simulate(main, seed=1)
    assert answer["type"] == "lifespan.startup.failed"
    assert expected in answer["message"] and "out of order" in answer["message"]
    assert state == "init"  # never started


def test_a_message_out_of_order_at_shutdown_fails_it_after_stopping_the_app():
    async def main(cluster: Any) -> tuple[Any, ...]:
        greeter = Greeter()
        server = LifespanServer(FaustLifespanMiddleware(greeter.endpoint(), greeter.app))
        answers = [await server.startup(), await server.tell("lifespan.startup")]
        return answers, greeter.app.should_stop

    answers, stopped = simulate(main, seed=1, config=FAST)
    assert answers[0] == {"type": "lifespan.startup.complete"}
    assert answers[1]["type"] == "lifespan.shutdown.failed"
    assert "expected a 'lifespan.shutdown' message, got 'lifespan.startup'" in answers[1]["message"]
    assert stopped


def test_an_app_stopped_before_cannot_be_run_again():
    async def main(cluster: Any) -> dict[str, Any]:
        greeter = Greeter()
        async with faust_app_running(greeter.app):
            pass
        server = LifespanServer(FaustLifespanMiddleware(greeter.endpoint(), greeter.app))
        return await server.startup()

    answer = simulate(main, seed=1, config=FAST)
    assert answer["type"] == "lifespan.startup.failed"
    assert answer["message"].startswith("AppNotRunnable: App 'asgi-greeter' was stopped")
    assert "make a new App" in answer["message"]


def test_an_app_running_as_a_client_only_is_refused():
    async def main(cluster: Any) -> None:
        greeter = Greeter()
        await greeter.app.start_client()
        try:
            with pytest.raises(AppNotRunnable, match="as a client only.*agents"):
                async with faust_app_running(greeter.app):
                    pass  # pragma: no cover
        finally:
            await greeter.app.stop()

    simulate(main, seed=1)


def test_an_app_bound_to_another_loop_is_refused_naming_why():
    async def main(cluster: Any) -> dict[str, Any]:
        greeter = Greeter()
        greeter.app.loop = object()  # as if started, or its loop read, elsewhere
        with pytest.raises(LoopMismatch, match="another event loop.*App\\(loop=...\\)"):
            bind_to_running_loop(greeter.app)
        server = LifespanServer(FaustLifespanMiddleware(greeter.endpoint(), greeter.app))
        return await server.startup()

    answer = simulate(main, seed=1)
    assert answer["type"] == "lifespan.startup.failed"
    assert answer["message"].startswith("LoopMismatch: App 'asgi-greeter' is bound to another")


def test_bind_to_running_loop_binds_an_unbound_app_and_needs_a_running_loop():
    app = detstream.App("unbound", broker="sim://", web_enabled=False)
    with pytest.raises(RuntimeError, match="no event loop is running"):
        bind_to_running_loop(app)
    assert app._loop is None  # nothing bound by the failed call

    async def main(cluster: Any) -> bool:
        loop = bind_to_running_loop(app)
        return loop is asyncio.get_running_loop() and app._loop is loop and (
            bind_to_running_loop(app) is loop)

    assert simulate(main, seed=1)


def test_options_are_checked_when_the_lifespan_is_made():
    app = detstream.App("options", broker="sim://", web_enabled=False)
    with pytest.raises(InvalidArgument, match="'stop_timout'.*finalize, discover, stop_timeout"):
        faust_lifespan(app, stop_timout=5)
    with pytest.raises(InvalidArgument, match="FaustLifespanMiddleware: unknown option"):
        FaustLifespanMiddleware(object(), app, finalise=True)
    assert callable(faust_lifespan(app, opentelemetry=False, stop_timeout=5))


def test_stop_timeout_bounds_the_stop_as_a_workers_shutdown_timeout():
    async def main(cluster: Any) -> tuple[Any, ...]:
        greeter = Greeter()
        async with faust_app_running(greeter.app, stop_timeout=10) as app:
            started_at = asyncio.get_running_loop().time()
        return app.stop_deadline - started_at, app.should_stop

    budget, stopped = simulate(main, seed=1, config=FAST)
    assert budget == pytest.approx(7.0)  # 70% of it for the graceful part (detstream.stopping)
    assert stopped


def test_the_configuration_signals_and_autodiscovery_run_before_anything_starts(
    tmp_path, monkeypatch
):
    package = tmp_path / "asgi_discovered_proj"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "views.py").write_text("IMPORTED = True\n")
    (tmp_path / "asgi_broken_proj.py").write_text("raise ImportError('a missing dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    events: list[str] = []

    async def main(cluster: Any) -> str:
        app = detstream.App("discovering", broker="sim://", web_enabled=False,
                            autodiscover=["asgi_discovered_proj"])
        app.on_after_configured.connect(lambda sender, **kw: events.append("configured"))

        @app.task
        async def started() -> None:
            events.append(f"started, views imported: {'asgi_discovered_proj.views' in sys.modules}")

        async with faust_app_running(app):
            await asyncio.sleep(1)
        broken = detstream.App("broken", broker="sim://", web_enabled=False,
                               autodiscover=["asgi_broken_proj"])
        with pytest.raises(AutodiscoverError, match="asgi_broken_proj.*a missing dependency"):
            async with faust_app_running(broken):
                pass  # pragma: no cover
        return broken.state

    assert simulate(main, seed=1, config=FAST) == "init"  # failed before anything started
    assert events == ["configured", "started, views imported: True"]


# -- the worker drives: serve_asgi ------------------------------------------------------------

class FakeUvicorn:
    """Stands in for ``uvicorn.Server``: runs the ASGI lifespan around serving, by hand, as
    uvicorn does with ``lifespan="on"``; ``should_exit`` ends it."""

    def __init__(self, service: AsgiService, log: list[str]) -> None:
        self.asgi_app = service.asgi_app
        self.app = service.faust_app
        self.log = log
        self.should_exit = False

    async def serve(self) -> None:
        lifespan = LifespanServer(self.asgi_app)
        self.log.append(f"{(await lifespan.startup())['type']}, app {self.app.state}")
        while not self.should_exit:
            await asyncio.sleep(0.1)  # uvicorn's main loop ticks
        self.log.append(f"{(await lifespan.shutdown())['type']}, app {self.app.state}")


def test_serve_asgi_serves_inside_the_worker_after_the_app_starts_and_stops_before_it(monkeypatch):
    log: list[str] = []
    servers: list[FakeUvicorn] = []

    def create_server(service: AsgiService) -> FakeUvicorn:
        log.append(f"server made, app {greeter.app.state}")
        servers.append(FakeUvicorn(service, log))
        return servers[-1]

    monkeypatch.setattr(AsgiService, "_create_server", create_server)
    greeter: Greeter

    async def main(cluster: Any) -> tuple[Any, ...]:
        nonlocal greeter
        greeter = Greeter(expected=1, web_enabled=True, web_port=8123)
        # the application also has a lifespan running the app: it finds it running
        asgi = FaustLifespanMiddleware(greeter.endpoint(), greeter.app)
        service_class = serve_asgi(greeter.app, asgi)
        out = io.StringIO()
        worker = Worker(greeter.app, stdout=out)
        running = asyncio.ensure_future(worker.start())
        await asyncio.sleep(2)
        answer = await post(servers[0].asgi_app, "/greet", b"from the worker")
        await asyncio.wait_for(greeter.received.wait(), 60)
        worker.request_stop()
        await running
        return service_class, worker, answer, out.getvalue()

    service_class, worker, answer, out = simulate(main, seed=1, config=FAST)
    assert greeter.app.web_server_service is service_class and service_class.faust_app is greeter.app
    assert worker.web_server is None  # the aiohttp server of app.web is replaced
    assert worker.app_web_server.label == "FaustAsgiService: http://0.0.0.0:8123"
    assert "FaustAsgiService: http://0.0.0.0:8123 (app.web_server, once the app started)" in out
    assert answer[0] == 200 and greeter.seen == ["from the worker"]
    assert log == ["server made, app running", "lifespan.startup.complete, app running",
                   "lifespan.shutdown.complete, app running"]  # stopped before the app
    assert worker.exit_code == 0 and greeter.app.should_stop


def test_serve_asgi_obeys_web_enabled_and_takes_host_port_and_uvicorn_options():
    app = detstream.App("served", broker="sim://", web_enabled=False, web_port=7001,
                        web_bind="127.0.0.2")
    default = serve_asgi(app, object())
    assert (default().host, default().port) == ("127.0.0.2", 7001)  # read when made
    app.conf.web_port = 7002
    assert default().port == 7002

    async def plain_function_app(scope: Any, receive: Any, send: Any) -> None: ...

    assert serve_asgi(app, plain_function_app)().asgi_app is plain_function_app  # not bound

    chosen = serve_asgi(app, object(), host="127.0.0.1", port=9001, workers=2)
    assert app.web_server_service is chosen and chosen.uvicorn_options == {"workers": 2}
    assert (chosen().host, chosen().port) == ("127.0.0.1", 9001)

    from detstream.worker import app_web_server

    assert app_web_server(app) is None  # web_enabled off (--without-web): nothing served
    app.conf.web_enabled = True
    assert isinstance(app_web_server(app), chosen)


def test_serve_asgi_without_uvicorn_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if not installed
    with pytest.raises(ImproperlyConfigured, match="pip install uvicorn"):
        AsgiService(object())._create_server()


def test_an_asgi_service_without_an_application_is_refused_at_start():
    async def main(cluster: Any) -> None:
        with pytest.raises(ImproperlyConfigured, match="no ASGI application"):
            await AsgiService().on_start()

    simulate(main, seed=1)


def test_app_web_server_takes_only_mode_services():
    app = detstream.App("webserver", broker="sim://")
    with pytest.raises(InvalidArgument, match="mode.Service class or instance"):
        app.web_server(object())
