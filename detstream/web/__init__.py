"""Web views (``@app.page``) and the worker's web server (Faust's ``faust.web``).

Define a view with a function, as in the Faust guide; ``web`` is the view,
with the response helpers ``web.json``, ``web.text``, ``web.html``,
``web.bytes``, ``web.notfound`` and ``web.error``::

    @app.page("/path/to/view/")
    async def myview(web, request):
        return web.json({"foo": request.query.get("foo")})

    @app.page("/count/{word}/")            # {param}s come as keyword arguments
    async def count(web, request, word):
        return web.json({word: word_counts[word]})

or with a View subclass, one method per HTTP method::

    from detstream import web

    @app.page("/orders/{id}/", name="order")
    class Order(web.View):
        async def get(self, request, id):
            return self.json({"id": id})

        async def post(self, request, id):
            body = await request.json()      # malformed JSON: 400
            return self.json({"id": id, "got": body}, status=201)

``request`` has ``method``, ``path``, ``query`` (a multidict:
``request.query["foo"]``, ``request.query.getall("tag")``), ``match_info``,
``headers`` and ``await request.json()``/``text()``/``read()``. Raise
``web.NotFound(...)`` (404), ``web.ValidationError(...)`` (400) or any
``web.WebError(detail, code=...)`` to answer ``{"error": detail}``. Any other
exception gives a 500 JSON answer naming its type (its message too when the
``debug`` setting is on), is logged, and the worker keeps running. A view
that returns nothing answers 204.

**Serving.** ``detstream worker`` serves the pages with aiohttp on
``web_bind:web_port`` (default ``0.0.0.0:6066``; ``--web-port/-p``,
``--web-bind/-b``, ``--web-host/-h`` for the advertised name;
``--without-web`` or ``web_enabled=False`` to turn it off). Every worker also
serves read-only endpoints: ``/`` (app id, status), ``/assignment/``,
``/table/``, ``/table/{name}/`` and ``/table/{name}/{key}/`` (this worker's
local table data; see ``detstream.web.builtins``), and for orchestrators and
monitoring ``/health/`` (liveness), ``/ready/`` (readiness; see
``detstream.web.probes``) and ``/metrics`` (Prometheus' text format; see
``detstream.web.metrics``). Pages defined by the app take precedence over these.

**Routing to the worker holding a key.** A table partition lives on one
worker; ``@app.table_route(table, match_info="word")`` under ``@app.page``
answers a request on the worker holding the key, proxying it there from any
other worker (``topic_route`` does the same for a topic's keys). See
``detstream.web.router``.

**Blueprints, the view cache, CORS, static files** (Faust's):
``web.Blueprint(name)`` collects pages (``@bp.route``), static files
(``bp.static``) and a cache (``bp.cache(timeout=...)``, whose ``.view()``
decorates a view method) and puts them on an app with
``bp.register(app, url_prefix=...)`` or ``app.web.blueprints.add(prefix, bp)``
(``detstream.web.blueprints``). Cached answers are kept in ``app.cache``
(the ``cache`` setting, ``memory://``; ``detstream.web.cache``). Pages get
CORS from ``cors_options=`` on ``@app.page``/``bp.route`` and the
``web_cors_options`` setting (``detstream.web.cors``).

**Middlewares, URLs, the HTTP client.** ``app.web.middlewares`` wrap every
view, aiohttp's way: ``async def mw(request, handler)`` returns ``await
handler(request)`` or an answer of its own; the first one is outermost, and
the in-process client goes through them as the server does.
``view.url_for(name, **params)`` is a view's path (``view.path_for`` too),
``view.url_for(name, "http://host:6066")`` its URL under that base.
``app.http_client`` is an aiohttp ``ClientSession`` whose requests carry the
headers of the ``app.web.client_headers`` sources (``server.fetch`` sends one
and raises ``HTTPRequestError`` on failure).

**Testing, and under simulation.** ``detstream sim`` refuses real sockets, so
nothing is served there. Instead, call the views in-process, through the same
routing and error handling as the server, in a unit test or inside
``sim.testing.simulate``::

    client = app.web.client()
    response = await client.get("/path/to/view/?foo=1")
    assert response.status == 200 and response.json() == {"foo": "1"}
    response = await client.post("/orders/7/", json={"qty": 2})
    response.text, response.headers, response.body

This package imports no aiohttp; ``server.py`` does, when a server starts.
"""

from __future__ import annotations

from .blueprints import Blueprint, BlueprintManager
from .cache import Cache
from .cache_backends import CacheBackend, CacheUnavailable, MemoryCacheBackend
from .cors import ResourceOptions
from .router import Router, ServiceUnavailable
from .routes import Client, Route, Web
from .views import (
    MethodNotAllowed,
    NotFound,
    ParseError,
    Request,
    Response,
    ServerError,
    ValidationError,
    View,
    WebError,
)

__all__ = [
    "Blueprint",
    "BlueprintManager",
    "Cache",
    "CacheBackend",
    "CacheUnavailable",
    "Client",
    "MemoryCacheBackend",
    "MethodNotAllowed",
    "NotFound",
    "ParseError",
    "Request",
    "ResourceOptions",
    "Response",
    "Route",
    "Router",
    "ServerError",
    "ServiceUnavailable",
    "ValidationError",
    "View",
    "Web",
    "WebError",
]
