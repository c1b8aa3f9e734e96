"""The history of every write of a run, Jepsen style: what was sent, where it landed, what was acked.

The final read (``sim.final_read``) compares it with what the topics hold at
the end. A write is one ``send`` by one producer instance; the cluster
records each offset the write was appended at (twice when a retry after a
lost response appended it again), the producer records the acknowledgement.

A write made while a stream processes an event also records its *origin*:
the input event (topic partition and offset), the agent, and which attempt
(delivery) of that event it was. An exactly-once app may process an event
several times (a crash, a fenced zombie), but the output of only one attempt
may ever be committed: two attempts in the final read are a duplicate.

A run keeps one write per appended record until its report is dropped, so
the history holds no per-record container the cyclic collector must walk
where an immutable value does: a write's offsets are a tuple of ints (one
offset almost always), and its partition, and its origin's, are the one
``TP`` object of that partition (a ``TP`` is a named tuple,
which the collector never untracks, and the engine makes one per message).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from detstream._types import TP
from detstream.events import current_agent, current_event


class Origin(NamedTuple):
    """The input event whose processing made a write, and which attempt of it."""

    tp: TP
    offset: int
    agent: str
    attempt: int


@dataclass(eq=False, slots=True)
class Write:
    """One send: its destination, payload, producer and fate."""

    producer: str
    tp: TP
    key: bytes | None
    value: bytes | None
    #: the producer deduplicates retries (idempotent or transactional).
    idempotent: bool
    transactional: bool
    origin: Origin | None
    #: offsets of ``tp`` this write was appended at (more than one: a duplicate).
    offsets: tuple[int, ...] = ()
    acked: bool = False
    #: the error that refused the send for good (too large, fenced, timed out), if one did.
    refused: str | None = None
    #: loop time of the send (a later delivery of its origin event redoes it).
    sent_at: float = 0.0


class WriteHistory:
    """Every write of one cluster, in send order."""

    def __init__(self, clock: Callable[[], float] = lambda: 0.0) -> None:
        self._clock = clock
        self.writes: list[Write] = []
        #: the one ``TP`` object of each partition written or read from.
        self._tps: dict[TP, TP] = {}
        self._producers = itertools.count(1)
        self._attempt_numbers = itertools.count(1)
        #: id of an event -> (a weak reference to it, its attempt number). Keyed by id with the
        #: reference to tell a reused id (a new event) from the same event: a WeakKeyDictionary
        #: did the same in Python code (a keyed reference with a callback per event).
        self._attempts: dict[int, tuple[weakref.ref[Any], int]] = {}
        #: the last event and agent an origin was made for, and that origin: consecutive
        #: sends of one event (a sentence's words) share it without a weak-dict lookup.
        self._last: tuple[Any, Any, Origin | None] = (None, None, None)

    def new_producer(self, client: str) -> str:
        """A label for one producer instance of ``client`` (a worker has one per incarnation)."""
        return f"{client}/p{next(self._producers)}"

    def sent(
        self, producer: str, tp: TP, key: bytes | None, value: bytes | None, *,
        idempotent: bool, transactional: bool,
    ) -> Write:
        """A send starts (in the sender's context, so its origin is the event being processed)."""
        tp = self._tps.get(tp) or self._tps.setdefault(tp, tp)
        event = current_event()
        if event is None or event.message is None:
            origin = None
        elif event is self._last[0] and current_agent() is self._last[1]:
            origin = self._last[2]  # another send of the same event (a sentence's words)
        else:
            origin = self._origin(event)
        write = Write(producer, tp, key, value, idempotent, transactional, origin, (), False, None,
                      self._clock())  # (by position: one per record)
        self.writes.append(write)
        return write

    def appended(self, write: Write, offset: int) -> None:
        write.offsets += (offset,)

    def _origin(self, event: Any) -> Origin:
        """The origin of a send made while ``event`` (a consumed one) is processed."""
        agent = current_agent()
        known = self._attempts.get(id(event))
        if known is not None and known[0]() is event:
            attempt = known[1]
        else:
            attempt = next(self._attempt_numbers)
            self._attempts[id(event)] = (weakref.ref(event), attempt)
        message = event.message
        tp = message.tp
        tp = self._tps.get(tp) or self._tps.setdefault(tp, tp)
        origin = Origin(tp, message.offset, agent.name if agent else "-", attempt)
        self._last = (event, agent, origin)
        return origin
