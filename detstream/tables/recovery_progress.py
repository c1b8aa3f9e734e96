"""Recovery progress: how far each table's recovery is, said while it runs.

A worker recovering a large table keeps its agents waiting until it is done,
so an operator must see it move (Faust's long silent recoveries were a
common complaint): per table, changelog records done of the total, the rate
and an ETA, at most every ``interval`` seconds of loop time (virtual under
the simulator), and a final line with the duration. Finished recoveries stay
in ``TableManager.recoveries`` (``TableRecovery``) so that tests and
operators can see what each one replayed; standbys make that small.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from detstream._types import TP

logger = logging.getLogger("detstream.tables.recovery")


@dataclass
class TableRecovery:
    """One table's recovery after one assignment."""

    table: str
    started: float
    #: partition -> (first offset to read, end offset to reach).
    spans: dict[TP, tuple[int, int]]
    #: partitions that started from a standby's offset (promoted standbys).
    promoted: frozenset[TP] = frozenset()
    #: partition -> next offset to apply (how far it got).
    positions: dict[TP, int] = field(default_factory=dict)
    #: changelog records applied (less than ``total`` where compaction or markers left gaps).
    records: int = 0
    finished: float | None = None

    @property
    def total(self) -> int:
        """Changelog offsets to read, over all partitions."""
        return sum(end - start for start, end in self.spans.values())

    @property
    def done(self) -> int:
        return sum(
            min(self.positions.get(tp, start), end) - start for tp, (start, end) in self.spans.items()
        )

    def partitions_left(self) -> int:
        """Partitions of this recovery that have not reached their end offset yet."""
        return sum(1 for tp, (start, end) in self.spans.items() if self.positions.get(tp, start) < end)

    @property
    def duration(self) -> float | None:
        return None if self.finished is None else self.finished - self.started


class RecoveryProgress:
    """Tracks the recoveries in progress and logs them."""

    #: seconds of loop time between two progress lines of a table.
    interval = 5.0

    def __init__(self) -> None:
        self._tables: dict[str, TableRecovery] = {}
        self._table_of: dict[TP, str] = {}
        self._logged: dict[str, float] = {}
        #: every recovery finished in this process, oldest first.
        self.finished: list[TableRecovery] = []

    def running(self) -> list[TableRecovery]:
        """The recoveries in progress, by table name (what ``/ready/`` and ``/metrics`` show)."""
        return [self._tables[name] for name in sorted(self._tables)]

    def begin(self, table: str, spans: dict[TP, tuple[int, int]], promoted: set[TP]) -> None:
        now = _now()
        recovery = TableRecovery(table, now, dict(spans), frozenset(promoted & set(spans)))
        self._tables[table] = recovery
        self._logged[table] = now
        for tp in spans:
            self._table_of[tp] = table
        logger.info(
            "Recovering table %r: %s in %s (%s)",
            table, counted(recovery.total, "changelog record"), counted(len(spans), "partition"),
            _standbys(len(recovery.promoted), "continue", "continues"),
        )

    def applied(self, tp: TP, records: int, position: int) -> None:
        recovery = self._recovery_of(tp)
        if recovery is None:
            return
        recovery.records += records
        recovery.positions[tp] = position
        now = _now()
        if now - self._logged[recovery.table] >= self.interval:
            self._logged[recovery.table] = now
            self._log_progress(recovery, now)

    def partition_done(self, tp: TP, end: int) -> TableRecovery | None:
        """``tp`` reached its end; returns its table's recovery if that was the last partition."""
        recovery = self._recovery_of(tp)
        if recovery is None:
            return None
        recovery.positions[tp] = end
        del self._table_of[tp]
        if any(self._table_of.get(p) == recovery.table for p in recovery.spans):
            return None
        recovery.finished = _now()
        del self._tables[recovery.table]
        self.finished.append(recovery)
        logger.info(
            "Recovered table %r: %s%s from %s in %.2fs (%s)",
            recovery.table, counted(recovery.records, "changelog record"), _skipped(recovery),
            counted(len(recovery.spans), "partition"), recovery.duration or 0.0,
            _standbys(len(recovery.promoted), "continued", "continued"),
        )
        return recovery

    def abandon(self, tps: set[TP] | None = None) -> None:
        """Forget partitions (all with None) whose recovery a rebalance cut short."""
        for tp in sorted(self._table_of if tps is None else tps & set(self._table_of)):
            table = self._table_of.pop(tp)
            recovery = self._tables.get(table)
            if recovery is not None and not any(t == table for t in self._table_of.values()):
                del self._tables[table]
                logger.info(
                    "Recovery of table %r interrupted by a rebalance after %d of %s",
                    table, recovery.done, counted(recovery.total, "record"),
                )

    def _recovery_of(self, tp: TP) -> TableRecovery | None:
        table = self._table_of.get(tp)
        return None if table is None else self._tables.get(table)

    @staticmethod
    def _log_progress(recovery: TableRecovery, now: float) -> None:
        done, total = recovery.done, recovery.total
        elapsed = max(now - recovery.started, 1e-9)
        rate = done / elapsed
        eta = f"{(total - done) / rate:.1f}s" if rate > 0 else "unknown"
        logger.info(
            "Recovering table %r: %d/%d changelog records (%.0f%%), %.0f records/s, ETA %s",
            recovery.table, done, total, 100.0 * done / total if total else 100.0, rate, eta,
        )


def counted(n: int, noun: str) -> str:
    """``1 partition``, ``0 partitions``, ``2 partitions``: log lines read as English."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _standbys(n: int, verb_plural: str, verb_singular: str) -> str:
    """``1 continues a standby``, ``2 continue a standby``."""
    return f"{n} {verb_singular if n == 1 else verb_plural} a standby"


def _skipped(recovery: TableRecovery) -> str:
    """Why fewer records were applied than the changelog offsets announced at the start.

    The start counts offsets (end minus start); transaction markers and records the
    compactor removed take offsets too, so "7 records" then "0 records" needs saying.
    """
    gaps = recovery.total - recovery.records
    if gaps <= 0:
        return ""
    return (f" ({gaps} of its {recovery.total} changelog offsets held transaction markers "
            "or records compacted away)")


def _now() -> float:
    """Loop time: virtual under the simulator, so progress lines are deterministic there."""
    return asyncio.get_running_loop().time()
