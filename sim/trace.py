"""The trace: one canonical line per externally visible step of a run.

A line is ``<virtual time> <actor> <kind> key=value ...``. Everything in it is
derived from the seed and the code (virtual time, names, offsets, crc32 of
payloads), never from addresses or the wall clock, so equal runs produce equal
bytes and the sha256 of the trace identifies a run.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple


class TraceEvent(NamedTuple):
    """The structured form of a trace line, read by the checks."""

    time: float
    actor: str
    kind: str
    fields: dict[str, Any]


def format_value(value: Any) -> str:
    """Render a field value canonically and compactly."""
    if isinstance(value, bytes):
        if len(value) <= 24 and value.isascii() and value.isalnum():
            return f"b'{value.decode()}'"
        return f"crc:{zlib.crc32(value):08x}/{len(value)}"
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, (set, frozenset)):
        return "[" + ",".join(sorted(format_value(v) for v in value)) + "]"
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    if value is None:
        return "-"
    text = str(value)
    return text if " " not in text else repr(text)


class Trace:
    """Collects trace events in order and hashes them."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.events: list[TraceEvent] = []
        self._lines: list[str] = []
        self._waiters: list[tuple[Callable[[TraceEvent], bool], asyncio.Future[TraceEvent]]] = []

    def record(self, actor: str, kind: str, **fields: Any) -> None:
        """Append one step; field order is the call's keyword order."""
        now = self._clock()
        event = TraceEvent(now, actor, kind, fields)
        self.events.append(event)
        rendered = " ".join(f"{k}={format_value(v)}" for k, v in fields.items())
        self._lines.append(f"{now:012.6f} {actor} {kind} {rendered}".rstrip())
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

    @property
    def lines(self) -> list[str]:
        return self._lines

    def of_kind(self, kind: str) -> Iterator[TraceEvent]:
        return (e for e in self.events if e.kind == kind)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        for line in self._lines:
            digest.update(line.encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def write(self, path: str | Path) -> None:
        Path(path).write_text("".join(line + "\n" for line in self._lines))


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
