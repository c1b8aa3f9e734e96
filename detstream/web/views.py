"""Requests, responses, views and web errors: no aiohttp, no sockets.

The same objects are used by the aiohttp server (``server.py``) and by the
in-process client (``routes.py``), so a view behaves the same in both.
"""

from __future__ import annotations

import builtins
import inspect
import json as _json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from detstream import codecs
from detstream.errors import DetstreamError, InvalidArgument

if TYPE_CHECKING:
    from detstream.app import App

    from .routes import Web

#: the HTTP methods a ``View`` subclass may implement, as method names.
METHODS = ("get", "post", "put", "patch", "delete", "head", "options")
#: what a function view (``async def view(web, request)``) answers, as in Faust.
FUNCTION_VIEW_METHODS = ("get", "post", "put", "patch", "delete")


# -- errors a view may raise to answer with a status -------------------------------------
class WebError(DetstreamError):
    """Raise in a view to answer ``{"error": detail}`` with status ``code`` (Faust's name)."""

    code = 500
    detail = "Internal Server Error"

    def __init__(self, detail: str | None = None, *, code: int | None = None, **extra: Any) -> None:
        self.detail = detail if detail is not None else type(self).detail
        self.code = code if code is not None else type(self).code
        self.extra = extra
        super().__init__(self.detail)


class ServerError(WebError):
    code, detail = 500, "Internal Server Error"


class ValidationError(WebError):
    code, detail = 400, "Invalid input"


class ParseError(WebError):
    code, detail = 400, "Malformed request"


class NotFound(WebError):
    code, detail = 404, "Not Found"


class MethodNotAllowed(WebError):
    code, detail = 405, "Method Not Allowed"


# -- request and response ----------------------------------------------------------------
class Request:
    """An HTTP request as a view sees it (the body is already read).

    ``query`` is a read-only multidict (``request.query["foo"]``,
    ``request.query.getall("tag")``), ``match_info`` the ``{param}`` values of
    the path, ``headers`` a case-insensitive multidict.
    """

    def __init__(
        self,
        method: str,
        path: str,
        *,
        query_string: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        match_info: Mapping[str, str] | None = None,
        raw_path: str | None = None,
    ) -> None:
        self.method = method.upper()
        self.path = path
        #: the path as it came, percent-encoded (``path`` is decoded).
        self.raw_path = raw_path if raw_path is not None else quote(path, safe="/:@!$&'()*+,;=-._~")
        self.query_string = query_string
        self.query: MultiDictProxy[str] = MultiDictProxy(
            MultiDict(parse_qsl(query_string, keep_blank_values=True))
        )
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict(headers or {}))
        self.body = bytes(body)
        self.match_info: dict[str, str] = dict(match_info or {})

    def __repr__(self) -> str:
        qs = f"?{self.query_string}" if self.query_string else ""
        return f"<Request {self.method} {self.path}{qs}>"

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";")[0].strip().lower()

    async def read(self) -> bytes:
        return self.body

    async def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    async def json(self) -> Any:
        """The body as JSON; malformed JSON answers 400 (``ParseError``)."""
        try:
            return _json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ParseError(f"request body is not valid JSON: {exc}") from None


class Response:
    """What a view returns; ``View.json()`` and friends build one.

    In tests the in-process client returns it too: ``status``, ``headers``,
    ``body`` (bytes), ``text`` and ``json()``.
    """

    def __init__(
        self,
        body: bytes = b"",
        *,
        status: int = 200,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
        reason: str | None = None,
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise InvalidArgument(f"HTTP status must be an int from 100 to 599, got {status!r}")
        self.body = bytes(body)
        self.status = status
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.reason = reason

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.content_type} {len(self.body)} bytes>"

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return _json.loads(self.body.decode("utf-8"))


