"""Streams that read no channel buffer of their own: over an iterable, and several merged.

``app.stream(source)`` over another stream, an async iterator or a plain
iterable is an :class:`IterableStream`: it yields the source's values, runs
the stream's processors on them, and ends when the source ends, as Faust's
``app.stream([1, 2, 3])``. Nothing is acked by it: a stream given as the
source acks its own events as it is advanced.

``s1 & s2`` (``s1.combine(s2)``) is a :class:`MergedStream`: one iteration
over the values of several streams, in the order they arrive. Faust documents
this ("receive values from multiple streams in the same iteration") but its
combined stream read only the first stream's channel; here every stream is
read. Each stream is read by a task of its own that hands one event at a
time to the merged iteration and waits until the consumer asks for the next
value before it goes on: an event is acked, as in any stream, once the agent
is done with it, and ``current_event()`` is the event being processed. That
costs a task switch per event, which plain streams do not pay.

Batching (``take``), ``noack``, ``group_by`` and ``through`` need a channel
buffer, and are refused on these streams with an error saying so.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument, Skip
from .events import Event, set_current_event
from .stream import _SKIP, Stream, T

if TYPE_CHECKING:
    from .channel import Channel
    from .topic import Topic

_ITEM, _ENDED, _FAILED = 0, 1, 2


async def _apply(processors: list[Callable[[Any], Any]], value: Any) -> Any:
    """``value`` through ``processors`` in order; ``_SKIP`` if one filtered it out."""
    for processor in processors:
        try:
            value = processor(value)
            if asyncio.iscoroutine(value):
                value = await value
        except Skip:
            return _SKIP
        if value is _SKIP:
            return _SKIP
    return value


class _NoBuffer(Stream[T]):
    """What the streams of this module share: a private, unused channel; buffer operations refused."""

    def __init__(self, app: Any, *, processors: list[Callable[[Any], Any]] | None = None) -> None:
        super().__init__(app.channel(maxsize=1), processors=processors)

    def _no_buffer(self, operation: str) -> InvalidArgument:
        return InvalidArgument(
            f"{operation} needs a stream over a channel or topic; {self!r} has no buffer of its "
            "own (use it on the streams it reads instead)"
        )

    def take_events(self, max_: int, within: Any = None) -> AsyncIterator[list[Event]]:
        raise self._no_buffer("take()")

    def noack(self) -> Stream:
        raise self._no_buffer("noack()")

    def group_by(self, key: Any, *, name: str | None = None, topic: Topic | None = None,
                 partitions: int | None = None) -> Stream:
        raise self._no_buffer("group_by()")

    def through(self, channel: str | Channel) -> Stream:
        raise self._no_buffer("through()")

    def clone(self, **changes: Any) -> Stream:
        raise self._no_buffer("clone()")

    async def throw(self, exc: BaseException) -> None:
        raise self._no_buffer("throw()")


class IterableStream(_NoBuffer[T]):
    """``app.stream(iterable)``: the values of an (async) iterable, through the stream's processors."""

    def __init__(self, source: Any, *, app: Any = None,
                 processors: list[Callable[[Any], Any]] | None = None) -> None:
        if app is None:
            raise InvalidArgument(f"Stream({source!r}) over an iterable needs app=: "
                                  "use app.stream(iterable)")
        if not (hasattr(source, "__aiter__") or isinstance(source, Iterable)):
            raise InvalidArgument(
                f"app.stream() takes a channel, topic, stream or (async) iterable, got {source!r}"
            )
        super().__init__(app, processors=processors)
        self.source = source

    def __repr__(self) -> str:
        return f"<IterableStream: {self.source!r}>"

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._values()

    async def _values(self) -> AsyncIterator[Any]:
        source = self.source
        if hasattr(source, "__aiter__"):
            async for raw in source:
                if isinstance(raw, Event):  # a channel's iterator yields events: their values
                    raw = raw.value  # (the channel's own stream acks each as this one advances)
                value = await _apply(self._processors, raw)
                if value is not _SKIP:
                    self.events_total += 1
                    yield value
        else:
            for raw in source:
                value = await _apply(self._processors, raw)
                if value is not _SKIP:
                    self.events_total += 1
                    yield value

    async def items(self) -> AsyncIterator[tuple[Any, Any]]:
        """``(None, value)``: an iterable's values have no keys."""
        async for value in self:
            yield None, value

    def events(self) -> AsyncIterator[Event]:
        raise InvalidArgument(f"events(): {self!r} yields values, not events")

    def filter(self, predicate: Callable[[Any], Any]) -> Stream:
        async def keep(value: Any) -> Any:
            result = predicate(value)
            if asyncio.iscoroutine(result):
                result = await result
            return value if result else _SKIP

        return IterableStream(self.source, app=self.app, processors=[*self._processors, keep])


