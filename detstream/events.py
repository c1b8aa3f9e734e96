"""Events: a decoded message on its way through a stream, and who acks it.

A ``Message`` is what the consumer fetched (bytes plus where it came from);
it is shared by every stream subscribed to its topic and is acked once each
of them is done with it (a reference count, as in Faust). An ``Event`` is one
stream's decoded view of it.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._types import TP


@dataclass(eq=False)
class Message:
    """A fetched record plus its acknowledgement state."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    #: consumer generation the record was fetched in; stale ones are dropped.
    generation: int = -1
    refcount: int = 0
    acked: bool = False
    #: a stream began processing it (an exactly-once commit waits for it to be acked).
    started: bool = False
    on_acked: Callable[[Message], None] | None = field(default=None, repr=False)

    @functools.cached_property
    def tp(self) -> TP:
        """Made once: the engine asks for it about a dozen times per event."""
        return TP(self.topic, self.partition)

    def ack(self) -> bool:
        """Drop one reference; True when this was the last one."""
        if self.acked:
            return False
        self.refcount -= 1
        if self.refcount > 0:
            return False
        self.acked = True
        if self.on_acked is not None:
            self.on_acked(self)
        return True


@dataclass(eq=False)
class Event:
    """One stream's view of a message: decoded key and value."""

    app: Any
    key: Any
    value: Any
    headers: dict[str, bytes]
    message: Message | None

    async def send(self, channel: Any, key: Any = ..., value: Any = ..., **kwargs: Any) -> Any:
        """Re-send this event (same key/value unless given) to ``channel``."""
        return await channel.send(
            key=self.key if key is ... else key,
            value=self.value if value is ... else value,
            **kwargs,
        )

    def ack(self) -> bool:
        return self.message.ack() if self.message is not None else False

    async def __aenter__(self) -> Event:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        self.ack()


_current_event: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "detstream_current_event", default=None
)


def current_event() -> Event | None:
    """The event the running stream is processing (Faust's ``faust.current_event``)."""
    return _current_event.get()


def set_current_event(event: Event | None) -> contextvars.Token[Event | None]:
    return _current_event.set(event)


def reset_current_event(token: contextvars.Token[Event | None]) -> None:
    _current_event.reset(token)


#: the agent whose actor is running (an ``Agent``; typed loosely: agents import this module).
_current_agent: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "detstream_current_agent", default=None
)


def current_agent() -> Any:
    """The agent whose actor is running (used to refuse concurrent table writes)."""
    return _current_agent.get()


def set_current_agent(agent: Any) -> contextvars.Token[Any]:
    return _current_agent.set(agent)


def reset_current_agent(token: contextvars.Token[Any]) -> None:
    _current_agent.reset(token)
