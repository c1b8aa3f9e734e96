"""Where cached view responses are kept: ``app.cache``, chosen by the ``cache`` setting's URL.

Faust's backends are ``memory://``, ``redis://`` and ``rediscluster://``;
detstream has ``memory://``: a dict in the worker's process, one per App
(so each simulated worker has its own, as each real worker would). Another
scheme is refused when the App is built, saying what is supported.

**Time.** An entry's age is read from the running event loop's clock
(``loop.time()``), never the wall clock: under the simulator it is virtual,
so expiry is part of a seeded run and replays exactly. A test may pass
``clock=`` to drive expiry by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from detstream.errors import DetstreamError, ImproperlyConfigured

__all__ = ["BACKENDS", "CacheBackend", "CacheUnavailable", "MemoryCacheBackend", "backend_for_url",
           "check_cache_url"]


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


#: URL scheme -> backend class.
BACKENDS: dict[str, type[CacheBackend]] = {"memory": MemoryCacheBackend}


def check_cache_url(url: Any) -> str:
    """``url`` if its scheme names a backend detstream has, else a clear error."""
    if not isinstance(url, str):
        raise ImproperlyConfigured(f"setting 'cache' must be a URL str such as 'memory://', "
                                   f"got {type(url).__name__} {url!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme not in BACKENDS:
        supported = ", ".join(f"{name}://" for name in BACKENDS)
        raise ImproperlyConfigured(
            f"setting 'cache'={url!r}: detstream's web view cache supports {supported} only "
            f"(Faust's redis:// and rediscluster:// backends are not implemented); use "
            f"cache='memory://' (each worker caches for itself)"
        )
    return url


def backend_for_url(app: Any, url: str) -> CacheBackend:
    """A new backend for ``app`` from a ``cache`` URL (checked by :func:`check_cache_url`)."""
    check_cache_url(url)
    return BACKENDS[urlsplit(url).scheme.lower()](app, url)
