"""Events: a decoded message on its way through a stream, and who acks it.

A ``Message`` is what the consumer fetched (bytes plus where it came from);
it is shared by every stream subscribed to its topic and is acked once each
of them is done with it (a reference count, as in Faust). An ``Event`` is one
stream's decoded view of it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ._types import TP


class Lease(Protocol):
    """What a stream reports to about a fetched message: whoever delivered it.

    The conductor holds the lease of every message it fetches (the agent
    test context of the messages it makes). A stream reaches its deliverer
    only through ``message.lease``: it never needs the app or the conductor
    to decide whether a message may start, is still current, or is done.
    """

    #: True while no fresh message may start (an exactly-once commit is quiescing); an
    #: attribute, not a method: streams read it per message.
    quiescing: bool

    async def may_start(self, message: Message) -> None:
        """Return once ``message`` may start."""

    def is_current(self, message: Message) -> bool:
        """Whether ``message`` still belongs to this worker's assignment."""

    def begin(self, message: Message) -> bool:
        """A stream begins ``message`` if it is still current; whether it was."""

    def finished(self, message: Message) -> None:
        """A stream is done processing ``message`` (acked or not)."""

    def acked(self, message: Message) -> None:
        """The last reference to ``message`` was acked."""

    def done(self, message: Message, ack: bool) -> None:
        """``finished``, then ``message.ack()`` if ``ack``: how a stream ends an event."""


class Message:
    """A fetched record plus its acknowledgement state.

    Slots, and ``tp`` made once (shared by a fetched batch): one is made
    per delivered record, and the engine asks for ``tp`` about a dozen
    times per event. The conductor passes every argument by position (half
    the cost of a call by keyword).
    """

    __slots__ = (
        "topic", "partition", "offset", "timestamp", "key", "value", "headers", "generation",
        "refcount", "acked", "started", "lease", "tp", "__weakref__",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        timestamp: float,
        key: bytes | None,
        value: bytes | None,
        headers: tuple[tuple[str, bytes], ...] = (),
        generation: int = -1,
        refcount: int = 0,
        acked: bool = False,
        started: bool = False,
        lease: Lease | None = None,
        tp: TP | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
        #: consumer generation the record was fetched in; stale ones are dropped.
        self.generation = generation
        self.refcount = refcount
        self.acked = acked
        #: a stream began processing it (an exactly-once commit waits for it to be acked).
        self.started = started
        #: who delivered it and keeps its books (None: nobody, e.g. a changelog event).
        self.lease = lease
        self.tp = tp if tp is not None else TP(topic, partition)

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r}, generation={self.generation}, acked={self.acked})"
        )

    def ack(self) -> bool:
        """Drop one reference; True when this was the last one."""
        if self.acked:
            return False
        self.refcount -= 1
        if self.refcount > 0:
            return False
        self.acked = True
        if self.lease is not None:
            self.lease.acked(self)
        return True


#: the type of an event's value: ``Event[Order]`` (Faust's ``EventT[T]``), for annotations.
T = TypeVar("T")


@dataclass(eq=False)
class Event(Generic[T]):
    """One stream's view of a message: decoded key and value."""

    # Slots by hand (``dataclass(slots=True)`` has no weakref slot before 3.11): one
    # Event is made per delivery, and the send-failure report keeps weak references.
    __slots__ = ("app", "key", "value", "headers", "message", "__weakref__")

    app: Any
    key: Any
    value: Any
    headers: dict[str, bytes]
    message: Message | None

    async def send(self, channel: Any, key: Any = ..., value: Any = ..., **kwargs: Any) -> Any:
        """Send this event's key, value and headers (unless given) to ``channel``, serialised
        again by it: a topic, channel, agent or topic name (as Faust's ``event.send``)."""
        if "headers" not in kwargs:
            kwargs["headers"] = self.headers or None
        return await _resolve(self.app, channel).send(
            key=self.key if key is ... else key,
            value=self.value if value is ... else value,
            **kwargs,
        )

    async def forward(self, channel: Any, key: Any = ..., value: Any = ..., **kwargs: Any) -> Any:
        """Send the record this event came from to ``channel`` as it was: its key and value
        bytes are not serialised again (unless ``key=``/``value=`` replace them), its
        headers go along. ``channel`` is a topic, channel, agent or topic name.

        An event of an in-memory channel has no bytes: its key and value are sent.
        """
        target = _resolve(self.app, channel)
        message = self.message
        raw_key = message.key if message is not None and key is ... else key
        raw_value = message.value if message is not None and value is ... else value
        if "headers" not in kwargs:
            kwargs["headers"] = (dict(message.headers) if message is not None
                                 else self.headers) or None
        send_encoded = getattr(target, "send_encoded", None)
        if message is not None and send_encoded is not None and _encoded(raw_key, raw_value):
            return await send_encoded(key=raw_key, value=raw_value, **kwargs)
        return await target.send(
            key=self.key if key is ... else key, value=self.value if value is ... else value,
            **kwargs,
        )

    def ack(self) -> AckResult:
        """Ack this event (its stream's reference to the record); true if it was the last one.

        What it returns may also be awaited (``await event.ack()``, as Faust's
        streams guide writes it), giving the same answer.
        """
        return AckResult(self.message.ack() if self.message is not None else False)

    async def __aenter__(self) -> Event:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.ack()


class AckResult(int):
    """``event.ack()``'s answer: a bool that may also be awaited (``await event.ack()``)."""

    def __new__(cls, last: bool) -> AckResult:
        return super().__new__(cls, bool(last))

    def __repr__(self) -> str:
        return repr(bool(self))

    def __await__(self) -> Generator[Any, None, bool]:
        return bool(self)
        yield  # a generator: ``await`` returns at once, with the bool


def _resolve(app: Any, channel: Any) -> Any:
    """A topic name is the app's topic of that name; anything else is sent to as it is."""
    return app._topic_named(channel) if isinstance(channel, str) else channel


def _encoded(*parts: Any) -> bool:
    return all(part is None or isinstance(part, (bytes, bytearray)) for part in parts)


_current_event: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "detstream_current_event", default=None
)


#: ``current_event() -> Event | None``: the event the running stream is processing (Faust's
#: ``faust.current_event``); the context variable's own ``get``, as the engine and the
#: simulator ask for it at every event and every send.
current_event: Callable[[], Event | None] = _current_event.get


#: ``set_current_event(event) -> token``: the context variable's own ``set`` (streams call
#: it twice per event, so no Python-level wrapper around it).
set_current_event: Callable[[Event | None], contextvars.Token[Event | None]] = _current_event.set


def reset_current_event(token: contextvars.Token[Event | None]) -> None:
    _current_event.reset(token)


#: the agent whose actor is running (an ``Agent``; typed loosely: agents import this module).
_current_agent: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "detstream_current_agent", default=None
)


#: ``current_agent()``: the agent whose actor is running (used to refuse concurrent table
#: writes, and to name what a send came from); the context variable's own ``get``.
current_agent: Callable[[], Any] = _current_agent.get


#: ``set_current_agent(agent) -> token``: the context variable's own ``set`` (no Python call
#: around it: the producer's drain sets it for every run of sends from another agent).
set_current_agent: Callable[[Any], contextvars.Token[Any]] = _current_agent.set


def reset_current_agent(token: contextvars.Token[Any]) -> None:
    _current_agent.reset(token)


class Thrown:
    """An exception put in a subscriber buffer: the stream reading it raises it (Faust's ``throw``)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
