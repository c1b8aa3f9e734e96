"""An ASGI application served by uvicorn inside the worker, on its event loop (``serve_asgi``).

The other direction of :mod:`detstream.contrib.asgi`: ``detstream worker``
runs as usual and serves your ASGI application in place of the aiohttp
server of ``app.web``::

    api = FastAPI()
    serve_asgi(app, api)            # on web_bind:web_port; or host=, port=

The server is the app's web server (``app.web_server``): the worker starts
it once the App started and stops it before the App, it obeys
``web_enabled`` (``--without-web``), and ``@app.page`` views and the
built-in endpoints (``/health/``, ``/metrics``, ...) are not served, as in
Faust. uvicorn is imported when the server starts (``pip install uvicorn``);
process signals stay the worker's.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mode import Service

from detstream.errors import ImproperlyConfigured

from .opentelemetry import check_opentelemetry_option, maybe_instrument_asgi

if TYPE_CHECKING:
    from detstream.app import App

__all__ = ["AsgiService", "serve_asgi"]

logger = logging.getLogger(__name__)

#: seconds a stopping server waits for its requests in progress (Faust's default).
DEFAULT_SERVER_SHUTDOWN_TIMEOUT = 10.0


class AsgiService(Service):
    """Serves ``asgi_app`` with uvicorn on the running loop (Faust's ``AsgiService``).

    Usually made by :func:`serve_asgi`, which fills in the class attributes.
    Where they are None, the host and port are the App's ``web_bind`` and
    ``web_port`` (the worker's ``--web-bind``/``--web-port`` included), read
    when the service is made, at the worker's start.
    """

    #: the ASGI application served.
    asgi_app: Any = None
    #: the App whose ``web_bind``/``web_port`` are the defaults.
    faust_app: Any = None
    host: str | None = None
    port: int | None = None
    #: more keyword arguments of ``uvicorn.Config``.
    uvicorn_options: Mapping[str, Any] = {}
    server_shutdown_timeout: float = DEFAULT_SERVER_SHUTDOWN_TIMEOUT
    #: instrument ``asgi_app`` with OpenTelemetry at start: None when a real
    #: ``TracerProvider`` is configured, True always, False never.
    opentelemetry: bool | None = None

    def __init__(
        self,
        asgi_app: Any = None,
        *,
        host: str | None = None,
        port: int | None = None,
        uvicorn_options: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # An instance attribute: a plain ``async def app(scope, receive, send)`` read from the
        # class would come back bound to this service, as a method.
        self.asgi_app = asgi_app if asgi_app is not None else _class_attribute(self, "asgi_app")
        self.host = host if host is not None else self._default_host()
        self.port = port if port is not None else self._default_port()
        if uvicorn_options is not None:
            self.uvicorn_options = uvicorn_options
        self._server: Any = None
        self._serving: asyncio.Future[Any] | None = None
        super().__init__(**kwargs)

    @classmethod
    def _default_host(cls) -> str:
        if cls.host is not None:
            return cls.host
        if cls.faust_app is not None:
            return str(cls.faust_app.conf.web_bind)
        return "0.0.0.0"  # noqa: S104 - uvicorn behind the worker, as the aiohttp server binds

    @classmethod
    def _default_port(cls) -> int:
        if cls.port is not None:
            return cls.port
        if cls.faust_app is not None:
            return int(cls.faust_app.conf.web_port)
        return 8000

    @property
    def label(self) -> str:
        return f"{type(self).__name__}: http://{self.host}:{self.port}"

    def _create_server(self) -> Any:
        """A ``uvicorn.Server`` for ``asgi_app``, leaving process signals to the worker."""
        try:
            import uvicorn
        except ImportError as exc:
            raise ImproperlyConfigured(
                "serve_asgi() serves the ASGI application with uvicorn, which is not "
                "installed: pip install uvicorn"
            ) from exc
        options = {"lifespan": "on", "log_config": None, **self.uvicorn_options}
        host, port = self.host, self.port
        assert host is not None and port is not None  # (set by __init__)
        config = uvicorn.Config(self.asgi_app, host=host, port=port, **options)
        server = uvicorn.Server(config)
        _leave_signals_alone(server)
        return server

    async def on_start(self) -> None:
        if self.asgi_app is None:
            raise ImproperlyConfigured(
                "AsgiService has no ASGI application to serve: pass it, or use "
                "serve_asgi(app, asgi_app)"
            )
        maybe_instrument_asgi(self.asgi_app, self.opentelemetry)
        self._server = self._create_server()
        self._serving = self.add_future(self._server.serve())
        logger.info("serving the ASGI application on http://%s:%s", self.host, self.port)

    async def on_stop(self) -> None:
        """Ask the server to finish its requests and exit; wait for it, within a bound."""
        server, serving = self._server, self._serving
        self._server = self._serving = None
        if server is not None:
            server.should_exit = True
        if serving is None:
            return
        try:
            await asyncio.wait_for(serving, self.server_shutdown_timeout)
        except asyncio.TimeoutError:  # wait_for cancelled it, with its requests in progress
            logger.warning("the ASGI server did not stop within %.0fs: cancelled",
                           self.server_shutdown_timeout)


def _class_attribute(service: AsgiService, name: str) -> Any:
    """``name`` as the class holds it, not bound to ``service`` (a function stays a function)."""
    value = inspect.getattr_static(type(service), name)
    return value.__func__ if isinstance(value, (staticmethod, classmethod)) else value


def _leave_signals_alone(server: Any) -> None:
    """Keep uvicorn from installing its own TERM/INT handlers: the worker's stop the process.

    Two owners of one signal make two shutdowns at once (uvicorn's would stop
    serving while the worker drains its partitions). uvicorn installs them in
    ``capture_signals()`` (0.29 and later) or ``install_signal_handlers()``
    (before): both are replaced by no-ops when present.
    """
    if hasattr(server, "capture_signals"):
        server.capture_signals = _no_signals
    if hasattr(server, "install_signal_handlers"):
        server.install_signal_handlers = lambda *args, **kwargs: None


@contextmanager
def _no_signals() -> Iterator[None]:
    yield


def serve_asgi(
    app: App,
    asgi_app: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    opentelemetry: bool | None = None,
    **uvicorn_options: Any,
) -> type[AsgiService]:
    """Serve ``asgi_app`` with uvicorn as ``app``'s web server, inside ``detstream worker``.

    Registers an :class:`AsgiService` subclass with ``app.web_server`` and
    returns it. ``host``/``port`` default to the App's ``web_bind`` and
    ``web_port``; ``uvicorn_options`` go to ``uvicorn.Config`` (its lifespan
    is on: an application with ``faust_lifespan`` finds the App running and
    leaves it to the worker). ``opentelemetry``: as ``faust_lifespan``'s,
    applied when the server starts.
    """
    check_opentelemetry_option("serve_asgi", opentelemetry)
    service: type[AsgiService] = type(
        "FaustAsgiService",
        (AsgiService,),
        {"asgi_app": asgi_app, "faust_app": app, "host": host, "port": port,
         "uvicorn_options": dict(uvicorn_options), "opentelemetry": opentelemetry},
    )
    app.web_server(service)
    return service
