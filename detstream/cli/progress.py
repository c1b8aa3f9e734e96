"""The live status line of a seed sweep on a terminal: seeds done, passed, failed, rate, ETA.

A sweep of hundreds of seeds runs for minutes and prints its verdict only at
the end (in seed order, so that it is the same with any ``--jobs``). On a
terminal, :func:`sweep_progress` shows one line on stderr, rewritten in place
with ``\\r`` as each seed's outcome arrives and erased before the final
output. Anywhere else (a pipe, CI, click's ``CliRunner``) it writes nothing,
so what a sweep prints there stays byte for byte the same.

The rate and ETA read the real (monotonic) clock. That is the one wall-clock
reading of a sweep and it is safe: it happens in the parent process between
runs, outside every run, and its values reach only the terminal's stderr,
never stdout, JSON or a trace.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

__all__ = ["LiveLine", "SweepProgress", "format_duration", "status_line", "sweep_progress"]


def format_duration(seconds: float) -> str:
    """``45s``, ``1m53s``, ``2h05m``: short enough for a status line, rounded up."""
    whole = max(0, math.ceil(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def status_line(label: str, done: int, total: int, failed: int, elapsed: float,
                width: int | None = None) -> str:
    """``word_count.py  seeds 37/500  passed 36  failed 1  4.1 seeds/s  ETA 1m53s``.

    The rate and ETA appear once a seed is done (before that there is nothing
    to extrapolate from). A rate under one seed a second reads as seconds per
    seed, which stays legible for long chaos runs. Past ``width``, the label
    is shortened first (its start goes), so the counts and the ETA stay.
    """
    parts = [f"seeds {done}/{total}", f"passed {done - failed}", f"failed {failed}"]
    if done and elapsed > 0:
        rate = done / elapsed
        parts.append(f"{rate:.1f} seeds/s" if rate >= 1 else f"{1 / rate:.1f} s/seed")
        parts.append(f"ETA {format_duration((total - done) / rate)}")
    counts = "  ".join(parts)
    room = len(label) if width is None else width - len(counts) - 2
    if room < len(label):
        label = "~" + label[len(label) - room + 1:] if room > 1 else ""
    return f"{label}  {counts}" if label else counts


class LiveLine:
    """One line of a terminal stream, each :meth:`show` overwriting the last.

    A line longer than the terminal would wrap, and ``\\r`` returns only to
    the start of the last row, so lines are cut to the terminal's width.
    """

    def __init__(self, stream: TextIO, columns: Callable[[], int] | None = None) -> None:
        self._stream = stream
        self._columns = columns or (lambda: _columns(stream))
        self._shown = 0

    @property
    def width(self) -> int:
        """Characters a line may have: one less than the terminal's (the last would wrap)."""
        return max(1, self._columns() - 1)

    def show(self, text: str) -> None:
        text = text[: self.width]
        self._stream.write("\r" + text + " " * max(0, self._shown - len(text)))
        self._stream.flush()
        self._shown = len(text)

    def clear(self) -> None:
        """Blank the line and put the cursor at its start, for whatever is written next."""
        if self._shown:
            self._stream.write("\r" + " " * self._shown + "\r")
            self._stream.flush()
            self._shown = 0


class SweepProgress:
    """Counts a sweep's outcomes and shows them on a :class:`LiveLine`, or nowhere.

    A context manager: leaving it (normally, on an error, on Ctrl-C) clears
    the line, so the terminal is left with the sweep's output only.
    """

    def __init__(self, label: str, total: int, line: LiveLine | None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # noqa: TID251 - between runs
        self.label, self.total = label, total
        self.done = self.failed = 0
        self._line, self._clock = line, clock
        self._started = clock()

    def __enter__(self) -> SweepProgress:
        self._draw()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.clear()

    def seed_done(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        self._draw()

    def clear(self) -> None:
        """Erase the line (before writing to a terminal that may be the same one)."""
        if self._line is not None:
            self._line.clear()

    def _draw(self) -> None:
        if self._line is not None:
            elapsed = self._clock() - self._started
            self._line.show(status_line(self.label, self.done, self.total, self.failed, elapsed,
                                        self._line.width))


def sweep_progress(label: str, total: int, *, stream: TextIO | None = None,
                   clock: Callable[[], float] = time.monotonic,  # noqa: TID251 - between runs
                   columns: Callable[[], int] | None = None) -> SweepProgress:
    """Progress of a sweep of ``total`` seeds: live on ``stream`` (stderr) if it is a terminal."""
    stream = sys.stderr if stream is None else stream
    line = LiveLine(stream, columns) if _is_terminal(stream) else None
    return SweepProgress(label, total, line, clock)


def _columns(stream: TextIO) -> int:
    """The width of the terminal ``stream`` writes to (80 if it will not say, as a bare pty)."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = 0
    return columns or shutil.get_terminal_size().columns


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False
