"""Headers on the requests of every aiohttp ``ClientSession`` of the process (LiveCheck's patch).

Faust's LiveCheck patches aiohttp so that an HTTP request made while a test
is current carries the test's headers, whichever session makes it. Faust
replaces the class ``aiohttp.client.ClientSession`` by a subclass, which a
project's ``from aiohttp import ClientSession`` (bound before the patch, or
to the package's own name) never sees. Here the class's ``__init__`` is
wrapped instead: every session made after ``add_session_headers`` ran, by
any name of the class or a subclass, gets one more ``TraceConfig``, whose
request-start hook adds the headers each registered source returns then (a
source reads its context: the current test of the request's task).

Sessions made before the patch are left as they are, as in Faust. This is
the one module besides ``server`` that imports aiohttp, and only when a
source is added (the LiveCheck app is made).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["HeaderSource", "add_session_headers"]

#: a source of headers: called as each request starts, in that request's task.
HeaderSource = Callable[[], Mapping[str, str]]

#: the class attribute that marks ``aiohttp.ClientSession`` as patched (once per process).
_PATCHED = "_detstream_session_headers"

_sources: list[HeaderSource] = []


def add_session_headers(source: HeaderSource) -> None:
    """Make every aiohttp session made from now on add ``source()``'s headers to its requests.

    Idempotent: a source added twice is asked once, and the class is patched
    once per process, however many LiveCheck apps are made.
    """
    if source not in _sources:
        _sources.append(source)
    _patch_client_session()


def _patch_client_session() -> None:
    import aiohttp

    session_class = aiohttp.ClientSession
    if session_class.__dict__.get(_PATCHED):
        return
    original = session_class.__init__

    @functools.wraps(original)
    def __init__(
        self: Any, *args: Any, trace_configs: list[Any] | None = None, **kwargs: Any
    ) -> None:
        original(self, *args, trace_configs=[*(trace_configs or ()), _trace_config()], **kwargs)

    session_class.__init__ = __init__  # type: ignore[method-assign]
    setattr(session_class, _PATCHED, True)


def _trace_config() -> Any:
    """A session's own ``TraceConfig`` adding the sources' headers as each request starts."""
    import aiohttp

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(_add_headers)
    return trace


async def _add_headers(session: Any, context: Any, params: Any) -> None:
    for source in _sources:
        params.headers.update(source())
