"""Stopping several things where one failing must not leave the others running.

An app stops its consumer, agents, producer and clients; a worker stops its
apps and services. A step that raises is logged and the rest still stop
(an unclosed client keeps connections and tasks alive); the first failure
is raised at the end, so the caller still learns that the stop was not clean.
"""

from __future__ import annotations

import asyncio
import contextlib
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


#: how a stop's wait for the broker ended (``finish_unless_in_doubt``).
DONE, TIMED_OUT, IN_DOUBT = "done", "timed-out", "in-doubt"


async def finish_unless_in_doubt(
    work: Awaitable[object], budget: float | None, in_doubt: Callable[[], bool], poll: float,
) -> str:
    """Await ``work`` for at most ``budget`` seconds (None: no bound); give it up sooner as
    soon as ``in_doubt()`` holds, looked at every ``poll`` seconds. Returns how it ended.

    A stopping member cut off from its group coordinator must not wait for
    its writes to land: the group may give its partitions to another member
    a session timeout after the last heartbeat it heard, and a write landing
    after the new owner's would undo it. The doubt (``Consumer.
    membership_in_doubt``) begins half a session before that, which leaves
    the stop the other half to close its producer as an abort. Work given up
    is cancelled; an exception of ``work`` propagates.
    """
    task = asyncio.ensure_future(work)
    try:
        return await _race(task, budget, in_doubt, poll)
    except asyncio.CancelledError:  # the stop itself was cancelled: the work goes with it
        await _cancelled(task)
        raise


async def _race(
    task: asyncio.Future[object], budget: float | None, in_doubt: Callable[[], bool], poll: float,
) -> str:
    loop = asyncio.get_running_loop()
    deadline = None if budget is None else loop.time() + budget
    while not in_doubt():
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            await _cancelled(task)
            return TIMED_OUT
        done, _ = await asyncio.wait({task}, timeout=poll if left is None else min(poll, left))
        if done:
            task.result()
            return DONE
    await _cancelled(task)
    return IN_DOUBT


async def _cancelled(task: asyncio.Future[object]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
