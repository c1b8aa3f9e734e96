"""Closing aiokafka clients within a bound, also when the broker is unreachable.

A graceful ``stop()`` of an aiokafka client talks to the broker: the
producer delivers what it buffered (retrying until ``producer_request_timeout``,
20 minutes by default), the consumer leaves its group. With the broker
unreachable that does not finish in any useful time, and aiokafka 0.14's
consumer ``stop()`` even raises a ``CancelledError`` that is not a
cancellation of ours: its fetcher awaits its own fetch task, cancelled while
that task sleeps in its retry backoff (``Fetcher.close``), and the rest of the
client is then never closed. A worker stopped by TERM meanwhile used to exit
1 with that raw traceback and "Unclosed AIOKafkaProducer".

``stop_client`` runs the graceful stop; past ``budget`` seconds (what is left
of the worker's shutdown timeout, ``App.stop_budget``), when it fails, or
when it raises that stray ``CancelledError``, it closes the client's tasks
and connections without waiting for the broker. A cancellation of the caller
still propagates, after the forced close. This module does not import
aiokafka: it reaches the clients' tasks by attribute, and does nothing for
an attribute that is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

log = logging.getLogger("detstream.transport.kafka.driver")


async def stop_client(
    what: str,
    graceful: Callable[[], Awaitable[Any]],
    force: Callable[[], Awaitable[Any]],
    budget: float | None,
) -> None:
    """``await graceful()`` for at most ``budget`` seconds (None: no bound), else ``await force()``."""
    task = asyncio.ensure_future(graceful())
    try:
        done, _ = await asyncio.wait({task}, timeout=budget)
    except asyncio.CancelledError:
        await _finish(task)
        await _quietly(what, force)
        raise
    if not done:
        log.warning(
            "%s: %s (is the broker reachable?): closing it without waiting for the broker",
            what, f"still stopping after {budget:.1f}s" if budget else "no time left to stop",
        )
        await _finish(task)
        await _quietly(what, force)
        return
    if task.cancelled() or task.exception() is not None:
        reason = "CancelledError" if task.cancelled() else repr(task.exception())
        log.warning("%s did not stop cleanly (%s): closing its connections", what, reason)
        await _quietly(what, force)


async def force_close_consumer(consumer: Any) -> None:
    """Stop an ``AIOKafkaConsumer``'s background tasks and close its connections."""
    coordinator = getattr(consumer, "_coordinator", None)
    fetcher = getattr(consumer, "_fetcher", None)
    tasks = [
        getattr(coordinator, "_coordination_task", None),
        getattr(coordinator, "_heartbeat_task", None),
        getattr(coordinator, "_commit_refresh_task", None),
        getattr(coordinator, "_reset_committed_task", None),
        getattr(fetcher, "_fetch_task", None),
        *getattr(fetcher, "_pending_tasks", ()),
    ]
    await _cancel_all(tasks)
    await _cancel_all(_tasks_of(coordinator, fetcher))  # requests in flight (offset lookups, ...)
    client = getattr(consumer, "_client", None)
    if client is not None:
        await client.close()


async def force_close_producer(producer: Any) -> None:
    """Stop an ``AIOKafkaProducer``'s sender without delivering what it buffered; close it."""
    sender = getattr(producer, "_sender", None)
    # The sender's routine, cancelled, waits for its requests in flight, which retry until
    # the delivery timeout: they are cancelled with it (else they ran on after the stop).
    await _cancel_all([getattr(sender, "sender_task", None), *_tasks_of(sender)])
    client = getattr(producer, "client", None)
    if client is not None:
        await client.close()


def _tasks_of(*owners: Any) -> list[asyncio.Task[Any]]:
    """The running loop's unfinished tasks that run a method of one of ``owners``.

    aiokafka keeps some of its request tasks in local variables only (the
    sender's produce and transaction requests, the fetcher's offset
    lookups): a forced close finds them by the object their coroutine runs on.
    """
    wanted = {id(owner) for owner in owners if owner is not None}
    found = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if frame is not None and not task.done() and id(frame.f_locals.get("self")) in wanted:
            found.append(task)
    return found


async def _cancel_all(tasks: Iterable[Any]) -> None:
    pending = [t for t in tasks if isinstance(t, asyncio.Future) and not t.done()]
    for task in pending:
        task.cancel()
    for task in pending:
        await _finish(task)


#: how long a cancelled client task may take to end before it is left behind (seconds).
CANCEL_WAIT = 2.0


async def _finish(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` if needed and wait (bounded) for it, whatever it raises.

    The caller's own cancellation propagates.
    """
    if not task.done():
        task.cancel()
    try:
        await asyncio.wait({task}, timeout=CANCEL_WAIT)
    finally:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" at exit


async def _quietly(what: str, force: Callable[[], Awaitable[Any]]) -> None:
    with contextlib.suppress(Exception):
        await force()
    log.debug("%s closed", what)
