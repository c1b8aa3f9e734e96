"""``app.web``: pages, path routing, dispatch (CORS, middlewares) and the in-process client."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from detstream.errors import InvalidArgument

from .blueprints import BlueprintManager
from .cors import CorsRules, add_cors_headers, cors_rules, parse_cors_options, preflight
from .views import (
    METHODS,
    Request,
    Response,
    View,
    WebError,
    check_signature,
    error_response,
    json_response,
    view_class,
)

if TYPE_CHECKING:
    from detstream.app import App

log = logging.getLogger(__name__)

#: a view's answer to a request: what a middleware calls for the answer of the views inside it.
Handler = Callable[[Request], Awaitable[Response]]
#: ``async def middleware(request, handler) -> Response`` around every view, as aiohttp's: it
#: returns ``await handler(request)`` or an answer of its own (LiveCheck's reads test headers).
Middleware = Callable[[Request, Handler], Awaitable[Response]]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]+))?\}")
_SAFE = "/:@!$&'()*+,;=-._~"


class Route:
    """One path pattern (``/table/{name}/{key}/``, ``{id:\\d+}`` for a custom regex)."""

    def __init__(self, path: str, view: type[View], name: str,
                 cors: CorsRules | None = None) -> None:
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidArgument(f"a page path must be a str starting with '/', got {path!r}")
        self.path, self.view, self.name = path, view, name
        #: the page's own CORS rules (``cors_options``); the setting's apply too.
        self.cors = cors
        #: the view's one instance (made at its first request), as Faust makes one per app.
        self._instance: View | None = None
        self.params: list[str] = []
        parts, pos = [], 0
        for m in _PARAM.finditer(path):
            parts.append(re.escape(quote(path[pos:m.start()], safe=_SAFE)))
            param, regex = m.group(1), m.group(2) or "[^/]+"
            if param in self.params:
                raise InvalidArgument(f"path {path!r} names {{{param}}} twice")
            try:
                re.compile(regex)
            except re.error as exc:
                raise InvalidArgument(f"path {path!r}: bad regex for {{{param}}}: {exc}") from None
            self.params.append(param)
            parts.append(f"(?P<{param}>{regex})")
            pos = m.end()
        rest = path[pos:]
        if "{" in rest or "}" in rest:
            raise InvalidArgument(f"path {path!r}: unbalanced braces or a bad {{param}} name")
        parts.append(re.escape(quote(rest, safe=_SAFE)))
        self.regex = re.compile("".join(parts))

    def instance(self, app: App, web: Web) -> View:
        """The view answering this route: made once, so a class view's attributes last
        between requests (Faust's ``counter`` view in its guide counts across them)."""
        if self._instance is None:
            self._instance = self.view(app, web)
        return self._instance

    def match(self, raw_path: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(raw_path)
        return None if m is None else {k: unquote(v) for k, v in m.groupdict().items()}

    def url(self, **params: Any) -> str:
        missing = set(self.params) - set(params)
        if missing or set(params) - set(self.params):
            raise InvalidArgument(f"view {self.name!r} ({self.path}) takes {self.params}, "
                                  f"got {sorted(params)}")
        return _PARAM.sub(lambda m: quote(str(params[m.group(1)]), safe=""), self.path)


class Web:
    """The app's web views; ``app.web``. Routing and dispatch live here, sockets do not."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.routes: list[Route] = []
        self._builtins: list[Route] | None = None
        #: blueprints registered when the server starts (``app.web.blueprints.add(prefix, bp)``).
        self.blueprints = BlueprintManager(self)
        #: wrapped around every view, the first one outermost (see ``Middleware``).
        self.middlewares: list[Middleware] = []
        #: each called with no arguments when a request of ``app.http_client`` starts; the
        #: headers it returns go out with the request (LiveCheck's test headers).
        self.client_headers: list[Callable[[], Mapping[str, str]]] = []

    def page(
        self, path: str, *, name: str | None = None, base: type[View] | None = None,
        cors_options: Mapping[str, Any] | None = None,
    ) -> Callable[[Any], Any]:
        """``@app.page(path)``: register a function or View subclass; returns it unchanged.

        ``cors_options`` are the page's CORS rules, over the ``web_cors_options`` setting's.
        """
        Route(path, View, "")  # a bad path fails at the decorator line, not at first request
        cors = parse_cors_options(cors_options, what=f"cors_options of page {path!r}")

        def decorate(target: Any) -> Any:
            view = view_class(target, base)
            view_name = name or getattr(target, "__name__", "") or path
            route = Route(path, view, view_name, cors)
            check_signature(view, route.params, path)
            for other in self.routes:
                if other.path == path:
                    raise InvalidArgument(f"page path {path!r} is defined twice "
                                          f"({other.name!r} and {view_name!r})")
                if other.name == view_name:
                    raise InvalidArgument(f"page name {view_name!r} is used twice "
                                          f"({other.path} and {path}); give one a name=")
            view.view_name, view.view_path = view_name, path
            self.routes.append(route)
            return target

        return decorate

    def add_static(self, prefix: str, path: str | Path, *, name: str | None = None) -> None:
        """Serve the files of directory ``path`` under ``prefix`` (or the file ``path`` at it)."""
        from .static import static_route, static_view

        page_path, target = static_route(prefix, path)
        self.page(page_path, name=name or f"static:{prefix}")(static_view(target))

    def init_server(self) -> None:
        """Register the blueprints added with ``blueprints.add``; the server calls it at start."""
        self.blueprints.apply()

    @property
    def cors_defaults(self) -> CorsRules:
        """The ``web_cors_options`` setting's rules, for every page."""
        return parse_cors_options(self.app.conf.web_cors_options, what="setting 'web_cors_options'")

    def url_for(self, view_name: str, **params: Any) -> str:
        self.init_server()
        for route in [*self.routes, *self.builtin_routes()]:
            if route.name == view_name:
                return route.url(**params)
        raise InvalidArgument(f"no page named {view_name!r}")

    def builtin_routes(self) -> list[Route]:
        if self._builtins is None:
            from .builtins import routes

            self._builtins = routes()
        return self._builtins

    def resolve(self, raw_path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for a percent-encoded path; the app's pages win over the built-ins."""
        self.init_server()
        for route in [*self.routes, *self.builtin_routes()]:
            match_info = route.match(raw_path)
            if match_info is not None:
                return route, match_info
        return None

    async def handle(
        self, method: str, raw_path: str, *, query_string: str = "",
        headers: Mapping[str, str] | None = None, body: bytes = b"",
    ) -> Response:
        """Answer one request. A raising view gives a 500 JSON answer (and a log line)."""
        found = self.resolve(raw_path)
        path = unquote(raw_path)
        if found is None:
            hint = ""
            if not raw_path.endswith("/") and self.resolve(raw_path + "/") is not None:
                hint = f"; did you mean {path}/ ?"
            return error_response(404, f"no page at {path}{hint}")
        route, match_info = found
        request = Request(method, path, query_string=query_string, headers=headers, body=body,
                          match_info=match_info, raw_path=raw_path)
        rules = cors_rules(route.cors, self.cors_defaults)
        if rules is None:
            return await self._dispatch(route, request)
        if request.method == "OPTIONS":
            return preflight(request, rules, route.view.implemented())
        response = await self._dispatch(route, request)
        add_cors_headers(request, response, rules)
        return response

    async def _dispatch(self, route: Route, request: Request) -> Response:
        """The view's answer; a raising view gives a 500 JSON answer (and a log line)."""
        view = route.instance(self.app, self)
        sensors = self.app.sensors
        if not sensors.enabled:
            return await self._answer(view, route, request)
        state = sensors.on_web_request_start(self.app, request, view=view)
        response: Response | None = None
        try:
            response = await self._answer(view, route, request)
            return response
        finally:  # an error answer too; None only if the request was cancelled
            sensors.on_web_request_end(self.app, request, response, state, view=view)

    async def _answer(self, view: View, route: Route, request: Request) -> Response:
        """The view's answer; a WebError as its JSON, anything else raised as a 500."""
        path = request.path
        handler: Handler = view.dispatch
        for middleware in reversed(self.middlewares):
            handler = _wrapped(middleware, handler)
        try:
            return await handler(request)
        except WebError as exc:
            return error_response(exc.code, exc.detail, **exc.extra)
        except Exception as exc:
            log.exception("view %r raised on %s %s", route.name, request.method, path)
            body_: dict[str, Any] = {"error": f"{type(exc).__name__} in view {route.name!r}",
                                     "type": type(exc).__name__}
            if self.app.conf.debug:
                body_["detail"] = str(exc)
            try:
                return json_response(body_, status=500)
            except Exception:  # an exception whose name is not even JSON: plain 500
                return Response(b"internal server error", status=500, content_type="text/plain")

    def client(self) -> Client:
        """An in-process client: ``await app.web.client().get('/path/?x=1')``; no sockets."""
        return Client(self)


def _wrapped(middleware: Middleware, handler: Handler) -> Handler:
    """``handler`` behind ``middleware``: what the next middleware out calls."""

    async def handle(request: Request) -> Response:
        return await middleware(request, handler)

    return handle


class Client:
    """Calls the app's views in-process, exactly as the server does, minus HTTP.

    Works under ``detstream sim`` and ``sim.testing.simulate`` (where sockets
    are refused) and in plain unit tests. Each call returns a :class:`Response`
    with ``status``, ``headers``, ``text``, ``body`` and ``json()``.
    """

    def __init__(self, web: Web) -> None:
        self.web = web

    async def request(
        self, method: str, url: str, *, json: Any = None, data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        if method.lower() not in METHODS:
            raise InvalidArgument(f"unknown HTTP method {method!r}")
        parts = urlsplit(url)
        raw_path = quote(parts.path or "/", safe=_SAFE + "%")
        hdrs = dict(headers or {})
        body = b""
        if json is not None:
            body = json_response(json).body
            hdrs.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        response = await self.web.handle(method, raw_path, query_string=parts.query,
                                         headers=hdrs, body=body)
        if method.lower() == "head":
            response.body = b""
        return response

    async def get(self, url: str, **kwargs: Any) -> Response:
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Any) -> Response:
        return await self.request("HEAD", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Response:
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> Response:
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> Response:
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> Response:
        return await self.request("DELETE", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> Response:
        return await self.request("OPTIONS", url, **kwargs)
