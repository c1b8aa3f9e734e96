"""The ``redis://`` cache backend (``cache`` setting, ``app.cache``, ``app.cache.client``).

redis-py is optional: what needs it is skipped without it. No Redis server
runs here: a fake client stands in for one, and a closed port for one that
is down.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

import detstream
from detstream import web
from detstream.errors import ImproperlyConfigured
from detstream.web.cache_backends import CacheUnavailable, RedisCacheBackend
from sim.testing import simulate


class FakeRedis:
    """What the backend calls of a ``redis.asyncio.Redis``, with expiry read from ``px``."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.closed = False

    async def get(self, key: str) -> bytes | None:
        self.calls.append(("get", key))
        return self.values.get(key)

    async def set(self, key: str, value: bytes, px: int | None = None) -> None:
        self.calls.append(("set", key, px))
        self.values[key] = value

    async def delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        self.values.pop(key, None)

    async def aclose(self) -> None:
        self.closed = True


def test_a_redis_url_makes_a_redis_backend_which_needs_redis_py_only_when_used(monkeypatch):
    monkeypatch.setenv("CACHE_URL", "redis://cache-host:6379/2")
    app = detstream.App("redis-url", broker="sim://")
    assert app.conf.cache == "redis://cache-host:6379/2"
    assert isinstance(app.cache, RedisCacheBackend) and app.cache.url == "redis://cache-host:6379/2"
    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImproperlyConfigured, match="needs redis-py: pip install redis"):
        app.cache.client  # noqa: B018 - the property is the test


def test_get_set_delete_go_to_the_client_with_the_timeout_in_milliseconds():
    app = detstream.App("redis-fake", broker="sim://", cache="redis://localhost")
    fake = FakeRedis()
    app.cache._client = fake  # type: ignore[attr-defined]

    async def main() -> list[Any]:
        cache = app.cache
        await cache.set("a", b"1", timeout=2.5)
        await cache.set("b", b"2")
        await cache.set("c", b"3", timeout=0.0001)
        got = [await cache.get("a"), await cache.get("nothing")]
        await cache.delete("a")
        await app.stop()  # closes the client it made; the next use makes another
        return got

    assert asyncio.run(main()) == [b"1", None]
    assert fake.calls == [("set", "a", 2500), ("set", "b", None), ("set", "c", 1), ("get", "a"),
                          ("get", "nothing"), ("delete", "a")]
    assert fake.closed and app.cache._client is None  # type: ignore[attr-defined]


def test_a_cached_view_over_a_fake_redis_keeps_its_answer_there():
    app = detstream.App("redis-view", broker="sim://", cache="redis://localhost")
    fake = FakeRedis()
    app.cache._client = fake  # type: ignore[attr-defined]
    items = web.Blueprint("items")
    cache = items.cache(timeout=30.0)
    runs: list[str] = []

    @items.route("/{item_id}/", name="item")
    class Item(web.View):
        @cache.view()
        async def get(self, request: web.Request, item_id: str) -> web.Response:
            runs.append(item_id)
            return self.json({"id": item_id, "run": len(runs)})

    app.web.blueprints.add("/items/", items)

    async def main() -> list[Any]:
        client = app.web.client()
        return [(await client.get(f"/items/{i}/")).json() for i in ("x", "x", "y")]

    assert asyncio.run(main()) == [{"id": "x", "run": 1}, {"id": "x", "run": 1}, {"id": "y", "run": 2}]
    assert [call[2] for call in fake.calls if call[0] == "set"] == [30_000, 30_000]


def test_a_redis_that_does_not_answer_is_unavailable_and_a_cached_view_runs_its_view():
    pytest.importorskip("redis")
    app = detstream.App("redis-down", broker="sim://", cache="redis://127.0.0.1:1/0")
    runs: list[int] = []
    cache = web.Cache(timeout=10.0)

    @app.page("/count/")
    class Count(web.View):
        @cache.view()
        async def get(self, request: web.Request) -> web.Response:
            runs.append(1)
            return self.json({"runs": len(runs)})

    async def main() -> list[Any]:
        with pytest.raises(CacheUnavailable, match="redis://127.0.0.1:1/0: get failed"):
            await app.cache.get("k")
        client = app.web.client()
        answers = [(await client.get("/count/")).json() for _ in range(2)]
        await app.cache.close()
        return answers

    assert asyncio.run(main()) == [{"runs": 1}, {"runs": 2}]


def test_a_rediscluster_url_makes_redis_pys_cluster_client():
    pytest.importorskip("redis")
    from redis.asyncio import Redis, RedisCluster

    app = detstream.App("redis-cluster", broker="sim://", cache="rediscluster://10.0.0.1:7000")
    assert isinstance(app.cache.client, RedisCluster)  # type: ignore[attr-defined]
    single = detstream.App("redis-single", broker="sim://", cache="redis://10.0.0.1:6379/3")
    assert isinstance(single.cache.client, Redis)  # type: ignore[attr-defined]


def test_under_the_simulator_a_redis_cache_is_unavailable_sockets_being_refused():
    pytest.importorskip("redis")

    async def main(cluster: Any) -> str:
        app = detstream.App("redis-sim", broker="sim://", cache="redis://localhost:6379")
        try:
            await app.cache.get("k")
        except CacheUnavailable as exc:
            return str(exc)
        finally:
            await app.cache.close()
        return "answered"

    assert "redis://localhost:6379: get failed" in simulate(main, seed=1)
