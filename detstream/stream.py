"""Streams: the async iterator an agent consumes, and its operators.

Iterating yields decoded values. The previous event is acked when the agent
asks for the next one, i.e. as soon as the agent is done with it, so commits
never wait for the *next* message to arrive. Messages from partitions this
worker no longer owns (a rebalance happened while they sat in the buffer) are
dropped unprocessed and unacked: the new owner processes them.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import operator
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import mutants
from .errors import DecodeError, InvalidArgument, Skip
from .events import AckResult, Event, Message, Thrown, current_event, set_current_event
from .models import FieldDescriptor
from .mutants import register as register_mutant

if TYPE_CHECKING:
    from .channel import Channel, Item
    from .engine.buffer import SubscriberBuffer
    from .stream_kinds import MergedStream
    from .topic import Topic


#: re-opens acking at delivery: an event is acked before the agent finished it, so a commit
#: while the agent awaits passes it, and a crash then loses it (see ``mutants``).
ACK_BEFORE_PROCESSING = register_mutant(
    "ack-before-processing",
    "an event is acked when it is delivered, before the agent has finished processing it",
)


#: the type of a stream's values: ``Stream[Order]`` (Faust's ``StreamT[T]``), for annotations.
T = TypeVar("T")
S = TypeVar("S", bound="Stream[Any]")

#: what ``Stream._iterate`` yields per event.
_EVENTS, _VALUES, _ITEMS = 0, 1, 2

#: the streams made in the running task, when someone collects them: an ``@app.task``'s
#: (``app_tasks``), so that they let go of their buffers when the task ends.
stream_owner: contextvars.ContextVar[list[Stream] | None] = contextvars.ContextVar(
    "detstream_stream_owner", default=None
)


class Stream(Generic[T]):
    """A stream over a channel or topic (``channel.stream()``); ``Stream[V]`` in annotations.

    ``Stream(source, app=app)`` over something else than a channel (another
    stream, an async iterator, a list) is an ``IterableStream``: see
    ``app.stream()``.
    """

    def __new__(cls, channel: Any = None, *args: Any, **kwargs: Any) -> Any:
        from .channel import Channel

        if cls is Stream and not isinstance(channel, Channel):
            from .stream_kinds import IterableStream

            return super().__new__(IterableStream)
        return super().__new__(cls)

    def __init__(
        self,
        channel: Channel,
        *,
        queue: SubscriberBuffer[Item] | None = None,
        prefix: str = "",
        enable_acks: bool = True,
        processors: list[Callable[[Any], Any]] | None = None,
        app: Any = None,
    ) -> None:
        if app is not None and app is not channel.app:
            raise InvalidArgument(f"Stream({channel!r}, app={app!r}): the channel belongs to "
                                  f"{channel.app!r}")
        self.channel = channel
        self.app = channel.app
        #: the app's settings values, read on the first decode (the hot path reads two).
        self._settings: dict[str, Any] | None = None
        self.prefix = prefix
        self.enable_acks = enable_acks
        #: the buffer was subscribed for this stream (not shared with the stream it came from).
        self._owns_queue = queue is None
        self._closed = False
        self._queue = queue if queue is not None else channel.subscribe()
        self._processors = list(processors or [])
        self._upstream: list[Callable[[], Awaitable[None]]] = []
        self.current_event: Event | None = None
        self.concurrency_index = 0
        #: the partitions this stream's events come from: ``{tp}`` for an actor of an agent
        #: with ``isolated_partitions=True``, None (any partition) otherwise (Faust's name).
        self.active_partitions: set[Any] | None = None
        #: events this stream started (Faust's name): ``/metrics`` sums them per agent.
        self.events_total = 0
        self._grouped: dict[str, Stream] = {}
        #: fetched but not yet processed (a batch's fetch outlived its ``take``).
        self._stash: list[Item] = []
        #: started but not yet handed to the agent (its ``take`` closed mid-batch).
        self._held: list[Event] = []
        #: the channels ``echo`` sends to, per call (an actor restarted calls it again).
        self._echoes: set[tuple[str, ...]] = set()
        #: the stream this one was derived from, and the last one derived from it
        #: (``get_root_stream``/``get_active_stream``, Faust's linked list).
        self._prev: Stream | None = None
        self._next: Stream | None = None
        owned = stream_owner.get()
        if owned is not None:
            owned.append(self)

    def __repr__(self) -> str:
        return f"<Stream: {self.channel.label}>"

    # -- iteration ----------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate(_VALUES)

    def events(self) -> AsyncIterator[Event]:
        """Yield Event objects (key, value, headers, message)."""
        return self._iterate(_EVENTS)

    def items(self) -> AsyncIterator[tuple[Any, Any]]:
        """Yield ``(key, value)`` pairs."""
        return self._iterate(_ITEMS)

    async def _iterate(self, shape: int) -> AsyncIterator[Any]:
        """The one loop behind ``async for`` over a stream, its ``events`` and ``items``.

        ``shape`` says what is yielded per event (the event, its value, or
        its key and value), so iterating a stream costs one async generator
        per event, not two. A fetched message that may start at once (the
        common case) is opened without a coroutine per event.

        ``current_event()`` is the event from when it is yielded until the
        next one replaces it, the stream waits for one, or the stream ends
        (then None): between two events ready one after the other it is not
        set to None and back, a step per event fewer. Sensors, when there are
        any, see it None once the event is done, as before.
        """
        tasks = [asyncio.ensure_future(run()) for run in self._upstream]
        queue = self._queue
        items = queue._items  # (the buffer's deque: it is never replaced)
        sensors = self.app.sensors
        try:
            while True:
                # ``queue.pop_nowait()``, inline (once per event): its next item, by the
                # buffer's own call only when a put waits for room (it wakes them)
                if self._held or self._stash or not items:
                    item = None
                elif queue._room_waiters:
                    item = queue.pop_nowait()
                else:
                    item = items.popleft()
                if item is None:
                    set_current_event(None)  # no event is being processed while it waits
                    event = await self._next_event()
                elif type(item) is Message and not self._processors and (
                    item.lease is None or item.started or not item.lease.quiescing
                ):  # it may start now: no exactly-once commit is quiescing
                    event = self._open(item)
                else:
                    set_current_event(None)
                    event = await self._next_event(item)
                if event is None:
                    continue
                self.current_event = event
                set_current_event(event)
                sensed = None
                if sensors.enabled and event.message is not None:  # no call per event without
                    tp, offset = event.message.tp, event.message.offset
                    sensed = sensors.on_stream_event_in(tp, offset, self, event)
                try:
                    if shape == _VALUES:
                        yield event.value
                    elif shape == _ITEMS:
                        yield event.key, event.value
                    else:
                        yield event
                finally:
                    if sensors.enabled:
                        set_current_event(None)
                    # ``self._done(event)``, inline (once per event)
                    self.current_event = None
                    message = event.message
                    if message is not None:
                        lease = message.lease
                        if lease is not None:
                            lease.done(message, self.enable_acks)
                        elif self.enable_acks:
                            message.ack()
                    if sensed is not None:
                        sensors.on_stream_event_out(tp, offset, self, event, sensed)
        finally:
            set_current_event(None)
            for task in tasks:
                task.cancel()

    async def enumerate(self, start: int = 0) -> AsyncIterator[tuple[int, Any]]:
        index = start
        async for value in self:
            yield index, value
            index += 1

    async def _next_event(self, item: Item | None = None) -> Event | None:
        if item is None:
            if self._held:
                return self._reuse_held(self._held.pop(0))
            if self._stash:
                item = self._stash.pop(0)
            else:  # the buffer's next item; no coroutine made while it holds one (the common case)
                queue = self._queue
                item = await queue.get() if queue.empty() else queue.get_nowait()
        if isinstance(item, Thrown):  # Stream.throw / Channel.throw: the reader raises it
            raise item.exc
        if isinstance(item, Event):  # from an in-memory channel: each subscriber gets the same one
            self.events_total += 1
            event = await self._process(dataclasses.replace(item))
            if event is not None and event.value is _SKIP:
                self._done(event)
                return None
            return event
        message = item
        lease = message.lease
        if lease is not None and not message.started and lease.quiescing:
            await lease.may_start(message)  # an exactly-once commit is quiescing
        opened = self._open(message)
        if opened is not None and self._processors:
            opened = await self._process(opened)
            if opened.value is _SKIP:
                self._done(opened)
                return None
        return opened

    def _open(self, message: Message) -> Event | None:
        """Start ``message``: its event, or None if a rebalance gave its partition away.

        The caller saw to it that the message may start (no exactly-once
        commit quiescing, or the message was started already).
        """
        lease = message.lease
        settings = self._settings  # two settings per event: no ``__getattr__`` for each
        if settings is None:  # (read once: the settings object is resolved before streams run)
            settings = self._settings = self.app.conf.values
        try:
            key, value = self.channel.schema.loads_message(
                message, settings["key_serializer"], settings["value_serializer"]
            )
        except DecodeError as exc:
            if lease is not None and not lease.is_current(message):
                return None  # fetched before a rebalance; the partition's owner has it now
            self.app.tracer.record("decode-error", tp=message.tp, offset=message.offset, reason=exc.reason)
            message.ack()
            raise
        if lease is not None and not lease.begin(message):
            return None  # fetched before a rebalance (decoded for nothing: rare)
        headers = message.headers
        event: Event[Any] = Event(self.app, key, value, dict(headers) if headers else {}, message)
        if mutants.ACTIVE and mutants.on(ACK_BEFORE_PROCESSING):  # no call per event normally
            message.ack()
        self.events_total += 1
        return event

    async def _process(self, event: Event) -> Event:
        for processor in self._processors:
            try:
                result = processor(event.value)
                if asyncio.iscoroutine(result):
                    result = await result
            except Skip:  # Faust's way for a processor to drop the value (acked, not yielded)
                result = _SKIP
            event.value = result
            if result is _SKIP:
                break
        return event

    def add_processor(self, processor: Callable[[Any], Any]) -> None:
        """Pass every value through ``processor`` (sync or async) before it is yielded.

        Processors run in the order added; each gets the previous one's
        result. One raising ``faust.exceptions.Skip`` (``detstream.errors.Skip``)
        drops the value: its event is acked and not yielded.
        """
        if not callable(processor):
            raise InvalidArgument(f"add_processor() takes a callable, got {processor!r}")
        self._processors.append(processor)

    def _reuse_held(self, event: Event) -> Event | None:
        message = event.message
        if message is not None and message.lease is not None and not message.lease.is_current(message):
            message.lease.finished(message)  # revoked meanwhile: its owner has it
            return None
        return event

    def _done(self, event: Event) -> None:
        self.current_event = None
        message = event.message
        if message is None:
            return
        lease = message.lease
        if lease is not None:
            lease.done(message, self.enable_acks)
        elif self.enable_acks:
            message.ack()

    def ack(self, event: Event) -> AckResult:
        """Ack ``event`` by hand (streams made with ``noack()``); ``await stream.ack(event)``
        works too, as Faust's is a coroutine."""
        return event.ack()

    # -- batching ---------------------------------------------------------------
    async def take(
        self, max_: int, within: float | timedelta | None = None
    ) -> AsyncIterator[list[Any]]:
        """Yield lists of up to ``max_`` values, or fewer once ``within`` seconds
        passed since the batch's first value.

        Without ``within`` (None, as Faust's falsy ``within``) a batch waits
        until it holds ``max_`` values, however long that takes. The batch's events are acked only once the agent is done with the batch
        (it asks for the next one, or the stream closes), so a crash while a
        batch is collected or processed redelivers all of it. ``current_event()``
        is the batch's last event.
        """
        async for events in self.take_events(max_, within):
            yield [event.value for event in events]

    async def take_events(
        self, max_: int, within: float | timedelta | None = None
    ) -> AsyncIterator[list[Event]]:
        """Like :meth:`take`, yielding the Event objects."""
        if not isinstance(max_, int) or max_ < 1:
            raise InvalidArgument(f"take() needs max_ >= 1, not {max_!r}")
        if isinstance(within, timedelta):
            within = within.total_seconds()
        if within is not None and not within > 0:
            raise InvalidArgument(
                f"take() needs within > 0 seconds, or None to wait for max_ values; not {within!r}"
            )
        loop = asyncio.get_running_loop()
        tasks = [asyncio.ensure_future(run()) for run in self._upstream]
        getter: asyncio.Future[Item] | None = None
        batch: list[Event] = []
        try:
            while True:
                deadline: float | None = None
                while len(batch) < max_:
                    item: Item | None = None
                    if not self._held:
                        if self._stash:
                            item = self._stash.pop(0)
                        else:
                            if getter is None:
                                getter = asyncio.ensure_future(self._queue.get())
                            if deadline is not None:
                                remaining = deadline - loop.time()
                                if remaining > 0:
                                    await asyncio.wait((getter,), timeout=remaining)
                                if not getter.done():
                                    break  # the batch is due; the fetch carries on for the next one
                            item = await getter
                            getter = None
                        if batch and self._holds_commit(item):
                            self._stash.append(item)  # an exactly-once commit waits for this batch
                            break
                    event = await self._next_event(item)
                    if event is None:
                        continue
                    batch.append(event)
                    if deadline is None and within is not None:
                        deadline = loop.time() + within
                self.current_event = batch[-1]
                set_current_event(batch[-1])
                try:
                    yield batch
                finally:
                    set_current_event(None)
                    done, batch = batch, []
                    for event in done:
                        self._done(event)
        finally:
            if getter is not None:
                if getter.done() and not getter.cancelled():
                    self._stash.append(getter.result())
                else:
                    getter.cancel()
            self._held[:0] = batch  # collected, never handed out: the next iteration gets them
            for task in tasks:
                task.cancel()

    async def noack_take(
        self, max_: int, within: float | timedelta | None = None
    ) -> AsyncIterator[list[Event]]:
        """Faust's ``noack_take``: batches of Events you ack yourself (``event.ack()``).

        Iterate it instead of this stream (it reads this stream's buffer,
        as ``noack()`` does).
        """
        async for events in self.noack().take_events(max_, within):
            yield events

    async def take_with_timestamp(
        self, max_: int, within: float | timedelta | None, timestamp_field_name: str
    ) -> AsyncIterator[list[Any]]:
        """As :meth:`take`; a dict value also gets its record's timestamp under
        ``timestamp_field_name`` (Faust's; other values are left as they are)."""
        async for events in self.take_events(max_, within):
            values = []
            for event in events:
                value = event.value
                if isinstance(value, dict) and timestamp_field_name and event.message is not None:
                    value[timestamp_field_name] = event.message.timestamp
                values.append(value)
            yield values

    def _holds_commit(self, item: Item) -> bool:
        return (
            isinstance(item, Message)
            and not item.started
            and item.lease is not None
            and item.lease.quiescing
        )

    def close(self) -> None:
        """This stream will not be iterated again (the task reading it ended): let go.

        Its buffer leaves its channel, so records fetched later are not kept
        for it, and what it holds and never started is released (acked for
        its share), so that the other streams of its topic are not held up
        and their offsets are committed. An event it was processing is
        released when its iteration is closed, as always. The streams
        ``group_by`` and ``through`` made from it close too. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        for substream in self._grouped.values():
            substream.close()
        if self._owns_queue and self._queue in self.channel.subscribers:
            self.channel.subscribers.remove(self._queue)
            while (item := self._queue.pop_nowait()) is not None:
                _release(item)
        for item in self._stash:
            _release(item)
        self._stash.clear()
        held, self._held = self._held, []
        for event in held:
            self._done(event)

    # -- the chain of derived streams (Faust's) ----------------------------------
    def _derived(self, stream: S) -> S:
        """``stream``, made from this one, as the next in the chain (what ``get_active_stream`` finds)."""
        if stream is not self:
            stream._prev = self
            self._next = stream
        return stream

    def get_active_stream(self) -> Stream:
        """The last stream derived from this one (``group_by``, ``through``, ``filter``,
        ``noack``, ``combine``), following the chain: the one being consumed."""
        return _last_of(self, "_next")

    def get_root_stream(self) -> Stream:
        """The stream this one was derived from, first in the chain (itself if none)."""
        return _last_of(self, "_prev")

    def info(self) -> dict[str, Any]:
        """This stream's settings, as keyword arguments of :meth:`clone` (Faust's keys)."""
        return {
            "app": self.app,
            "channel": self.channel,
            "processors": self._processors,
            "prefix": self.prefix,
            "enable_acks": self.enable_acks,
            "concurrency_index": self.concurrency_index,
            "prev": self._prev,
            "active_partitions": self.active_partitions,
        }

    def clone(self, **changes: Any) -> Stream:
        """A new stream with this one's :meth:`info`, updated by ``changes``, reading its
        channel through a buffer of its own.

        Faust's keys that only its runtime has (``on_start``, ``loop``, ``beacon``,
        ``combined``) are taken and ignored; any other unknown key is refused.
        """
        settings = {**self.info(), **changes}
        for ignored in ("on_start", "loop", "beacon", "combined"):
            settings.pop(ignored, None)
        unknown = sorted(set(settings) - set(self.info()))
        if unknown:
            raise InvalidArgument(f"Stream.clone(): unknown settings {unknown}; it takes "
                                  f"{sorted(self.info())}")
        stream: Stream[Any] = type(self)(
            settings["channel"], prefix=settings["prefix"], enable_acks=settings["enable_acks"],
            processors=list(settings["processors"]), app=settings["app"],
        )
        stream.concurrency_index = settings["concurrency_index"]
        stream.active_partitions = settings["active_partitions"]
        stream._prev = settings["prev"]
        return stream

    async def throw(self, exc: BaseException) -> None:
        """Raise ``exc`` in this stream's iteration, at its next item (Faust's ``throw``)."""
        self._queue.put_nowait(Thrown(exc))

    def substreams(self) -> list[Stream]:
        """The streams ``group_by`` and ``through`` made from this one (each reads its own topic)."""
        return list(self._grouped.values())

    # -- operators ------------------------------------------------------------
    def noack(self) -> Stream:
        """A stream on the same buffer whose events you ack yourself."""
        return self._derived(
            Stream(self.channel, queue=self._queue, prefix=self.prefix, enable_acks=False))

    def filter(self, predicate: Callable[[Any], Any]) -> Stream:
        """Only values for which ``predicate`` (sync or async) is true; others are acked."""

        async def keep(value: Any) -> Any:
            result = predicate(value)
            if asyncio.iscoroutine(result):
                result = await result
            return value if result else _SKIP

        clone: Stream[Any] = Stream(self.channel, queue=self._queue, prefix=self.prefix, processors=[*self._processors, keep])
        clone._upstream = list(self._upstream)
        return self._derived(clone)

    def group_by(
        self, key: Any, *, name: str | None = None, topic: Topic | None = None,
        partitions: int | None = None,
    ) -> Stream:
        """Repartition by ``key`` (a Record field or a callable) through an internal topic.

        Each event is re-sent to ``{agent}-{topic}-{name}-repartition`` (or to
        ``topic=``) keyed by the new key, then acked (the producer is flushed
        before the source offset is committed); the returned stream reads that
        topic, so equal keys meet on one worker.

        Over an in-memory channel (``agent.test_context()`` runs an agent on
        one) the events go on through a channel of their own instead, re-keyed:
        there is no partition to move to, and the source event is acked once
        the new stream is done with it too.
        """
        from .topic import Topic

        getter, name = _key_getter(key, name)
        if name in self._grouped:  # an actor restarted: reuse the topic and its buffer
            return self._grouped[name]
        source = self.channel
        target: Channel
        if topic is not None:
            if not isinstance(topic, Topic):
                raise InvalidArgument(f"group_by(topic=...) takes a topic, got {topic!r}")
            target = topic
        elif isinstance(source, Topic):
            prefix = f"{self.prefix}-" if self.prefix else ""
            target = source.derive(
                prefix=prefix,
                suffix=f"-{name}-repartition",
                internal=True,
                partitions=partitions or self.app.conf.topic_partitions,
            )
        else:
            from .channel import Channel

            target = Channel(self.app, schema=source.schema, maxsize=source.maxsize)
        grouped: Stream[Any] = Stream(target, prefix=self.prefix)
        upstream = self

        async def forward() -> None:
            if not isinstance(target, Topic):
                async for event in upstream.events():
                    new_key = getter(event.value)
                    if asyncio.iscoroutine(new_key):
                        new_key = await new_key
                    await _hand_on(target, event, new_key)
                return
            await self.app.declared(target)
            # The value is unchanged (no processor rewrote it; same schema): forward its bytes.
            as_fetched = not upstream._processors and target.schema is source.schema
            async for event in upstream.events():
                new_key = getter(event.value)
                if type(new_key) not in _NEVER_AWAITED and asyncio.iscoroutine(new_key):
                    new_key = await new_key
                # keep the event time: windowed tables downstream of a group_by
                # must window by when the event happened, not when it was forwarded
                message = event.message
                if message is None:
                    waiting = target.forward_or_wait(
                        key=new_key, value=event.value, headers=event.headers)
                elif as_fetched:
                    waiting = target.forward_value_bytes(
                        key=new_key, value=message.value, headers=event.headers,
                        timestamp=message.timestamp,
                    )
                else:
                    waiting = target.forward_or_wait(
                        key=new_key, value=event.value, headers=event.headers,
                        timestamp=message.timestamp,
                    )
                if waiting is not None:  # the producer's outbox is full: wait for room
                    await waiting

        grouped._upstream = [forward]
        self._grouped[name] = grouped
        return self._derived(grouped)

    def through(self, channel: str | Channel) -> Stream:
        """Forward every event to ``channel`` (a topic name makes an internal
        topic) and return a stream consuming it, as ``group_by`` does without
        re-keying."""
        from .topic import Topic

        target = self.app.topic(channel, internal=True) if isinstance(channel, str) else channel
        name = f"through:{target.label}"
        if name in self._grouped:  # an actor restarted: reuse the topic and its buffer
            return self._grouped[name]
        through: Stream[Any] = Stream(target, prefix=self.prefix)
        upstream = self

        async def forward() -> None:
            if isinstance(target, Topic):
                await self.app.declared(target)
            async for event in upstream.events():
                await target.forward(key=event.key, value=event.value, headers=event.headers)

        through._upstream = [forward]
        self._grouped[name] = through
        return self._derived(through)

    def echo(self, *channels: str | Channel) -> Stream:
        """Send every value to ``channels`` as well (topics, channels, or topic names), as Faust.

        Adds a processor to this stream and returns it, so ``async for value
        in stream.echo(t)`` and ``stream.echo(t)`` then ``async for value in
        stream`` both echo. A name is a topic of this stream's types
        (``derive_topic``) for a stream over a topic, else the app's topic of
        that name. Values are sent as they are yielded (keys are not
        echoed, as in Faust), one channel after the other.
        """
        from .channel import Channel
        from .topic import Topic

        echo = tuple(
            c if isinstance(c, str) else c.label if isinstance(c, Topic) else str(id(c))
            for c in channels
        )
        if echo in self._echoes:  # an actor restarted over this stream: echoing already
            return self
        targets: list[Channel] = []
        for channel in channels:
            if isinstance(channel, str):
                targets.append(self._topic_for(channel))
            elif isinstance(channel, Channel):
                targets.append(channel)
            else:
                raise InvalidArgument(f"echo() takes topics, channels or topic names, got {channel!r}")
        self._echoes.add(echo)

        async def echoing(value: Any) -> Any:
            for target in targets:
                await target.send(value=value)
            return value

        self.add_processor(echoing)
        return self

    def _topic_for(self, name: str) -> Topic:
        from .topic import Topic

        if isinstance(self.channel, Topic):
            return self.derive_topic(name)
        return self.app._topic_named(name)

    def derive_topic(
        self, name: str, *, schema: Any = None, key_type: Any = None, value_type: Any = None,
        prefix: str = "", suffix: str = "",
    ) -> Topic:
        """A topic description named ``prefix + name + suffix`` with this stream's topic's
        types and config (or ``schema=``, ``key_type=``, ``value_type=``), as Faust's."""
        from .serializers import Schema
        from .topic import Topic

        source = self.channel
        if not isinstance(source, Topic):
            raise InvalidArgument(
                f"derive_topic({name!r}) needs a stream over a topic, not {source!r}"
            )
        if schema is None and (key_type is not None or value_type is not None):
            schema = Schema(
                key_type=key_type if key_type is not None else source.schema.key_type,
                value_type=value_type if value_type is not None else source.schema.value_type,
                key_serializer=source.schema.key_serializer,
                value_serializer=source.schema.value_serializer,
            )
        options = _topic_options(source)
        if schema is not None:
            options["schema"] = schema
        return self.app.topic(f"{prefix}{name}{suffix}", **options)

    # -- combining ----------------------------------------------------------------
    def combine(self, *nodes: Stream) -> MergedStream:
        """One stream of the values of this stream and ``nodes`` as they arrive (``s1 & s2``).

        See :class:`detstream.stream_kinds.MergedStream`.
        """
        from .stream_kinds import MergedStream

        return self._derived(MergedStream(self.app, [self, *nodes]))

    def __and__(self, other: Stream) -> MergedStream:
        return self.combine(other)

    def join(self, *fields: Any) -> Stream:
        """Faust declares stream joins but never implemented them: refused here at once."""
        raise _no_joins("join")

    def left_join(self, *fields: Any) -> Stream:
        raise _no_joins("left_join")

    def inner_join(self, *fields: Any) -> Stream:
        raise _no_joins("inner_join")

    def outer_join(self, *fields: Any) -> Stream:
        raise _no_joins("outer_join")


