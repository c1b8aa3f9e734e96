"""The view cache (Faust's ``faust.web.cache.Cache``): keep a view's answer for a while.

::

    blueprint = web.Blueprint("users")
    cache = blueprint.cache(timeout=300.0)      # or web.Cache(timeout=..., key_prefix=...)

    @blueprint.route("/{user_id}/", name="detail")
    class UserDetail(web.View):
        @cache.view(timeout=10.0)
        async def get(self, request, user_id):
            return self.json(...)

As in Faust:

- Only ``GET`` and ``HEAD`` requests are answered from the cache (Faust
  decorates any method but keys every one as ``GET``, so a cached ``post``
  returned the ``GET`` answer; here other methods run the view every time).
  A ``HEAD`` finds what a ``GET`` of the URL left, else what a ``HEAD`` did.
- Only answers with status 200 are kept; errors the view raises are not.
- The key is the method and the URL as requested (path and query string,
  percent-encoded) under ``key_prefix`` (a blueprint's cache: the
  blueprint's name), and the request's headers too with
  ``include_headers=True``. A cache hit returns the kept status, headers and
  body; ``Cache-Control`` and the like are neither read nor written.
- ``timeout`` (seconds or a ``timedelta``; ``view(timeout=)`` over the
  cache's) is how long an entry lives, by the event loop's clock (virtual
  under the simulator); None keeps it until the worker stops.
- Entries are in ``app.cache`` (the ``cache`` setting, ``memory://``), or
  in ``backend=``: a ``cache`` URL, a backend class, or a backend. A backend
  raising ``CacheUnavailable`` makes the view run as on a miss.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import weakref
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from detstream.errors import InvalidArgument

from .cache_backends import CacheBackend, CacheUnavailable, backend_for_url, check_cache_url
from .views import Request, Response, View

__all__ = ["Cache"]

log = logging.getLogger(__name__)

#: what a cached view method is: ``async def get(self, request, **params)``.
ViewMethod = Callable[..., Awaitable[Any]]
#: what ``backend=`` takes.
BackendArg = str | type[CacheBackend] | CacheBackend | None
#: the request methods answered from the cache.
CACHED_METHODS = ("GET", "HEAD")


def _seconds(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise InvalidArgument(f"{what} must be seconds (a number >= 0 or a timedelta) or None, "
                              f"got {value!r}")
    return float(value)


def _check_backend(backend: Any) -> BackendArg:
    if backend is None or isinstance(backend, CacheBackend):
        return backend
    if isinstance(backend, str):
        return check_cache_url(backend)
    if isinstance(backend, type) and issubclass(backend, CacheBackend):
        return backend
    raise InvalidArgument(f"cache backend must be a cache URL ('memory://'), a CacheBackend "
                          f"class or instance, or None for app.cache; got {backend!r}")


class Cache:
    """Caches the answers of the view methods ``view()`` decorates (see the module doc)."""

    ident = "detstream.web.cache.view"

    def __init__(self, timeout: float | timedelta | None = None, include_headers: bool = False,
                 key_prefix: str | None = None, backend: BackendArg = None) -> None:
        self.timeout = _seconds(timeout, "cache timeout")
        self.include_headers = include_headers
        self.key_prefix = key_prefix or ""
        self.backend = _check_backend(backend)
        #: a backend made from a URL or class, one per app (each worker its own).
        self._backends: weakref.WeakKeyDictionary[Any, CacheBackend] = weakref.WeakKeyDictionary()

    def view(self, timeout: float | timedelta | None = None, include_headers: bool = False,
             key_prefix: str | None = None) -> Callable[[ViewMethod], ViewMethod]:
        """Decorate a view method (``get``) or a function view to answer from this cache."""
        seconds = _seconds(timeout, "cache.view(timeout=)")
        with_headers = include_headers or self.include_headers

        def decorate(fun: ViewMethod) -> ViewMethod:
            @functools.wraps(fun)
            async def cached(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
                method = request.method.upper()
                if method not in CACHED_METHODS:
                    return await fun(view, request, *args, **kwargs)
                keys = [self.key_for_request(request, key_prefix, "GET", with_headers)]
                if method == "HEAD":  # a GET's answer serves a HEAD, else a HEAD's own
                    keys.append(self.key_for_request(request, key_prefix, "HEAD", with_headers))
                backend = self._backend(view)
                for key in keys:
                    hit = await self.get_view(key, view, backend)
                    if hit is not None:
                        log.debug("cached answer for %s %s (%s)", method, request.path, key)
                        return hit
                response = await fun(view, request, *args, **kwargs)
                if self.can_cache_response(request, response):
                    await self.set_view(keys[-1], view, response, seconds, backend)
                return response

            return cached

        return decorate

    def _backend(self, view: View) -> CacheBackend:
        backend = self.backend
        if backend is None:
            return view.app.cache
        if isinstance(backend, CacheBackend):
            return backend
        made = self._backends.get(view.app)
        if made is None:
            made = backend_for_url(view.app, backend) if isinstance(backend, str) \
                else backend(view.app)
            self._backends[view.app] = made
        return made

    async def get_view(self, key: str, view: View,
                       backend: CacheBackend | None = None) -> Response | None:
        """The kept answer under ``key``, or None (also when the backend is unavailable)."""
        backend = backend or self._backend(view)
        try:
            payload = await backend.get(key)
        except CacheUnavailable:
            return None
        return None if payload is None else view.bytes_to_response(payload)

    async def set_view(self, key: str, view: View, response: Response,
                       timeout: float | None = None, backend: CacheBackend | None = None) -> None:
        """Keep ``response`` under ``key`` for ``timeout`` seconds (else the cache's timeout)."""
        backend = backend or self._backend(view)
        seconds = timeout if timeout is not None else self.timeout
        try:
            await backend.set(key, view.response_to_bytes(response), seconds)
        except CacheUnavailable:
            pass

    def can_cache_response(self, request: Request, response: Any) -> bool:
        """Faust's rule: only a 200 answer is kept."""
        return isinstance(response, Response) and response.status == 200

    def key_for_request(self, request: Request, prefix: str | None = None,
                        method: str | None = None, include_headers: bool = False) -> str:
        """``{ident}.{prefix}.{method}.{url digest}.{headers digest}`` for ``request``."""
        url = request.raw_path + (f"?{request.query_string}" if request.query_string else "")
        headers = sorted(request.headers.items()) if include_headers else []
        context = "\n".join(f"{k.lower()}: {v}" for k, v in headers)
        return ".".join([
            self.ident, self.key_prefix if prefix is None else prefix,
            method or request.method, _digest(url), _digest(context),
        ])

    def __repr__(self) -> str:
        return f"<Cache prefix={self.key_prefix!r} timeout={self.timeout!r}>"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()[:32]
