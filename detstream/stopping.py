"""Stopping several things where one failing must not leave the others running.

An app stops its consumer, agents, producer and clients; a worker stops its
apps and services. A step that raises is logged and the rest still stop
(an unclosed client keeps connections and tasks alive); the first failure
is raised at the end, so the caller still learns that the stop was not clean.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable


async def stop_each(steps: Iterable[tuple[str, Callable[[], Awaitable[object]]]],
                    log: logging.Logger) -> None:
    """Await every ``(what, stop)`` in order; log failures, raise the first one at the end."""
    failure: Exception | None = None
    for what, stop in steps:
        try:
            await stop()
        except Exception as exc:
            log.error("stopping %s failed: %r; stopping the rest", what, exc, exc_info=exc)
            failure = failure or exc
    if failure is not None:
        raise failure
