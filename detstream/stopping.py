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


#: share of the shutdown timeout the graceful part of a stop (final commit, producer
#: flush) may take; the rest is for closing the clients without the broker.
STOP_BUDGET = 0.7
#: ``detstream worker``'s default ``shutdown_timeout`` (s): past it a stop is cancelled.
SHUTDOWN_TIMEOUT = 60.0


def stop_deadline(now: float, shutdown_timeout: float) -> float:
    """The loop time by which an app's graceful stop gives up on the broker (``App.stop_deadline``).

    A stop that waits for an unreachable broker until the shutdown timeout
    is cancelled half way, with clients unclosed (issue 9); giving up at this
    deadline leaves the rest of the timeout to close them.
    """
    return now + STOP_BUDGET * shutdown_timeout