def _last_of(stream: Stream, link: str) -> Stream:
    node, seen = stream, {id(stream)}
    while (following := getattr(node, link)) is not None:
        if id(following) in seen:
            raise RuntimeError(f"a loop in Stream.{link}: {following!r} is in it twice")
        seen.add(id(following))
        node = following
    return node


def _release(item: Item) -> None:
    """Ack a buffered item a closing stream never started (its share of the record's refcount)."""
    if isinstance(item, Thrown):
        return
    message = item.message if isinstance(item, Event) else item
    if message is not None:
        message.ack()


def _no_joins(name: str) -> NotImplementedError:
    return NotImplementedError(
        f"Stream.{name}() is not implemented (nor in Faust, whose join strategies raise "
        "NotImplementedError): combine streams with `s1 & s2` and join their values "
        "yourself, e.g. through a table"
    )


def _topic_options(topic: Topic) -> dict[str, Any]:
    """What ``Topic.derive`` copies, as keyword arguments of ``app.topic``."""
    return dict(
        schema=topic.schema, partitions=topic.partitions, retention=topic.retention,
        compacting=topic.compacting, deleting=topic.deleting, replicas=topic.replicas,
        acks=topic.acks, internal=topic.internal, config=topic.config, maxsize=topic.maxsize,
    )


