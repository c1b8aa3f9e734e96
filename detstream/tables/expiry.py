"""Window expiry: delete the windows of a windowed table whose ``expires`` passed.

Every ``table_cleanup_interval`` seconds (loop time, so virtual under the
simulator) the sweep looks at the windows of the partitions this worker is
actively assigned, and deletes those that are stale against the wall clock
(:func:`detstream.clock.wall_time`, virtual under the simulator), as Faust
does. Each deletion is a changelog tombstone on the window's partition, so the
changelog keeps describing the table exactly: a worker that recovers it gets
the same windows, never one that was closed. (Faust only dropped the key
locally and relied on changelog retention; a retention deadline counted from
the record's timestamp can delete a window the table still serves, which a
recovering worker would then lose.) Then ``on_window_close(key, value)`` is
called, with ``key`` the ``(key, (start, end))`` of the closed window.

As Faust, a window starting at or before the newest one already closed is
deleted without a callback (late events re-created it); a crash between the
tombstone and the callback skips that callback, and a window recovered stale
after a crash is closed by the next sweep of its new owner.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any

from detstream.clock import wall_time
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant

if TYPE_CHECKING:
    from .table import Table

logger = logging.getLogger(__name__)

__all__ = ["WindowExpiry"]

#: the sweep judges windows one step ahead of the clock: each closes a step before it expired.
WINDOW_EXPIRES_EARLY = register_mutant(
    "window-expires-early",
    "the expiry sweep closes each window one window step before its expiry time",
)


class WindowExpiry:
    """The periodic expiry sweep of one windowed table."""

    def __init__(self, table: Table) -> None:
        self.table = table
        #: start of the newest window closed so far (later, older windows get no callback).
        self.last_closed = float("-inf")

    def register(self) -> None:
        """Run :meth:`run` as an app task: started with the app, cancelled when it stops."""
        self.table.app.task(self.run)

    async def run(self) -> None:
        interval = float(self.table.app.conf.table_cleanup_interval)
        while True:
            await asyncio.sleep(interval)
            await self.sweep()

    def stale_windows(self, now: float) -> list[tuple[Any, int]]:
        """``(window key, partition)`` of every stale window in an active partition, sorted.

        Sorted by window then by the key's changelog bytes, so tombstones and
        callbacks come in the same order on every run.
        """
        table = self.table
        window = table.window
        assert window is not None
        active = {
            tp.partition for tp in table.app.conductor.assignment()
            if tp.topic == table.changelog_name
        }
        if mutant_on(WINDOW_EXPIRES_EARLY):
            now += getattr(window, "step", 0.0)
        found = []
        for key in list(table.data.keys()):
            if not window.stale(key[1][1], now):
                continue
            partition = table.data.partition_of(key)
            if partition in active:
                found.append((key, partition))
        dump = table.changelog_topic.schema.dumps_key
        return sorted(found, key=lambda kp: (kp[0][1], dump(kp[0]) or b""))

    async def sweep(self, now: float | None = None) -> int:
        """Delete the stale windows (tombstones) and call ``on_window_close``; returns how many.

        Skipped while a rebalance is in progress, as Faust's cleanup waits
        while ``app.rebalancing``, and while tables recover: a window not yet
        recovered would get a tombstone that a later changelog record then
        contradicts, and a partition being taken (its changelog's end looked
        up, its recovery not begun) would be written past the end its
        recovery is bound for, which then wipes the partition and replays
        it whole (found on the wire: windowed_hopping chaos seed 134).
        """
        table = self.table
        app = table.app
        if app.tables.recovering or app.rebalancing:
            return 0
        stale = self.stale_windows(wall_time() if now is None else now)
        newest = self.last_closed
        closed = 0
        for key, partition in stale:
            if table.data.partition_of(key) != partition:
                continue  # gone or moved while a callback ran
            value = table.data.get(key)
            table._remove(key, partition)
            closed += 1
            app.tracer.record("window-close", table=table.name, partition=partition, key=key)
            if key[1][0] > self.last_closed:
                await self._callback(key, value)
            newest = max(newest, key[1][0])
        self.last_closed = newest
        return closed

    async def _callback(self, key: Any, value: Any) -> None:
        callback = self.table.on_window_close
        if callback is None:
            return
        try:
            result = callback(key, value)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # one failing callback must not stop expiry
            self.table.app.tracer.record("window-close-error", table=self.table.name, error=type(exc).__name__)
            logger.exception("on_window_close of table %r raised for %r", self.table.name, key)