def json_response(
    data: Any, *, status: int = 200, headers: Mapping[str, str] | None = None,
    reason: str | None = None,
) -> Response:
    """JSON with detstream's json codec: Records, datetimes, sets, Decimals, UUIDs encode."""
    body = codecs.get_codec("json").dumps(data)
    return Response(body, status=status, content_type="application/json", headers=headers,
                    reason=reason)


def error_response(status: int, reason: str, **extra: Any) -> Response:
    return json_response({"error": reason, **extra}, status=status)


_SEPARATOR = b"\r\n\r\n"


def response_to_bytes(response: Response) -> bytes:
    """A response as bytes a cache backend keeps: status, headers (with Content-Type), body."""
    headers = {"Content-Type": response.content_type, **response.headers}
    head = b"\r\n".join(f"{k}: {v}".encode("latin-1") for k, v in headers.items())
    return _SEPARATOR.join([str(response.status).encode("ascii"), head, response.body])


def bytes_to_response(data: bytes) -> Response:
    """The response :func:`response_to_bytes` made ``data`` of."""
    status, head, body = data.split(_SEPARATOR, 2)
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        if line:
            name, _, value = line.partition(": ")
            headers[name] = value
    content_type = headers.pop("Content-Type", "application/octet-stream")
    return Response(body, status=int(status), content_type=content_type, headers=headers)


# -- views ---------------------------------------------------------------------------------
class View:
    """A web view (Faust's ``faust.web.View``): implement ``get``, ``post``, ... .

    Each method is called as ``await self.get(request, **request.match_info)``
    and returns a Response, usually built with ``self.json(...)``. A function
    given to ``@app.page`` becomes a View answering GET, POST, PUT, PATCH and
    DELETE; its first argument (``web`` in the guide) is this View.

    Example::

        @app.page("/counts/{word}/")
        class Counts(detstream.web.View):
            async def get(self, request, word):
                return self.json({word: word_counts[word]})
    """

    view_name: str = ""
    view_path: str = ""

    def __init__(self, app: App, web: Web) -> None:
        self.app = app
        self.web = web

    @classmethod
    def from_handler(cls, fun: Callable[..., Awaitable[Any]]) -> type[View]:
        """A View subclass whose GET/POST/PUT/PATCH/DELETE all call ``fun(view, request, ...)``."""
        if not callable(fun):
            raise InvalidArgument(f"a view handler must be callable, got {fun!r}")
        attrs: dict[str, Any] = {m: fun for m in FUNCTION_VIEW_METHODS}
        attrs.update(__doc__=fun.__doc__, __module__=getattr(fun, "__module__", __name__))
        return type(getattr(fun, "__name__", "view"), (cls,), attrs)

    @classmethod
    def implemented(cls) -> list[str]:
        """The HTTP methods (lower case) this view answers; HEAD falls back to GET."""
        methods = [m for m in METHODS if callable(getattr(cls, m, None))]
        if "get" in methods and "head" not in methods:
            methods.append("head")
        return methods

    async def dispatch(self, request: Request) -> Response:
        method = request.method.lower()
        allowed = self.implemented()
        if method not in allowed:
            allow = ", ".join(m.upper() for m in allowed)
            response = error_response(405, f"method {request.method} not allowed on "
                                           f"{request.path}; allowed: {allow}")
            response.headers["Allow"] = allow
            return response
        handler = getattr(self, "get" if method == "head" and not hasattr(self, "head") else method)
        result = await handler(request, **request.match_info)
        if result is None:
            return Response(status=204)
        if not isinstance(result, Response):
            raise TypeError(
                f"view {self.view_name!r} returned {type(result).__name__}, not a Response: "
                "return web.json(...), web.text(...), web.html(...) or web.bytes(...)"
            )
        return result

    # -- response helpers (Faust's names) --------------------------------------------------
    def json(self, value: Any, *, status: int = 200, headers: Mapping[str, str] | None = None,
             reason: str | None = None) -> Response:
        return json_response(value, status=status, headers=headers, reason=reason)

    def text(self, value: str, *, content_type: str = "text/plain", status: int = 200,
             headers: Mapping[str, str] | None = None, reason: str | None = None) -> Response:
        return Response(value.encode("utf-8"), status=status, headers=headers, reason=reason,
                        content_type=content_type)

    def html(self, value: str, *, status: int = 200, headers: Mapping[str, str] | None = None,
             reason: str | None = None) -> Response:
        return self.text(value, content_type="text/html", status=status, headers=headers,
                         reason=reason)

    def bytes(self, value: bytes, *, content_type: str = "application/octet-stream",
              status: int = 200, headers: Mapping[str, str] | None = None,
              reason: str | None = None) -> Response:
        return Response(value, status=status, content_type=content_type, headers=headers,
                        reason=reason)

    def error(self, status: int, reason: str, **extra: Any) -> Response:
        """``{"error": reason, **extra}`` with ``status``."""
        return error_response(status, reason, **extra)

    def notfound(self, reason: str = "Not Found", **extra: Any) -> Response:
        return error_response(404, reason, **extra)

    def path_for(self, view_name: str, **params: Any) -> str:
        """The path of the view named ``view_name`` (its ``{param}``s from ``params``)."""
        return self.web.url_for(view_name, **params)

    def url_for(self, view_name: str, _base_url: str | None = None, **params: Any) -> str:
        """The view's path, or its URL under ``_base_url`` when one is given (as Faust's).

        Faust's base defaults to ``canonical_url``; here the default is the
        path alone, which a browser and the in-process client resolve alike.
        """
        path = self.path_for(view_name, **params)
        if _base_url is None:
            return path
        return str(_base_url).rstrip("/") + "/" + path.lstrip("/")

    def response_to_bytes(self, response: Response) -> builtins.bytes:
        """Faust's name: ``response`` as bytes for a cache (see ``detstream.web.cache``)."""
        return response_to_bytes(response)

    def bytes_to_response(self, data: builtins.bytes) -> Response:
        """Faust's name: the response a cache kept as ``data``."""
        return bytes_to_response(data)