async def _hand_on(channel: Channel, event: Event, key: Any) -> None:
    """Put ``event`` re-keyed into every buffer of the in-memory ``channel``, sharing its message.

    Each buffer's stream acks the message too, so the source event counts as
    done only when they all are (a ``put`` of ``agent.test_context()`` waits
    for the agent's table writes after a ``group_by``).
    """
    buffers = list(channel.subscribers)
    message = event.message
    if message is not None:
        message.refcount += len(buffers)
    for buffer in buffers:
        await buffer.put(Event(event.app, key, event.value, dict(event.headers), message))


class _Skip:
    """Marker a filter returns to drop the value."""


_SKIP = _Skip()


#: types a ``group_by`` key may have that are never a coroutine: ``asyncio.iscoroutine``
#: asks abc for them (two more calls per event).
_NEVER_AWAITED = frozenset({str, bytes, int, float, bool, type(None), tuple})


def _key_getter(key: Any, name: str | None) -> tuple[Callable[[Any], Any], str]:
    field = getattr(key, "field", None)
    if field is not None and hasattr(key, "getattr"):
        if type(key).getattr is FieldDescriptor.getattr:  # its path, read in C (per event)
            return operator.attrgetter(".".join(node.field for node in key._path())), name or field
        return key.getattr, name or field
    if callable(key):
        if not name:
            raise InvalidArgument("group_by(callable) needs name= to name the repartition topic")
        return key, name
    raise InvalidArgument(f"group_by() takes a Record field or a callable, not {key!r}")


__all__ = ["Stream", "current_event"]
