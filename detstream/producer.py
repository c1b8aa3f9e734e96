"""The app's producer: sends through the transport and can flush.

``send_soon`` starts a send without waiting (table changelogs use it); the
conductor calls ``flush`` before every commit, so an offset is never committed
before the records its processing produced are on the broker.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

from ._types import RecordMetadata

if TYPE_CHECKING:
    from .transport.base import Headers, Producer


class ProducerBuffer:
    """Wraps a transport producer and tracks sends still in flight."""

    def __init__(self, producer: Producer) -> None:
        self._producer = producer
        self._pending: deque[asyncio.Future[RecordMetadata]] = deque()

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self.flush()
        await self._producer.stop()

    def send_soon(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> asyncio.Future[RecordMetadata]:
        coro = self._producer.send(
            topic, key=key, value=value, partition=partition, timestamp=timestamp, headers=headers
        )
        future = asyncio.ensure_future(coro)
        pending = self._pending
        while pending and pending[0].done():  # sends complete roughly in order: O(1) amortised
            pending.popleft()
        pending.append(future)
        return future

    async def flush(self) -> None:
        """Wait until every record sent so far is acknowledged by the broker."""
        while self._pending:
            pending, self._pending = self._pending, deque()
            await asyncio.gather(*pending)
