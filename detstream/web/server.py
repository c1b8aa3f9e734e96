"""The worker's HTTP server (aiohttp in front of ``app.web.handle``) and its HTTP client.

It imports aiohttp (as only ``session_headers`` does besides) only when a
server starts or a client is made (``app.http_client``, ``forward_request``),
so ``import detstream`` and the simulator do not load it here (a LiveCheck
app's patch does, in ``session_headers``). Every request goes to one
handler that reads the body and calls ``app.web.handle``: routing, views and
error answers are the same code the in-process client runs.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Mapping
from typing import Any

from detstream.errors import DetstreamError, ImproperlyConfigured

from .views import Request, Response

log = logging.getLogger(__name__)

#: seconds a stopping server waits for requests in progress.
SHUTDOWN_TIMEOUT = 5.0


class WebServerError(ImproperlyConfigured):
    """The web server could not listen (port in use, address not available)."""


class WebServer:
    """Serves ``app.web`` on ``bind:port`` (``port=0``: any free port, see ``.port``)."""

    def __init__(self, app: Any, *, bind: str, port: int, host: str | None = None) -> None:
        self.app = app
        self.bind = bind
        self.port = port
        self.host = host or bind
        self._runner: Any = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        from aiohttp import web as aioweb

        self.app.web.init_server()  # blueprints added with app.web.blueprints.add
        runner = aioweb.ServerRunner(aioweb.Server(self._handle), shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await aioweb.TCPSite(runner, self.bind, self.port).start()
        except OSError as exc:
            await runner.cleanup()
            raise self._listen_error(exc) from None
        self._runner = runner
        addresses = runner.addresses
        if addresses and isinstance(addresses[0], tuple):
            self.port = int(addresses[0][1])
        log.info("web server listening on %s:%d (%s)", self.bind, self.port, self.url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("web server on port %d stopped", self.port)

    def _listen_error(self, exc: OSError) -> WebServerError:
        if exc.errno == errno.EADDRINUSE:
            return WebServerError(
                f"web server: port {self.port} is already in use on {self.bind}; start the "
                f"worker with another port (`detstream worker --web-port PORT`, or the "
                f"web_port setting) or without the web server (--without-web)"
            )
        return WebServerError(
            f"web server cannot listen on {self.bind}:{self.port}: {exc.strerror or exc}; "
            f"check the web_bind setting (--web-bind) and --web-port"
        )

    async def _handle(self, request: Any) -> Any:
        from aiohttp import web as aioweb

        body = await request.read()
        url = request.rel_url
        response = await self.app.web.handle(
            request.method, url.raw_path, query_string=url.raw_query_string,
            headers=request.headers, body=body,
        )
        return _to_aiohttp(aioweb, response)


def _to_aiohttp(aioweb: Any, response: Response) -> Any:
    headers = dict(response.headers)
    kwargs: dict[str, Any] = {}
    if not any(k.lower() == "content-type" for k in headers) and response.status != 204:
        kwargs["content_type"] = response.content_type
        if response.content_type.startswith("text/") or response.content_type.endswith("json"):
            kwargs["charset"] = "utf-8"
    return aioweb.Response(body=response.body or None, status=response.status,
                           reason=response.reason, headers=headers, **kwargs)


#: seconds a routed request may take on the worker it was sent to.
FORWARD_TIMEOUT = 30.0
#: headers not copied onto a routed request (they describe the first hop).
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "keep-alive"})


async def forward_request(url: str, request: Request) -> Response:
    """Send ``request`` to the worker at ``url`` and return its answer as it is (``app.router``).

    The request goes to the same path and query, with its method, headers
    and body, and the header ``Detstream-Routed`` (the receiver answers it
    itself). A worker that cannot be reached answers 503.
    """
    import aiohttp

    from .router import ROUTED_HEADER, ServiceUnavailable

    target = url.rstrip("/") + request.path + (f"?{request.query_string}" if request.query_string else "")
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
    headers[ROUTED_HEADER] = "1"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT)) as session:
            async with session.request(request.method, target, headers=headers,
                                       data=request.body or None) as answer:
                body = await answer.read()
                return Response(body, status=answer.status, content_type=answer.content_type,
                                reason=answer.reason)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServiceUnavailable(f"the worker at {url} did not answer: {exc!r}") from None


def new_http_client(header_sources: list[Callable[[], Mapping[str, str]]]) -> Any:
    """``app.http_client``: an aiohttp ``ClientSession`` adding each source's headers to its requests.

    The sources are read when a request starts, so headers that depend on
    the context of the request's task (LiveCheck's current test) follow it.
    """
    import aiohttp

    async def add_headers(session: Any, context: Any, params: Any) -> None:
        for source in header_sources:
            params.headers.update(source())

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(add_headers)
    return aiohttp.ClientSession(trace_configs=[trace])


class HTTPRequestError(DetstreamError):
    """A request sent with ``fetch`` got no answer, or an error status."""


async def fetch(
    client: Any, method: str, url: str, *, total: float | None = None,
    connect: float | None = None, **kwargs: Any,
) -> bytes:
    """The body of the answer to ``method url`` sent with ``client`` (an aiohttp session).

    Raises ``HTTPRequestError`` when the request fails, times out (``total``,
    ``connect`` seconds) or is answered with a status of 400 or more.
    """
    import asyncio

    import aiohttp

    timeout = aiohttp.ClientTimeout(total=total, connect=connect)
    try:
        async with client.request(method, url, timeout=timeout, **kwargs) as response:
            response.raise_for_status()
            return bytes(await response.read())
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise HTTPRequestError(f"{method.upper()} {url}: {exc!r}") from exc
