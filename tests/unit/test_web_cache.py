"""The view cache (``Blueprint.cache``, ``app.cache``): hits, misses and expiry, without sleeping.

Over HTTP on 127.0.0.1 the cache's clock is a :class:`ManualClock` the test
moves; under the simulator it is the virtual loop clock, so expiry is part of
a seeded, replayable run.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

import detstream
from detstream import web
from detstream.config import env_settings
from detstream.errors import ImproperlyConfigured, InvalidArgument
from detstream.web.cache_backends import CacheUnavailable, MemoryCacheBackend
from sim.testing import simulate
from tests.unit.http_helpers import ManualClock, serving


def counting_app(name: str, *, timeout=10.0, clock=None, **settings):
    """An app with a cached ``/items/{id}/`` (GET, POST) counting the view's runs."""
    app = detstream.App(name, broker="sim://", **settings)
    if clock is not None:
        app.__dict__["_cache"] = MemoryCacheBackend(app, clock=clock)
    items = web.Blueprint("items")
    cache = items.cache(timeout=timeout)
    runs: list[str] = []

    @items.route("/{item_id}/", name="item")
    class Item(web.View):
        @cache.view()
        async def get(self, request, item_id):
            runs.append(f"GET {item_id}")
            if item_id == "missing":
                return self.notfound("no such item")
            if item_id == "raises":
                raise web.ValidationError("bad item")
            return self.json({"id": item_id, "run": len(runs), "q": dict(request.query)},
                             headers={"X-Run": str(len(runs))})

        @cache.view()
        async def post(self, request, item_id):
            runs.append(f"POST {item_id}")
            return self.json({"posted": len(runs)})

    items.register(app, url_prefix="/items/")
    return app, runs


def test_hits_misses_and_expiry_over_http_with_a_clock_moved_by_hand():
    clock = ManualClock()
    app, runs = counting_app("cache-http", timeout=10.0, clock=clock)

    async def main():
        async with serving(app) as http:
            first = await http.get("/items/a/")
            again = await http.get("/items/a/")
            other_query = await http.get("/items/a/?v=2")
            other_item = await http.get("/items/b/")
            clock.now += 9.9
            still = await http.get("/items/a/")
            clock.now += 0.1  # 10 s after it was kept: gone
            expired = await http.get("/items/a/")
            refreshed = await http.get("/items/a/")
            return first, again, other_query, other_item, still, expired, refreshed

    first, again, other_query, other_item, still, expired, refreshed = asyncio.run(main())
    assert first.json()["run"] == 1
    assert (again.status, again.json(), again.headers["X-Run"]) == (200, first.json(), "1")
    assert again.headers["Content-Type"] == first.headers["Content-Type"] == \
        "application/json; charset=utf-8"
    assert "Cache-Control" not in again.headers  # Faust's cache writes no HTTP caching headers
    assert other_query.json() == {"id": "a", "run": 2, "q": {"v": "2"}}  # the URL is the key
    assert other_item.json()["run"] == 3
    assert still.json()["run"] == 1
    assert expired.json()["run"] == 4 and refreshed.json()["run"] == 4
    assert runs == ["GET a", "GET a", "GET b", "GET a"]


def test_only_get_and_head_answers_of_status_200_are_kept():
    clock = ManualClock()
    app, runs = counting_app("cache-methods", clock=clock)

    async def main():
        async with serving(app) as http:
            posts = [await http.request("POST", "/items/a/") for _ in range(2)]
            gets = [await http.get(f"/items/{i}/") for i in ("missing", "missing", "raises",
                                                             "raises")]
            head = await http.request("HEAD", "/items/h/")
            head_again = await http.request("HEAD", "/items/h/")
            get_after_head = await http.get("/items/h/")
            head_after_get = await http.request("HEAD", "/items/h/")
            return posts, gets, (head, head_again, get_after_head, head_after_get)

    posts, gets, heads = asyncio.run(main())
    assert [p.json()["posted"] for p in posts] == [1, 2]  # POST is never answered from the cache
    assert [g.status for g in gets] == [404, 404, 400, 400]
    assert runs[:6] == ["POST a", "POST a", "GET missing", "GET missing", "GET raises",
                        "GET raises"]
    head, head_again, get_after_head, head_after_get = heads
    assert [h.status for h in heads] == [200, 200, 200, 200]
    assert head.body == b"" and head_again.headers["X-Run"] == head.headers["X-Run"]
    # a HEAD's answer is kept for HEADs; a GET runs the view and its answer serves both after
    assert runs[6:] == ["GET h", "GET h"]
    assert head_after_get.headers["X-Run"] == get_after_head.headers["X-Run"] == "8"


