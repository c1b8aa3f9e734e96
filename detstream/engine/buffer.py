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

Why not ``asyncio.Queue``: every delivered record goes in and out of a
buffer, and the queue's bookkeeping for ``join``/``task_done`` (which no
stream uses) and its layered ``full``/``empty`` checks cost about a dozen
Python calls per record. Getters wait and wake as the queue's do (first
come, first woken, one per item), so what a run does is unchanged.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class SubscriberBuffer(Generic[T]):
    """A FIFO of one stream's items: bounded by ``bound`` for single puts, taking whole batches.

    The queue API streams and channels use (``put``, ``put_nowait``, ``get``,
    ``get_nowait``, ``empty``, ``qsize``, ``maxsize``), plus ``put_batch``
    and ``wait_for_room``. ``put_nowait`` and ``put_batch`` ignore the bound.
    """

    def __init__(self, bound: int = 0) -> None:
        #: items beyond which ``put`` and ``wait_for_room`` wait (0: unbounded).
        self.bound = bound
        #: the items, oldest first (never replaced: ``Stream._iterate`` holds on to it).
        self._items: deque[T] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._room_waiters: list[asyncio.Future[None]] = []

    @property
    def maxsize(self) -> int:
        """The bound (the stream's ``maxsize``)."""
        return self.bound

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        """Never: a put past the bound waits in ``put``, a batch goes in whole."""
        return False

    def at_bound(self) -> bool:
        """Whether ``put`` must wait."""
        return 0 < self.bound <= len(self._items)

    async def put(self, item: T) -> None:
        await self.wait_for_room()
        self.put_nowait(item)

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        if self._getters:
            self._wake_getters(1)

    def put_batch(self, items: Iterable[T]) -> None:
        """Append ``items`` in order, all in this step, whatever the bound."""
        before = len(self._items)
        self._items.extend(items)
        if self._getters:
            self._wake_getters(len(self._items) - before)

    def _wake_getters(self, count: int) -> None:
        """Wake up to ``count`` waiting getters, longest waiting first."""
        getters = self._getters
        while count and getters:
            getter = getters.popleft()
            if not getter.done():
                getter.set_result(None)
                count -= 1

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

    async def get(self) -> T:
        """The next item, once there is one."""
        while not self._items:
            getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if getter in self._getters:
                    self._getters.remove(getter)
                if self._items and not getter.cancelled():
                    self._wake_getters(1)  # woken, then cancelled: the item goes to the next
                raise
        return self.get_nowait()

    def get_nowait(self) -> T:
        """The next item; ``asyncio.QueueEmpty`` if there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._take()

    def pop_nowait(self) -> T | None:
        """The next item, or None if there is none (one call per item on a stream's hot path).

        ``Stream._iterate`` repeats it inline while no put waits for room: a change here
        goes there too.
        """
        items = self._items
        if not items:
            return None
        if self._room_waiters:
            return self._take()
        return items.popleft()  # ``_take`` without waiters to wake: no second call per item

    def _take(self) -> T:
        item = self._items.popleft()
        if self._room_waiters and not self.at_bound():
            waiters, self._room_waiters = self._room_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        return item
