"""An admin request asked again while the broker it went to is unreachable.

aiokafka's admin client sends its metadata requests to a random known
broker and raises at once (``NodeNotReadyError``) when that one is down: a
crashed broker stays in the metadata until the controller notices, so a
worker starting during a broker restart failed its start. It sends
CreateTopics to the controller, and raises when that connection closes
mid-request (the controller crashed, a reset) or the request times out: a
worker declaring its topics then failed its start too. Both drivers send
such requests through ``to_any_broker`` or ``to_the_controller``, each
naming the errors that mean "that broker is unreachable" (aiokafka's, or the
simulated cluster's), so the retry the engine relies on is the same code
under ``detstream sim`` and in production.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant

__all__ = ["ADMIN_GIVES_UP", "ADMIN_RETRY_BACKOFF", "to_any_broker", "to_the_controller"]

T = TypeVar("T")

log = logging.getLogger(__name__)

#: seconds between an admin request that found its broker unreachable and the next try.
ADMIN_RETRY_BACKOFF = 0.1

#: re-opens the wire's finds (word_count, chaos seed 2; global_lookup, chaos seed 31): an
#: admin request that met a down broker or a closed controller connection failed the
#: worker's start instead of asking again.
ADMIN_GIVES_UP = register_mutant(
    "admin-gives-up-on-a-down-broker",
    "an admin request that finds its broker unreachable fails at once (the worker's start fails)",
)


async def to_any_broker(
    send: Callable[[], Awaitable[T]], *, unreachable: tuple[type[BaseException], ...],
    timeout: float, what: str,
) -> T:
    """``await send()``, again after ``ADMIN_RETRY_BACKOFF`` while it raises ``unreachable``.

    Each try picks its broker afresh (the client's own random choice), so a
    later one reaches a live broker. Past ``timeout`` seconds the last error
    is raised.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await send()
        except unreachable as exc:
            if loop.time() >= deadline or mutant_on(ADMIN_GIVES_UP):
                raise
            log.debug("admin request %s failed (%r); asking again", what, exc)
            await asyncio.sleep(ADMIN_RETRY_BACKOFF)


async def to_the_controller(
    send: Callable[[], Awaitable[T]], *, unreachable: tuple[type[BaseException], ...],
    timeout: float, what: str,
) -> T:
    """A request only the controller answers (CreateTopics), asked again as ``to_any_broker`` asks.

    Each try goes to the controller the client's metadata names then (a
    crashed one is replaced). A create whose first try the controller
    applied before its answer was lost finds the topic there on the next:
    "already exists", which the caller takes as created before.
    """
    return await to_any_broker(send, unreachable=unreachable, timeout=timeout, what=what)
