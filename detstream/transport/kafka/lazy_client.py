"""A client started on first use, once, however many callers ask for it at the same time.

The admin client and the log-end reader are made when first needed. Made
by ``if self.client is None: self.client = await start()``, two requests
that arrive together (a worker's start creates its topics concurrently)
each started one, and the one overwritten was never closed: its metadata
task and its connection ran on after the App stopped, one pair per worker
start. The simulator's ``stopped-app-idle`` check found it under
``--driver aiokafka`` (two admin clients per incarnation of word_count).

Here every caller awaits the one start in flight; ``take`` (for the owner's
stop) cancels a start still in flight, whose client ``start_client`` then
closes, so nothing started for a stopped owner outlives it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

__all__ = ["LazyClient"]

C = TypeVar("C")


class LazyClient(Generic[C]):
    """The client ``start()`` makes, made on the first ``get`` and shared from then on."""

    def __init__(self, start: Callable[[], Awaitable[C]]) -> None:
        self._start = start
        #: the started client (None: not started, or taken by ``take``).
        self.client: C | None = None
        self._starting: asyncio.Future[C] | None = None

    async def get(self) -> C:
        """The client; the first call starts it, calls meanwhile wait for that start.

        A caller cancelled while it waits does not cancel the start the
        others wait for. A start that fails fails every waiter, and the next
        call starts again.
        """
        if self.client is not None:
            return self.client
        starting = self._starting
        if starting is None:
            starting = self._starting = asyncio.ensure_future(self._started())
            starting.add_done_callback(_retrieve)
        return await asyncio.shield(starting)

    async def _started(self) -> C:
        try:
            client = await self._start()
        finally:
            self._starting = None
        self.client = client  # in the step the start ends: ``take`` never misses it
        return client

    async def take(self) -> C | None:
        """For the owner's stop: the client to close (None if none), and no start goes on.

        A start in flight is cancelled and awaited (its client is closed by
        the start itself). The caller's own cancellation propagates.
        """
        starting = self._starting
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.wait({starting})
        client, self.client = self.client, None
        return client


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A failed start every waiter gave up on logs no "exception was never retrieved"."""
    if not future.cancelled():
        future.exception()
