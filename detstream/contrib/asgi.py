"""An App co-hosted with an ASGI web application, on one event loop (Faust's ``faust.contrib.asgi``).

An endpoint that sends to a topic (``await topic.send(...)``) uses the
App's producer, which belongs to the event loop the App started on: the App
and the web server must share one loop. Two ways to get there:

1. **The ASGI server drives** (``uvicorn proj:api``). The server's lifespan
   starts the App on the server's loop and stops it at shutdown::

       api = FastAPI(lifespan=faust_lifespan(app))          # a framework's lifespan hook
       asgi = FaustLifespanMiddleware(django_asgi_app, app)  # any ASGI application

   or, composed with a lifespan of your own, ``async with
   faust_app_running(app): ...``.

2. **The worker drives** (``detstream worker -A proj``): ``serve_asgi(app,
   api)`` serves the ASGI application with uvicorn on the worker's loop, in
   place of the aiohttp server of ``app.web`` (see
   :mod:`detstream.contrib.asgi_server`).

The App is started as ``detstream worker`` starts it, less what belongs to
the process, which the ASGI server owns: signal handlers, logging
configuration, the blocking detector (it takes ``SIGALRM``), the banner,
``on_worker_init`` and the exit code. What it does do: resolve the settings
(the configuration signals), autodiscover, name the client on Kafka
(``{host}-{pid}``, so that two server processes do not fence each other
under exactly-once), serve ``app.web`` on ``web_port`` unless
``web_enabled`` is off, start the App, and stop everything on shutdown.

Nothing here imports a web framework: the lifespan protocol is plain ASGI
(https://asgi.readthedocs.io/en/latest/specs/lifespan.html), so FastAPI,
Starlette, Quart, Litestar or Django's ASGI handler all work with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detstream.errors import DetstreamError, ImproperlyConfigured, InvalidArgument
from detstream.stopping import stop_deadline, stop_each

from .asgi_server import AsgiService, serve_asgi
from .opentelemetry import check_opentelemetry_option, maybe_instrument_asgi

if TYPE_CHECKING:
    from detstream.app import App

__all__ = [
    "AppNotRunnable", "AsgiService", "FaustLifespanMiddleware", "LifespanProtocolError",
    "LoopMismatch", "bind_to_running_loop", "faust_app_running", "faust_lifespan", "serve_asgi",
    "serve_lifespan",
]

logger = logging.getLogger(__name__)

#: ASGI's callables: ``receive()`` gives the next message, ``send(message)`` answers.
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

#: the keyword options of :func:`faust_app_running` that the lifespan helpers pass on.
RUNNING_OPTIONS = ("finalize", "discover", "stop_timeout")

#: one stop of several (``detstream.stopping.stop_each``): what, and how.
Step = tuple[str, Callable[[], Awaitable[Any]]]


class LoopMismatch(ImproperlyConfigured):
    """The App is bound to another event loop than the one running (Faust's error of that name)."""


class AppNotRunnable(DetstreamError, RuntimeError):
    """The App cannot be started here: it was stopped, it crashed, or it runs as a client only."""


class LifespanProtocolError(DetstreamError, RuntimeError):
    """The ASGI server sent a lifespan message other than the one the protocol has next."""


def bind_to_running_loop(app: App) -> asyncio.AbstractEventLoop:
    """Bind ``app`` to the running event loop (the ASGI server's) and return that loop.

    Raises ``RuntimeError`` when no loop is running, and :class:`LoopMismatch`
    when the App is already bound to another loop: whatever it made there (a
    producer, consumer, timers) cannot be used from this one.
    """
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "bind_to_running_loop(app): no event loop is running; call it from a coroutine "
            "on the loop the app is to run on (the ASGI server's, in its lifespan)"
        ) from None
    # mode's ``_loop``, not ``app.loop``: reading the property binds a loop as a side effect.
    bound = app._loop
    if bound is None:
        app.loop = running
    elif bound is not running:
        raise LoopMismatch(
            f"App {app.conf.id!r} is bound to another event loop than the ASGI server's: "
            "it was started there (by a `detstream worker`, another thread, an earlier "
            "asyncio.run()), or its loop was fixed before the server ran (App(loop=...), "
            "app.loop or asyncio.get_event_loop() at import time). Its producer and consumer "
            "cannot be used from this loop: declare the app at import time but leave its "
            "loop alone, and start it only here"
        )
    return running


