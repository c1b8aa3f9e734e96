"""The trace: one canonical line per externally visible step of a run.

A line is ``<virtual time> <actor> <kind> key=value ...``. Everything in it is
derived from the seed and the code (virtual time, names, offsets, crc32 of
payloads), never from addresses or the wall clock, so equal runs produce equal
bytes and the sha256 of the trace identifies a run.

Recording is on the hot path (about three steps per delivered event), so
``Trace.record`` stores the structured event and formats nothing: text is
rendered only when someone reads it (``lines``, ``sha256``, ``write``: the
CLI's hash line, ``--trace``, divergence reports, tests). Lazy rendering must
show what the step was *when it happened*, so a step whose fields are not all
of an immutable type (a list of partitions, a table value the app may mutate
in place later) is rendered at once, as before.

A run keeps every event until its report is dropped, and the collector walks
them, so a step's ``tp`` field (where every step names its partition) is
stored as the one ``TP`` object of that partition (the engine makes a new one
per message: a named tuple, which the collector never untracks). The checks read events by kind: ``of_kind`` and
``of_kinds`` use an index by kind, built once over the events so far.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, NamedTuple, overload

from detstream._types import TP


class TraceEvent(NamedTuple):
    """The structured form of a trace line, read by the checks."""

    time: float
    actor: str
    kind: str
    fields: dict[str, Any]


def format_value(value: Any) -> str:
    """Render a field value canonically and compactly."""
    if isinstance(value, bytes):
        return _bytes(value)
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, (set, frozenset)):
        return "[" + ",".join(sorted(_format_item(v) for v in value)) + "]"
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return "[" + ",".join(_format_item(v) for v in value) + "]"
    if value is None:
        return "-"
    text = str(value)
    return text if " " not in text else repr(text)


def _text(value: str) -> str:
    return value if " " not in value else repr(value)


def _bytes(value: bytes) -> str:
    if len(value) <= 24 and value.isascii() and value.isalnum():
        return f"b'{value.decode()}'"
    return f"crc:{zlib.crc32(value):08x}/{len(value)}"


#: the text of each partition seen (a run names a few hundred partitions in every other line).
_TP_TEXT: dict[TP, str] = {}


def _tp(value: TP) -> str:
    text = _TP_TEXT.get(value)
    if text is None:
        text = _TP_TEXT[value] = _text(f"{value.topic}[{value.partition}]")
    return text


#: Exact types whose values cannot change after they are recorded, with a
#: renderer equal to ``format_value`` for them (a faster path: no isinstance
#: chain). A step whose values are all of these types is rendered lazily.
_IMMUTABLE: dict[type, Callable[[Any], str]] = {
    str: _text,
    int: str,
    bool: str,
    type(None): lambda _: "-",
    float: lambda value: f"{value:.6f}",
    bytes: _bytes,
    TP: _tp,
}


def _format_item(value: Any) -> str:
    """``format_value`` of an item of a list or set: the exact-type renderers first."""
    render = _IMMUTABLE.get(type(value))
    return render(value) if render is not None else format_value(value)


def _render(event: TraceEvent) -> str:
    time, actor, kind, fields = event
    parts = [f"{time:012.6f} {actor} {kind}"]
    renderers = _IMMUTABLE
    for key, value in fields.items():
        cls = type(value)
        if cls is int:  # the commonest value (offsets, partitions, counts): no call
            parts.append(f"{key}={value}")
        else:
            parts.append(f"{key}={renderers.get(cls, format_value)(value)}")
    return " ".join(parts).rstrip()


#: ``TraceEvent(...)`` without the namedtuple's Python-level ``__new__`` (one per step).
_new_event = tuple.__new__


class TraceLines(Sequence[str]):
    """The trace's text lines, a live view rendered on demand.

    ``len`` costs nothing (one line per event); reading a line renders the
    lines up to it once and keeps them. Compares equal to any sequence of the
    same strings (a list read back from a trace file, another trace's lines).
    """

    __slots__ = ("_trace",)

    def __init__(self, trace: Trace) -> None:
        self._trace = trace

    def __len__(self) -> int:
        return len(self._trace.events)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        return self._trace._rendered()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._trace._rendered())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, TraceLines):
            return other._trace is self._trace or self._trace._rendered() == other._trace._rendered()
        if isinstance(other, (list, tuple)):
            return self._trace._rendered() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable: it grows with the trace

    def __repr__(self) -> str:
        return f"TraceLines({len(self)} lines)"


class Trace:
    """Collects trace events in order and hashes them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        #: what stamps its events (the run's loop time).
        self.clock = clock
        self.events: list[TraceEvent] = []
        #: lines rendered at record time (index -> line): steps with a possibly mutable value.
        self._early: dict[int, str] = {}
        #: lines rendered so far, a prefix of the trace (filled on demand).
        self._lines: list[str] = []
        #: sha256 over the first ``_hashed`` lines, each followed by a newline.
        self._digest = hashlib.sha256()
        self._hashed = 0
        self._waiters: list[tuple[Callable[[TraceEvent], bool], asyncio.Future[TraceEvent]]] = []
        #: the one ``TP`` object of each partition in a field so far.
        self._tps: dict[TP, TP] = {}
        #: kind -> indexes of its events (kept by ``record``).
        self._by_kind: dict[str, list[int]] = {}
        #: id of each event -> its index, for ``index_of`` (built when first asked, per length).
        self._positions: dict[int, int] = {}

    def record(self, actor: str, kind: str, **fields: Any) -> None:
        """Append one step; field order is the call's keyword order.

        A step with a value that may change later (a list, a table value the
        app mutates in place) is rendered now, as it is when it happens.
        """
        immutable = _IMMUTABLE
        for value in fields.values():
            if type(value) not in immutable:
                index = len(self.events)
                self.record_atoms(actor, kind, fields)
                self._early[index] = _render(self.events[index])
                return
        self.record_atoms(actor, kind, fields)

    def record_atoms(self, actor: str, kind: str, fields: dict[str, Any]) -> None:
        """``record`` of a step the caller vouches for: every value is of an immutable type
        (``detstream.tracing.ATOMS``), so none is checked (a produce request's records, the
        engine's deliveries and table writes)."""
        tp = fields.get("tp")
        if tp is not None and type(tp) is TP:  # (a partition is always a step's ``tp`` field)
            fields["tp"] = self._tps.setdefault(tp, tp)  # an existing key: order is kept
        events = self.events
        index = len(events)
        event = _new_event(TraceEvent, (self.clock(), actor, kind, fields))
        events.append(event)
        positions = self._by_kind.get(kind)
        if positions is None:
            self._by_kind[kind] = [index]
        else:
            positions.append(index)
        if self._waiters:
            self._wake(event)

    def next_event(self, matches: Callable[[TraceEvent], bool]) -> asyncio.Future[TraceEvent]:
        """A future of the next recorded event that ``matches`` (faults triggered by a step)."""
        future: asyncio.Future[TraceEvent] = asyncio.get_running_loop().create_future()
        self._waiters.append((matches, future))
        return future

    def _wake(self, event: TraceEvent) -> None:
        waiting = []
        for matches, future in self._waiters:
            if future.done():
                continue
            if matches(event):
                future.set_result(event)
            else:
                waiting.append((matches, future))
        self._waiters = waiting

    def _rendered(self) -> list[str]:
        """Every line so far: renders the events recorded since the last call."""
        lines, events = self._lines, self.events
        if len(lines) < len(events):
            early = self._early
            for index in range(len(lines), len(events)):
                line = early.pop(index, None)
                lines.append(line if line is not None else _render(events[index]))
        return lines

    @property
    def lines(self) -> TraceLines:
        """The text lines (rendered when read; ``len`` is free)."""
        return TraceLines(self)

    def _kind_index(self) -> dict[str, list[int]]:
        """kind -> indexes of its events, in order."""
        return self._by_kind

    def kind_counts(self) -> Counter[str]:
        """How many events of each kind were recorded so far."""
        return Counter({kind: len(indexes) for kind, indexes in self._kind_index().items()})

    def of_kind(self, kind: str) -> Iterator[TraceEvent]:
        """The events of ``kind``, in order.

        An iterator made in C (the checks walk every delivery of a run
        through these): no Python step per event.
        """
        return map(self.events.__getitem__, self._kind_index().get(kind, ()))

    def of_kinds(self, *kinds: str) -> Iterator[TraceEvent]:
        """The events of any of ``kinds`` recorded so far, in trace order (as ``of_kind``).

        The indexes of each kind are sorted runs: ``sorted`` merges them in C.
        """
        by_kind = self._kind_index()
        lists = [by_kind[kind] for kind in dict.fromkeys(kinds) if kind in by_kind]
        indexes: Iterable[int] = lists[0] if len(lists) == 1 else sorted(chain.from_iterable(lists))
        return map(self.events.__getitem__, indexes)

    def index_of(self, event: TraceEvent) -> int:
        """The position of ``event`` (one of ``events``, by identity): its line number, from 0.

        A check cites the steps that prove a violation by position, so that a
        viewer (the run's HTML page) can link to them. Only a failing check
        asks, so the map is built then, not kept up by ``record``.
        """
        if len(self._positions) != len(self.events):
            self._positions = {id(e): index for index, e in enumerate(self.events)}
        return self._positions[id(event)]

    def sha256(self) -> str:
        """The sha256 of the text (each line and a newline): equal runs, equal hashes.

        Incremental: a second call hashes only the lines recorded since the first.
        """
        lines = self._rendered()
        if self._hashed < len(lines):
            self._digest.update(("\n".join(lines[self._hashed:]) + "\n").encode())
            self._hashed = len(lines)
        return self._digest.hexdigest()

    def write(self, path: str | Path) -> None:
        Path(path).write_text("".join(line + "\n" for line in self._rendered()))


#: a worker's trace events after which it holds no partitions (and no table state).
_HOLDS_NOTHING_AFTER = frozenset({"crash", "app-crashed", "start", "lost"})


def takes_over(worker: str, past: list[TraceEvent]) -> Callable[[TraceEvent], bool]:
    """A ``next_event`` predicate: ``worker``'s next assignment of partitions it did not hold.

    What it holds is followed through its ``assigned``, ``revoked``, ``lost``,
    ``crash``, ``app-crashed`` and ``start`` events, starting from ``past`` (the trace so far):
    a restarted worker holds nothing, so everything it is given is a takeover.
    """
    held: set[str] = set()

    def follow(event: TraceEvent) -> bool:
        nonlocal held
        if event.actor != worker:
            return False
        if event.kind == "assigned":
            new = set(event.fields.get("tps", ())) - held
            held = set(event.fields.get("tps", ()))
            return bool(new)
        if event.kind == "revoked":
            held -= set(event.fields.get("tps", ()))
        elif event.kind in _HOLDS_NOTHING_AFTER:
            held = set()
        return False

    for event in past:
        follow(event)
    return follow