def view_class(target: Any, base: type[View] | None) -> type[View]:
    """The View class ``@app.page`` registers for ``target`` (a function or a View subclass)."""
    if inspect.isclass(target):
        if not issubclass(target, View):
            raise InvalidArgument(
                f"@app.page() on a class needs a subclass of detstream.web.View, got {target!r}"
            )
        if not target.implemented():
            raise InvalidArgument(
                f"View {target.__qualname__} implements none of {', '.join(METHODS)}"
            )
        return target
    if not callable(target):
        raise InvalidArgument(
            f"@app.page() decorates an `async def view(web, request)` function or a "
            f"detstream.web.View subclass, got {target!r}"
        )
    if not inspect.iscoroutinefunction(target):
        raise InvalidArgument(
            f"@app.page() needs an async def function (async def view(web, request)), got {target!r}"
        )
    base = base or View
    if not (inspect.isclass(base) and issubclass(base, View)):
        raise InvalidArgument(f"@app.page(base=...) must be a View subclass, got {base!r}")
    return base.from_handler(target)


def check_signature(view: type[View], params: list[str], path: str) -> None:
    """Every method must accept ``(request, **{param})`` for the path's ``{param}`` names."""
    for method in view.implemented():
        fun = getattr(view, method, None)
        if fun is None:  # head served by get
            continue
        try:
            sig = inspect.signature(fun)
        except (TypeError, ValueError):
            continue
        try:
            sig.bind(None, None, **{p: "" for p in params})
        except TypeError as exc:
            names = ", ".join(params) or "no path parameters"
            raise InvalidArgument(
                f"view {view.__qualname__}.{method} cannot be called as "
                f"(web, request{''.join(', ' + p for p in params)}) for path {path!r} "
                f"({names}): {exc}"
            ) from None