@asynccontextmanager
async def faust_app_running(
    app: App,
    *,
    finalize: bool = True,
    discover: bool | None = None,
    stop_timeout: float | None = None,
) -> AsyncIterator[App]:
    """Start ``app`` on the running loop for the block; stop it (gracefully) after.

    For a lifespan of your own::

        @asynccontextmanager
        async def lifespan(api):
            async with faust_app_running(app):
                models["answer"] = load_model()
                yield
                models.clear()

    ``finalize`` resolves the settings first (sending the configuration
    signals; Faust's ``app.finalize()``). ``discover`` imports the
    ``autodiscover`` modules before anything starts (None, the default: when
    the App has ``autodiscover``; an App imports them when it starts anyway,
    so False only defers them). ``stop_timeout`` bounds the stop, as a
    worker's shutdown timeout does: past 70% of it the final commit and the
    producer's flush are given up (the next owner of the partitions redoes
    that work) and the clients closed; ``asyncio.TimeoutError`` past all of
    it. None (Faust's default) waits for the broker as long as it takes.

    An App already running on this loop (a worker's, or an outer lifespan's)
    is used as it is and left running, as Faust does. Raises
    :class:`LoopMismatch` for an App of another loop, and
    :class:`AppNotRunnable` for one stopped, crashed or running as a client.
    When the start fails, what was started is stopped and the error raised.
    """
    bind_to_running_loop(app)
    _check_runnable(app)
    if finalize:
        app.finalize()  # resolves the settings, sending the configuration signals
    if discover or (discover is None and app.conf.autodiscover):
        app.discover()
    if app._started.is_set():  # running here already (checked above): its starter stops it
        logger.info("faust_app_running: app %r already runs on this loop; not starting it again",
                    app.conf.id)
        yield app
        return
    servers = await _start_as_worker(app)
    try:
        yield app
    finally:
        await _stop_as_worker(app, servers, stop_timeout)


def _check_runnable(app: App) -> None:
    """Refuse an App that a start would silently not run: crashed, stopped, or a client."""
    name = app.conf.id
    if app.crashed:
        raise AppNotRunnable(
            f"App {name!r} crashed ({app.crash_reason!r}): a crashed app is not started "
            "again; make a new App"
        )
    if app._stopped.is_set():
        raise AppNotRunnable(
            f"App {name!r} was stopped: an app runs once; make a new App for each start "
            "(each lifespan of the ASGI server, each test)"
        )
    if app._started.is_set() and app.client_only:
        raise AppNotRunnable(
            f"App {name!r} already runs as a client only (started by start_client(), "
            "agent.ask() or a send from a command): its agents, tables and timers do not "
            "run. Start it with faust_app_running() (the ASGI lifespan) before anything sends"
        )


@dataclass
class _WebServers:
    """What serves web traffic beside the App: ``app.web``'s aiohttp server, ``app.web_server``'s."""

    web: Any = None
    own: Any = None

    def stops(self) -> tuple[list[Step], list[Step]]:
        """The stops before the app's (its own server: requests in flight finish on a
        running app) and after it (``app.web``'s, which answers ``/health/`` meanwhile)."""
        before = [("the app's web server", self.own.stop)] if self.own is not None else []
        after = [("the web server", self.web.stop)] if self.web is not None else []
        return before, after


async def _start_as_worker(app: App) -> _WebServers:
    """Start ``app`` as ``detstream worker`` does, less the process's parts; return its web
    servers, to stop with it. A failed start stops what it started, then raises."""
    from detstream.worker import app_web_server, name_worker, start_web_server

    app.transport  # noqa: B018 - a bad broker URL fails here, before anything starts
    name_worker(app)
    servers = _WebServers(web=await start_web_server(app))  # app.web on web_port, as a worker
    try:
        await app.start()
        servers.own = app_web_server(app)  # app.web_server (serve_asgi): after the app
        if servers.own is not None:
            await servers.own.start()
    except BaseException:
        before, after = servers.stops()
        await stop_each([*before, ("the app", app.stop), *after], logger)
        raise
    logger.info("app %r started on the ASGI server's event loop", app.conf.id)
    return servers


async def _stop_as_worker(app: App, servers: _WebServers, stop_timeout: float | None) -> None:
    """Stop the app's own web server, the app, then ``app.web``'s server; each, whatever fails."""

    async def stop_app() -> None:
        if stop_timeout is None:
            await app.stop()
            return
        app.stop_deadline = stop_deadline(asyncio.get_running_loop().time(), stop_timeout)
        await asyncio.wait_for(app.stop(), stop_timeout)

    before, after = servers.stops()
    await stop_each([*before, ("the app", stop_app), *after], logger)
    logger.info("app %r stopped", app.conf.id)