def test_keys_prefix_headers_and_where_entries_are_kept():
    clock = ManualClock()
    app = detstream.App("cache-keys", broker="sim://")
    app.__dict__["_cache"] = MemoryCacheBackend(app, clock=clock)
    own = MemoryCacheBackend(app, clock=clock)
    bp = web.Blueprint("keys")
    shared = bp.cache()  # key prefix: the blueprint's name; no timeout
    by_header = web.Cache(key_prefix="h", include_headers=True, backend=own)
    runs = {"plain": 0, "header": 0}

    @bp.route("/plain/")
    @shared.view(timeout=timedelta(seconds=5))
    async def plain_view(web, request):  # a function view may be cached too
        runs["plain"] += 1
        return web.json(runs["plain"])

    @bp.route("/header/")
    @by_header.view()
    async def header_view(web, request):
        runs["header"] += 1
        return web.json(runs["header"])

    bp.register(app)

    async def main():
        client = app.web.client()
        plain = [(await client.get("/plain/")).json() for _ in range(2)]
        clock.now += 5
        plain.append((await client.get("/plain/")).json())
        header = [(await client.get("/header/", headers={"X-User": u})).json()
                  for u in ("ann", "ann", "bob")]
        return plain, header

    plain, header = asyncio.run(main())
    assert plain == [1, 1, 2]  # view(timeout=timedelta) over the cache's None
    assert header == [1, 1, 2]  # include_headers: another user, another entry
    assert len(app.cache) == 1 and len(own) == 2
    (key,) = app.cache._entries
    assert key.startswith("detstream.web.cache.view.keys.GET.")


def test_a_backend_url_gives_each_app_its_own_and_an_unavailable_one_means_a_miss():
    class Down(MemoryCacheBackend):
        async def get(self, key):
            raise CacheUnavailable("down")

        async def set(self, key, value, timeout=None):
            raise CacheUnavailable("down")

    runs = []
    by_url, down = web.Cache(backend="memory://"), web.Cache(backend=Down)
    apps = [detstream.App(f"cache-url-{i}", broker="sim://") for i in range(2)]
    for app in apps:
        @app.page("/url/")
        @by_url.view()
        async def url_view(web, request):
            runs.append(web.app.conf.id)
            return web.json(len(runs))

        @app.page("/down/")
        @down.view()
        async def down_view(web, request):
            runs.append("down")
            return web.json(len(runs))

    async def main():
        for app in apps:
            for path in ("/url/", "/url/", "/down/", "/down/"):
                await app.web.client().get(path)

    asyncio.run(main())
    assert runs == ["cache-url-0", "down", "down", "cache-url-1", "down", "down"]


def test_unsupported_backends_and_bad_arguments_are_clear_errors():
    with pytest.raises(ImproperlyConfigured, match=r"'cache'='memcached://localhost'.*supports "
                                                   r"memory://, redis://.*rediscluster:// only"):
        detstream.App("cache-memcached", cache="memcached://localhost")
    with pytest.raises(ImproperlyConfigured, match="supports memory://.* only"):
        web.Blueprint("r").cache(backend="aerospike://")
    with pytest.raises(ImproperlyConfigured, match="must be a URL str"):
        detstream.App("cache-int", cache=3)
    with pytest.raises(ImproperlyConfigured, match="CACHE_URL='mc://x'.*memory://.* only"):
        env_settings(None, {"CACHE_URL": "mc://x"})  # Faust's environment variable
    with pytest.raises(InvalidArgument, match="seconds"):
        web.Blueprint("t").cache(timeout=-1)
    with pytest.raises(InvalidArgument, match="seconds"):
        web.Cache().view(timeout="soon")
    with pytest.raises(InvalidArgument, match="CacheBackend class or instance"):
        web.Cache(backend=dict)
    app = detstream.App("cache-default", broker="sim://")
    assert app.conf.cache == "memory://" and isinstance(app.cache, MemoryCacheBackend)
    assert app.cache is app.cache


def test_expiry_follows_the_virtual_clock_under_the_simulator():
    """No clock is injected: the cache reads the loop's clock, virtual here, so the run replays."""

    def run(seed: int) -> list[tuple[float, int]]:
        app, _ = counting_app(f"cache-sim-{seed}", timeout=30.0)

        async def main(cluster):
            loop = asyncio.get_running_loop()
            start, seen = loop.time(), []
            client = app.web.client()
            for _ in range(8):
                response = await client.get("/items/x/")
                seen.append((round(loop.time() - start, 3), response.json()["run"]))
                await asyncio.sleep(10)  # virtual: no real wait
            return seen

        return simulate(main, seed=seed)

    seen = run(1)
    assert seen == [(0.0, 1), (10.0, 1), (20.0, 1), (30.0, 2), (40.0, 2), (50.0, 2),
                    (60.0, 3), (70.0, 3)]
    assert run(2) == seen
