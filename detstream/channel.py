"""Channels: named or anonymous buffers that streams consume from.

A plain ``Channel`` is in-memory: ``send`` hands the value to every stream
subscribed to it, blocking while a subscriber's buffer is full (back-pressure).
``Topic`` extends it with a Kafka topic behind it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .engine.buffer import SubscriberBuffer
from .events import Event, Message
from .serializers import Schema

if TYPE_CHECKING:
    from ._types import RecordMetadata
    from .app import App
    from .stream import Stream

#: the type of a channel's values: ``Channel[Order]`` (Faust's ``ChannelT[T]``), for annotations.
T = TypeVar("T")

#: What a subscriber buffer holds: fetched messages (topics) or ready events.
Item = Message | Event


class Channel(Generic[T]):
    """An in-memory channel (``app.channel()``); ``Channel[V]`` in annotations."""

    def __init__(
        self,
        app: App,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        schema: Schema | None = None,
        maxsize: int | None = None,
    ) -> None:
        self.app = app
        self.schema = schema or Schema(
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
        )
        self.key_type = key_type
        self.value_type = value_type
        self.maxsize = maxsize if maxsize is not None else app.conf.stream_buffer_maxsize
        self._subscribers: list[SubscriberBuffer[Item]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.label}>"

    @property
    def label(self) -> str:
        return f"channel@{self.value_type.__name__ if self.value_type else 'any'}"

    # -- consuming ------------------------------------------------------------
    def subscribe(self) -> SubscriberBuffer[Item]:
        """A new subscriber buffer; every message is delivered to each buffer."""
        buffer: SubscriberBuffer[Item] = SubscriberBuffer(self.maxsize)
        self._subscribers.append(buffer)
        return buffer

    @property
    def subscribers(self) -> list[SubscriberBuffer[Item]]:
        return self._subscribers

    def stream(self, **kwargs: Any) -> Stream:
        from .stream import Stream

        return Stream(self, **kwargs)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.stream().__aiter__()

    # -- producing ------------------------------------------------------------
    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        force: bool = False,
    ) -> asyncio.Future[RecordMetadata] | None:
        """Hand ``value`` to every subscriber (waits while a buffer is full); None.

        (A ``Topic`` returns the future of the broker's ack instead.)
        """
        event: Event[Any] = Event(self.app, key, value, dict(headers or {}), None)
        for queue in self._subscribers:
            await queue.put(event)
        if callback is not None:
            callback(None)
        return None

    async def forward(
        self,
        *,
        key: Any = None,
        value: Any = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        """The engine's own send of an event onward (``group_by``, ``through``, sinks)."""
        await self.send(key=key, value=value, timestamp=timestamp, headers=headers)

    async def put(self, value: Any, *, key: Any = None) -> None:
        await self.send(key=key, value=value)
