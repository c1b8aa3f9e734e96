"""A stream's buffer: what its channel or topic delivers, bounded between fetched batches.

The conductor hands every fetched batch of a partition to the buffers of
the streams reading it in one step, with no await between its "is this
partition still ours" check and the last record going in: a rebalance
cannot fall between two records of a batch, so a batch is delivered
under the assignment it was fetched in, or not at all. Back-pressure
(``stream_buffer_maxsize``) therefore acts before the next fetch
(``wait_for_room``), not inside a batch; a buffer may hold up to one
batch more than its bound. In-memory channels put one value at a time and
wait while the buffer is full, as before.

Items leave one at a time (``get``): an agent's ``concurrency`` actors
share one buffer, and each takes the next item when it is ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class SubscriberBuffer(asyncio.Queue[T], Generic[T]):
    """An ``asyncio.Queue`` bounded by ``bound`` for single puts, taking whole batches too.

    Built on an unbounded queue (so ``put_batch`` can never fail) with the
    bound kept here, using only the queue's public methods; ``put_nowait``
    is the unbounded queue's and ignores the bound.
    """

    def __init__(self, bound: int = 0) -> None:
        super().__init__()
        #: items beyond which ``put`` and ``wait_for_room`` wait (0: unbounded).
        self.bound = bound
        self._room_waiters: list[asyncio.Future[None]] = []

    @property
    def maxsize(self) -> int:
        """The bound (the stream's ``maxsize``; the queue underneath is unbounded)."""
        return self.bound

    def at_bound(self) -> bool:
        """Whether ``put`` must wait (``full()`` stays the unbounded queue's: never)."""
        return 0 < self.bound <= self.qsize()

    async def put(self, item: T) -> None:
        await self.wait_for_room()
        self.put_nowait(item)

    def put_batch(self, items: Iterable[T]) -> None:
        """Append ``items`` in order, all in this step, whatever the bound."""
        put = self.put_nowait
        for item in items:
            put(item)

    async def wait_for_room(self) -> None:
        """Return once the buffer is below its bound."""
        while self.at_bound():
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._room_waiters:
                    self._room_waiters.remove(waiter)

    def get_nowait(self) -> T:
        item = super().get_nowait()
        if self._room_waiters and not self.at_bound():
            waiters, self._room_waiters = self._room_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        return item
