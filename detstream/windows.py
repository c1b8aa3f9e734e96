"""Window math: which time ranges a timestamp falls in (Faust's ``faust.windows``).

A window range is ``(start, end)`` in float seconds. As in Faust, the end is
``start + size - 0.1``: the last tenth of a second belongs to the next window,
so a timestamp on a boundary lands in exactly one tumbling window, and the
range stays a closed interval that survives a JSON round trip unchanged
(windowed table keys are ``(key, (start, end))`` in the changelog).

These classes are pure: no clock, no I/O. Staleness is decided against a
``latest_timestamp`` the caller passes (the expiry sweep passes the wall
clock, read through :func:`detstream.clock.wall_time`).

Faust steps hopping windows with ``range(int(start), int(ts) + 1, int(step))``,
which truncates fractional sizes and steps; here the arithmetic is exact for
fractional values too, and equal to Faust's for whole seconds.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from datetime import timedelta

from .errors import InvalidArgument

__all__ = [
    "HoppingWindow",
    "SlidingWindow",
    "TumblingWindow",
    "Window",
    "WindowRange",
    "window_range_from_start",
]

#: ``(start, end)`` in seconds; ``end`` is inclusive.
WindowRange = tuple[float, float]

Seconds = float | int | timedelta


def window_range_from_start(start: float, size: float) -> WindowRange:
    """The range of a window of ``size`` seconds starting at ``start`` (end = start + size - 0.1)."""
    return (float(start), float(start) + size - 0.1)


def seconds(value: Seconds, what: str) -> float:
    """``value`` as float seconds; a timedelta or a number, never a bool or a str."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{what} must be a number of seconds or a timedelta, got {value!r}")
    return float(value)


def _positive(value: Seconds, what: str) -> float:
    number = seconds(value, what)
    if not number > 0 or math.isinf(number):
        raise InvalidArgument(f"{what} must be > 0 seconds, got {value!r}")
    return number


def _expires(value: Seconds | None, what: str) -> float | None:
    """None (never expire) or a positive duration; 0 would expire every window at once."""
    return None if value is None else _positive(value, what)


class Window(ABC):
    """What a windowed table asks of its window: ranges, lookups and staleness."""

    #: seconds after which a window is stale and deleted; None keeps windows forever.
    expires: float | None = None

    @abstractmethod
    def ranges(self, timestamp: float) -> list[WindowRange]:
        """Every window ``timestamp`` falls in, oldest first (a write updates all of them)."""

    @abstractmethod
    def current(self, timestamp: float) -> WindowRange:
        """The latest window containing ``timestamp`` (what ``.current()`` and ``.value()`` read)."""

    @abstractmethod
    def earliest(self, timestamp: float) -> WindowRange:
        """The oldest window containing ``timestamp`` (what ``.now()`` reads)."""

    def delta(self, timestamp: float, d: Seconds) -> WindowRange:
        """The current window of ``timestamp - d`` (``.delta(d)``: "d seconds ago")."""
        return self.current(timestamp - seconds(d, "delta"))

    @abstractmethod
    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        """Whether a window ending at ``timestamp`` expired, seen from ``latest_timestamp``."""


class HoppingWindow(Window):
    """Fixed-size windows of ``size`` seconds starting every ``step`` seconds (they overlap)."""

    def __init__(self, size: Seconds, step: Seconds, expires: Seconds | None = None) -> None:
        self.size = _positive(size, f"{type(self).__name__} size")
        self.step = _positive(step, f"{type(self).__name__} step")
        if self.step > self.size:
            raise InvalidArgument(
                f"hopping window step ({self.step:g}s) must not exceed its size ({self.size:g}s): "
                "timestamps between two windows would fall in none and be dropped"
            )
        self.expires = _expires(expires, f"{type(self).__name__} expires")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: size={self.size:g} step={self.step:g} expires={self.expires}>"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and (self.size, self.step, self.expires) == (other.size, other.step, other.expires)
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.size, self.step, self.expires))

    def _first_start(self, timestamp: float) -> float:
        """Start of the oldest window containing ``timestamp``."""
        return (timestamp // self.step) * self.step - self.size + self.step

    def ranges(self, timestamp: float) -> list[WindowRange]:
        first = self._first_start(timestamp)
        count = 0
        while first + count * self.step <= timestamp:
            count += 1
        return [window_range_from_start(first + i * self.step, self.size) for i in range(count)]

    def current(self, timestamp: float) -> WindowRange:
        return window_range_from_start((timestamp // self.step) * self.step, self.size)

    def earliest(self, timestamp: float) -> WindowRange:
        return window_range_from_start(self._first_start(timestamp), self.size)

    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        if self.expires is None:
            return False
        return timestamp <= self.current(latest_timestamp - self.expires)[0]


class TumblingWindow(HoppingWindow):
    """Back-to-back windows of ``size`` seconds: every timestamp is in exactly one."""

    def __init__(self, size: Seconds, expires: Seconds | None = None) -> None:
        super().__init__(size, size, expires)

    def __repr__(self) -> str:
        return f"<TumblingWindow: size={self.size:g} expires={self.expires}>"


class SlidingWindow(Window):
    """One window per timestamp: ``(ts - before, ts + after)``."""

    def __init__(self, before: Seconds, after: Seconds, expires: Seconds | None) -> None:
        self.before = seconds(before, "SlidingWindow before")
        self.after = seconds(after, "SlidingWindow after")
        if self.before < 0 or self.after < 0:
            raise InvalidArgument(
                f"SlidingWindow before and after must be >= 0, got {before!r} and {after!r}"
            )
        self.expires = _expires(expires, "SlidingWindow expires")

    def __repr__(self) -> str:
        return f"<SlidingWindow: before={self.before:g} after={self.after:g} expires={self.expires}>"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and (self.before, self.after, self.expires) == (other.before, other.after, other.expires)
        )

    def __hash__(self) -> int:
        return hash(("SlidingWindow", self.before, self.after, self.expires))

    def ranges(self, timestamp: float) -> list[WindowRange]:
        return [self.current(timestamp)]

    def current(self, timestamp: float) -> WindowRange:
        return (timestamp - self.before, timestamp + self.after)

    def earliest(self, timestamp: float) -> WindowRange:
        return self.current(timestamp)

    def stale(self, timestamp: float, latest_timestamp: float) -> bool:
        if self.expires is None:
            return False
        return timestamp <= latest_timestamp - self.expires
