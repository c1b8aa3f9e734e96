"""Where cached view responses are kept: ``app.cache``, chosen by the ``cache`` setting's URL.

Faust's backends, by scheme:

- ``memory://`` (the default): a dict in the worker's process, one per App
  (so each simulated worker has its own, as each real worker would).
- ``redis://host:port/db`` (and ``rediss://``, ``unix://``), and
  ``rediscluster://host:port``: Redis through redis-py's asyncio client, an
  optional dependency (``pip install redis``, or ``detstream[redis]``),
  imported when the cache is first used. ``app.cache.client`` is the Redis
  client itself, for what else Redis does (Faust's LiveCheck example calls
  ``app.cache.client.sadd``).

Another scheme is refused when the App is built, naming those.

**Time.** A memory entry's age is read from the running event loop's clock
(``loop.time()``), never the wall clock: under the simulator it is virtual,
so expiry is part of a seeded run and replays exactly. A test may pass
``clock=`` to drive expiry by hand. Redis expires its entries itself.

**Failures.** A backend that cannot answer (Redis down, or refused a socket
under the simulator) raises :class:`CacheUnavailable`; a cached view then
runs its view as on a miss.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from detstream.errors import DetstreamError, ImproperlyConfigured

__all__ = ["BACKENDS", "CacheBackend", "CacheUnavailable", "MemoryCacheBackend",
           "RedisCacheBackend", "backend_for_url", "check_cache_url"]


class CacheUnavailable(DetstreamError):
    """The cache cannot be used now; a cached view then answers as if nothing were cached."""


def loop_time() -> float:
    """The running loop's clock: monotonic in production, virtual under the simulator."""
    return asyncio.get_running_loop().time()


class CacheBackend:
    """What a cache backend does (Faust's ``CacheBackendT``): bytes in, bytes out, by key.

    ``timeout`` is seconds until the entry is gone; None keeps it. A backend
    that cannot answer raises :class:`CacheUnavailable`.
    """

    Unavailable = CacheUnavailable

    def __init__(self, app: Any, url: str = "memory://") -> None:
        self.app = app
        self.url = url

    async def get(self, key: str) -> bytes | None:
        raise NotImplementedError

    async def set(self, key: str, value: bytes, timeout: float | None = None) -> None:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections; the app calls it when it stops (the next use reconnects)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


class MemoryCacheBackend(CacheBackend):
    """Entries in a dict of this process; expired ones are dropped when read."""

    def __init__(self, app: Any, url: str = "memory://", *,
                 clock: Callable[[], float] = loop_time) -> None:
        super().__init__(app, url)
        self.clock = clock
        #: key -> (value, loop time it expires at, or None).
        self._entries: dict[str, tuple[bytes, float | None]] = {}

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and self.clock() >= expires:
            del self._entries[key]
            return None
        return value

    async def set(self, key: str, value: bytes, timeout: float | None = None) -> None:
        expires = None if timeout is None else self.clock() + timeout
        self._entries[key] = (bytes(value), expires)

    async def delete(self, key: str) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class RedisCacheBackend(CacheBackend):
    """Entries in Redis, through redis-py's asyncio client (``client``, made on first use).

    ``rediscluster://`` URLs talk to a Redis Cluster (redis-py's ``RedisCluster``).
    Redis' connection errors and timeouts raise :class:`CacheUnavailable`.
    """

    def __init__(self, app: Any, url: str = "redis://localhost:6379") -> None:
        super().__init__(app, url)
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The ``redis.asyncio`` client for the URL (Faust's ``app.cache.client``), made once."""
        if self._client is None:
            self._client = _redis_client(self.url)
        return self._client

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", key)
        return None if value is None else bytes(value)

    async def set(self, key: str, value: bytes, timeout: float | None = None) -> None:
        expire_ms = None if timeout is None else max(int(timeout * 1000), 1)
        await self._call("set", key, bytes(value), px=expire_ms)

    async def delete(self, key: str) -> None:
        await self._call("delete", key)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        client = self.client
        try:
            return await getattr(client, command)(*args, **kwargs)
        except _unavailable_errors() as exc:
            raise CacheUnavailable(f"cache {self.url}: {command} failed: {exc!r}") from exc


def _redis_client(url: str) -> Any:
    """A redis-py asyncio client for ``url``; a clear error when redis-py is not installed."""
    try:
        aioredis = importlib.import_module("redis.asyncio")
    except ImportError:
        raise ImproperlyConfigured(
            f"cache {url!r} needs redis-py: pip install redis (or pip install 'detstream[redis]'); "
            f"or use cache='memory://'"
        ) from None
    scheme, sep, rest = url.partition("://")
    if scheme.lower() == "rediscluster":
        return aioredis.RedisCluster.from_url("redis" + sep + rest)
    return aioredis.Redis.from_url(url)


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """Redis' errors that mean "no answer now", not "a wrong call"."""
    try:
        exceptions = importlib.import_module("redis.exceptions")
    except ImportError:  # a client given by hand, without redis-py
        return ()
    return (exceptions.ConnectionError, exceptions.TimeoutError, exceptions.BusyLoadingError)


#: URL scheme -> backend class.
BACKENDS: dict[str, type[CacheBackend]] = {
    "memory": MemoryCacheBackend,
    "redis": RedisCacheBackend,
    "rediss": RedisCacheBackend,
    "unix": RedisCacheBackend,
    "rediscluster": RedisCacheBackend,
}


def check_cache_url(url: Any) -> str:
    """``url`` if its scheme names a backend detstream has, else a clear error."""
    if not isinstance(url, str):
        raise ImproperlyConfigured(f"setting 'cache' must be a URL str such as 'memory://', "
                                   f"got {type(url).__name__} {url!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in BACKENDS:
        supported = ", ".join(f"{name}://" for name in BACKENDS)
        raise ImproperlyConfigured(
            f"setting 'cache'={url!r}: detstream's cache supports {supported} only; use "
            f"cache='memory://' (each worker caches for itself) or a Redis URL"
        )
    return url


def backend_for_url(app: Any, url: str) -> CacheBackend:
    """A new backend for ``app`` from a ``cache`` URL (checked by :func:`check_cache_url`)."""
    check_cache_url(url)
    return BACKENDS[urlsplit(url).scheme.lower()](app, url)
