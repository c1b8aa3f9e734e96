"""Channels: named or anonymous buffers that streams consume from.

A plain ``Channel`` is in-memory: ``send`` hands the value to every stream
subscribed to it, blocking while a subscriber's buffer is full (back-pressure).
``Topic`` extends it with a Kafka topic behind it.

As Faust's: ``async for event in channel`` gives events (``event.value``),
``send`` is ``publish_message(as_future_message(...))`` and returns the
resolved :class:`~detstream.pending.FutureMessage`, and ``declare`` /
``maybe_declare`` do nothing for a channel that lives in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._types import RecordMetadata
from .engine.buffer import SubscriberBuffer
from .events import Event, Message, Thrown
from .pending import FutureMessage, PendingMessage
from .serializers import Schema

if TYPE_CHECKING:
    from .app import App
    from .stream import Stream

#: the type of a channel's values: ``Channel[Order]`` (Faust's ``ChannelT[T]``), for annotations.
T = TypeVar("T")

#: What a subscriber buffer holds: fetched messages (topics), ready events, or an exception.
Item = Message | Event | Thrown


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
        if schema is None:
            schema = Schema(
                key_type=key_type,
                value_type=value_type,
                key_serializer=key_serializer,
                value_serializer=value_serializer,
            )
        else:  # as Faust's: the arguments given next to a schema update it
            schema.update(key_type=key_type, value_type=value_type,
                          key_serializer=key_serializer, value_serializer=value_serializer)
        schema.bind_app(app)
        self.schema = schema
        self.key_type = schema.key_type
        self.value_type = schema.value_type
        self.maxsize = maxsize if maxsize is not None else app.conf.stream_buffer_maxsize
        self._subscribers: list[SubscriberBuffer[Item]] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.label}>"

    @property
    def key_serializer(self) -> Any:
        """The codec of keys (Faust's attribute: the schema's; None means the app's default)."""
        return self.schema.key_serializer

    @property
    def value_serializer(self) -> Any:
        """The codec of values (Faust's attribute: the schema's; None means the app's default)."""
        return self.schema.value_serializer

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

    def __aiter__(self) -> AsyncIterator[Event]:
        """The channel's events, as Faust iterates a channel (``event.value``; ``stream()``
        gives the values)."""
        return self.stream().events()

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
        """Hand ``value`` to every subscriber (waits while a buffer is full).

        Returns the send's future, done (Faust's ``FutureMessage``; a ``Topic``
        returns the future of the broker's ack instead); ``callback`` is called
        with it.
        """
        return await self.publish_message(self.as_future_message(
            key, value, partition, timestamp, headers, callback=callback,
        ))

    def as_future_message(
        self,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        schema: Schema | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        eager_partitioning: bool = False,
    ) -> FutureMessage:
        """The message as a promise to send it (Faust's): ``publish_message`` sends it.

        An in-memory channel keeps the key and value as they are (nothing is encoded).
        """
        return FutureMessage(PendingMessage(
            self, key, value, partition=partition, timestamp=timestamp,
            headers=dict(headers) if headers else {}, key_serializer=key_serializer,
            value_serializer=value_serializer, callback=callback,
        ))

    async def publish_message(self, fut: FutureMessage, wait: bool = True) -> FutureMessage:
        """Send a message made by :meth:`as_future_message` to every subscriber; ``fut``
        resolved (topic ``"<anon>"``, partition and offset -1), its callback called."""
        message = fut.message
        await self._put_event(Event(self.app, message.key, message.value,
                                    dict(message.headers or {}), None))
        fut.set_result(RecordMetadata(message.topic or "<anon>", -1 if message.partition is None
                                      else message.partition, -1, message.timestamp))  # type: ignore[arg-type]
        if message.callback is not None:
            result = message.callback(fut)
            if asyncio.iscoroutine(result):
                await result
        return fut

    async def throw(self, exc: BaseException) -> None:
        """Raise ``exc`` in every stream reading this channel, at its next item (Faust's)."""
        self._throw(exc)

    def _throw(self, exc: BaseException) -> None:
        """:meth:`throw` for a caller that is not a coroutine."""
        for queue in self._subscribers:
            queue.put_nowait(Thrown(exc))

    async def _put_event(self, event: Event) -> None:
        for queue in self._subscribers:
            await queue.put(event)

    async def maybe_declare(self) -> None:
        """Nothing to create for a channel in memory (a ``Topic`` creates its topic)."""

    async def declare(self) -> None:
        """Nothing to create for a channel in memory (a ``Topic`` creates its topic)."""

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
        """Put ``value`` on the channel, as an event (an Event given is put as it is)."""
        if isinstance(value, Event):
            await self._put_event(value)
        else:
            await self.send(key=key, value=value)