class MergedStream(_NoBuffer[T]):
    """``s1 & s2``: the values of several streams in one iteration, as they arrive."""

    def __init__(self, app: Any, nodes: Iterable[Stream],
                 *, processors: list[Callable[[Any], Any]] | None = None) -> None:
        flat: list[Stream] = []
        for node in nodes:
            if not isinstance(node, Stream):
                raise InvalidArgument(f"streams combine with streams, not {node!r}")
            if node.app is not app:
                raise InvalidArgument(f"cannot combine {node!r} of {node.app!r} with a stream "
                                      f"of {app!r}")
            parts: list[Stream] = node.nodes if isinstance(node, MergedStream) else [node]
            for part in parts:
                if not any(part is seen for seen in flat):
                    flat.append(part)
        super().__init__(app, processors=processors)
        #: the streams read, each once (combining a combined stream adds its streams).
        self.nodes: list[Stream] = flat

    def __repr__(self) -> str:
        return f"<MergedStream: {' & '.join(repr(node) for node in self.nodes)}>"

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._merge(shape="values")

    def events(self) -> AsyncIterator[Event]:
        """The events of the streams read (an iterable's values, having none, are left out)."""
        return self._merge(shape="events")

    def items(self) -> AsyncIterator[tuple[Any, Any]]:
        return self._merge(shape="items")

    def filter(self, predicate: Callable[[Any], Any]) -> Stream:
        async def keep(value: Any) -> Any:
            result = predicate(value)
            if asyncio.iscoroutine(result):
                result = await result
            return value if result else _SKIP

        return MergedStream(self.app, self.nodes, processors=[*self._processors, keep])

    async def _merge(self, shape: str) -> AsyncIterator[Any]:
        handed: asyncio.Queue[tuple[int, Any, asyncio.Event | None]] = asyncio.Queue()
        readers = [asyncio.ensure_future(_read(node, handed)) for node in self.nodes]
        reading = len(readers)
        try:
            while reading:
                kind, item, release = await handed.get()
                if kind == _ENDED:
                    reading -= 1
                    continue
                if kind == _FAILED:
                    raise item
                assert release is not None
                event = item if isinstance(item, Event) else None
                try:
                    value = await _apply(self._processors, event.value if event else item)
                    if value is _SKIP or (shape == "events" and event is None):
                        continue
                    if event is not None:
                        event.value = value
                    self.current_event = event
                    set_current_event(event)
                    self.events_total += 1
                    if shape == "values":
                        yield value
                    elif shape == "items":
                        yield (event.key if event is not None else None), value
                    else:
                        yield event
                finally:
                    set_current_event(None)
                    self.current_event = None
                    release.set()  # the stream it came from may go on (and ack it)
        finally:
            for reader in readers:
                reader.cancel()


async def _read(
    node: Stream, handed: asyncio.Queue[tuple[int, Any, asyncio.Event | None]]
) -> None:
    """Hand ``node``'s items one at a time; each waits until the merged consumer is done with it."""
    release = asyncio.Event()
    items: AsyncIterator[Any] = aiter(node) if isinstance(node, IterableStream) else node.events()
    try:
        async for item in items:
            release.clear()
            handed.put_nowait((_ITEM, item, release))
            await release.wait()
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a decode error, a processor's: raised in the merged iteration
        handed.put_nowait((_FAILED, exc, None))
        return
    handed.put_nowait((_ENDED, None, None))


__all__ = ["IterableStream", "MergedStream"]
