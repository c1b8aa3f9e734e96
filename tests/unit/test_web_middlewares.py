"""Middlewares around views, view URLs under a base, and ``app.http_client`` (with its headers)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import detstream
from detstream import web
from detstream.web.server import HTTPRequestError, fetch
from tests.unit.http_helpers import serving


def call(app: detstream.App, method: str, url: str, **kwargs: Any) -> web.Response:
    return asyncio.run(app.web.client().request(method, url, **kwargs))


def test_middlewares_wrap_every_view_the_first_one_outermost():
    app = detstream.App("mw-order", broker="sim://")
    seen: list[str] = []

    @app.page("/hello/")
    async def hello(view: web.View, request: web.Request) -> web.Response:
        seen.append("view")
        return view.text("hi")

    def middleware(name: str) -> Any:
        async def around(request: web.Request, handler: Any) -> web.Response:
            seen.append(f"{name} in")
            response = await handler(request)
            seen.append(f"{name} out")
            response.headers[f"X-{name}"] = "1"
            return response

        return around

    app.web.middlewares += [middleware("outer"), middleware("inner")]
    response = call(app, "GET", "/hello/")
    assert response.text == "hi" and {"X-outer", "X-inner"} <= set(response.headers)
    assert seen == ["outer in", "inner in", "view", "inner out", "outer out"]


def test_a_middleware_may_answer_itself_and_its_errors_are_answered_as_a_views():
    app = detstream.App("mw-answer", broker="sim://")

    @app.page("/guarded/")
    async def guarded(view: web.View, request: web.Request) -> web.Response:
        return view.text("inside")

    async def gate(request: web.Request, handler: Any) -> web.Response:
        if request.headers.get("X-Key") == "bad":
            raise web.WebError("bad key", code=403)
        if request.headers.get("X-Key") != "open":
            return web.Response(b"closed", status=401, content_type="text/plain")
        return await handler(request)

    app.web.middlewares.append(gate)
    assert call(app, "GET", "/guarded/", headers={"X-Key": "open"}).text == "inside"
    assert call(app, "GET", "/guarded/").status == 401
    refused = call(app, "GET", "/guarded/", headers={"X-Key": "bad"})
    assert (refused.status, refused.json()) == (403, {"error": "bad key"})


def test_url_for_is_the_path_or_the_url_under_a_base():
    app = detstream.App("mw-urls", broker="sim://")

    @app.page("/orders/{side}/", name="orders")
    async def orders(view: web.View, request: web.Request, side: str) -> web.Response:
        return view.json({
            "path": view.url_for("orders", side="buy"),
            "url": view.url_for("orders", "http://node-1:6066/", side="buy"),
            "path_for": view.path_for("orders", side="sell"),
        })

    assert call(app, "GET", "/orders/x/").json() == {
        "path": "/orders/buy/", "url": "http://node-1:6066/orders/buy/",
        "path_for": "/orders/sell/",
    }


def test_the_http_client_sends_the_headers_of_the_client_header_sources():
    app = detstream.App("mw-client", broker="sim://")
    current = {"X-Test-Id": "t-1"}

    @app.page("/echo/")
    async def echo(view: web.View, request: web.Request) -> web.Response:
        return view.json({"test": request.headers.get("X-Test-Id")})

    @app.page("/fails/")
    async def fails(view: web.View, request: web.Request) -> web.Response:
        return view.error(503, "down")

    app.web.client_headers.append(lambda: dict(current))

    async def main() -> list[Any]:
        async with serving(app) as http:
            base = http.base
            first = await fetch(app.http_client, "get", f"{base}/echo/", total=10.0)
            current.clear()
            second = await fetch(app.http_client, "get", f"{base}/echo/", total=10.0)
            with pytest.raises(HTTPRequestError, match="GET .*/fails/.*503"):
                await fetch(app.http_client, "get", f"{base}/fails/", total=10.0)
            client = app.http_client
            await app.stop()  # closes the client it made; the next use makes another
            assert client.closed and app.http_client is not client
            await app.http_client.close()
        return [first, second]

    assert asyncio.run(main()) == [b'{"test":"t-1"}', b'{"test":null}']