def faust_lifespan(
    app: App, *, opentelemetry: bool | None = None, **options: Any
) -> Callable[..., Any]:
    """A lifespan handler running ``app``, for a framework's hook (Faust's ``faust_lifespan``)::

        api = FastAPI(lifespan=faust_lifespan(app))
        api = Starlette(lifespan=faust_lifespan(app))

    The handler takes any arguments (frameworks pass their application) and
    is an async context manager yielding None (Starlette would merge a value
    into the request scope's state). ``options`` are those of
    :func:`faust_app_running`.

    ``opentelemetry``: the application the framework passes is instrumented
    with OpenTelemetry's ``FastAPIInstrumentor`` at startup
    (:func:`detstream.contrib.opentelemetry.maybe_instrument_asgi`): None
    (the default) when a real ``TracerProvider`` is configured, True always
    (refused here when ``opentelemetry-instrumentation-fastapi`` is not
    installed), False never. An application instrumented already is left alone.
    """
    check_opentelemetry_option("faust_lifespan", opentelemetry)
    _check_options("faust_lifespan", options)

    @asynccontextmanager
    async def lifespan(*args: Any, **_kwargs: Any) -> AsyncIterator[None]:
        if args:  # the framework's application (Starlette, FastAPI pass it)
            maybe_instrument_asgi(args[0], opentelemetry)
        async with faust_app_running(app, **options):
            yield None

    return lifespan


def _check_options(caller: str, options: Mapping[str, Any]) -> None:
    """A misspelt option fails when the lifespan is made, not at the server's start."""
    unknown = sorted(set(options) - set(RUNNING_OPTIONS))
    if unknown:
        raise InvalidArgument(
            f"{caller}: unknown option(s) {', '.join(map(repr, unknown))}; it takes those of "
            f"faust_app_running: {', '.join(RUNNING_OPTIONS)}"
        )


class FaustLifespanMiddleware:
    """An ASGI application: ``asgi_app``, with ``faust_app`` started and stopped by the lifespan.

    For any ASGI application, those without a lifespan hook included
    (Django's)::

        application = FaustLifespanMiddleware(get_asgi_application(), app)

    HTTP and WebSocket scopes go to ``asgi_app`` untouched; the lifespan
    scope is this middleware's and is not passed on (use
    :func:`faust_lifespan` in a framework's own lifespan instead). At
    ``lifespan.startup`` the App is started (:func:`faust_app_running`,
    whose options ``options`` are) before ``lifespan.startup.complete`` is
    sent; at ``lifespan.shutdown`` it is stopped before
    ``lifespan.shutdown.complete``. A failure, or a message out of the
    protocol's order, is answered ``lifespan.startup.failed`` (or
    ``lifespan.shutdown.failed``) with the error as its ``message``, and
    logged with its traceback; an App that started is stopped first.
    """

    def __init__(self, asgi_app: ASGIApp, faust_app: App, **options: Any) -> None:
        _check_options("FaustLifespanMiddleware", options)
        self.asgi_app = asgi_app
        self.faust_app = faust_app
        self.faust_options = options

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope.get("type") != "lifespan":
            await self.asgi_app(scope, receive, send)
            return
        await serve_lifespan(self.faust_app, receive, send, **self.faust_options)


async def serve_lifespan(app: App, receive: Receive, send: Send, **options: Any) -> None:
    """Answer one ASGI lifespan scope: run ``app`` from ``lifespan.startup`` to ``lifespan.shutdown``.

    Returns when the lifespan is over (after the answer to shutdown, or to a
    failed startup); errors are answered with the ``*.failed`` message the
    protocol has for them, not raised.
    """
    phase = "startup"
    try:
        await _expect(receive, "lifespan.startup")
        async with faust_app_running(app, **options):
            await send({"type": "lifespan.startup.complete"})
            phase = "shutdown"
            await _expect(receive, "lifespan.shutdown")
    except Exception as exc:
        logger.error("ASGI lifespan %s of app %r failed: %s: %s", phase, _app_name(app),
                     type(exc).__name__, exc, exc_info=exc)
        await send({"type": f"lifespan.{phase}.failed", "message": f"{type(exc).__name__}: {exc}"})
        return
    await send({"type": "lifespan.shutdown.complete"})


async def _expect(receive: Receive, expected: str) -> None:
    message = await receive()
    kind = message.get("type") if isinstance(message, Mapping) else None
    if kind != expected:
        raise LifespanProtocolError(
            f"ASGI lifespan: expected a {expected!r} message, got {kind!r} ({message!r}): "
            "the server sent the lifespan messages out of order"
        )


def _app_name(app: App) -> str:
    try:
        return str(app.conf.id)
    except Exception:
        return repr(app)
