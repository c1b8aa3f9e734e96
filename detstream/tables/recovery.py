"""Table recovery: rebuild assigned table partitions from their changelogs.

On assignment the worker reads each assigned changelog partition from the
store's persisted offset (memory store: the beginning) up to the end offset
seen at assignment. Meanwhile the conductor keeps the source partitions
closed: it opens them once ``recovering`` is false, so an agent never sees a
new event before its table partition is complete.

A changelog partition this worker kept as a standby (``standby``) is handed
to the table when it becomes active, and recovery continues after the
standby's offset: only the tail is replayed (trace ``standby-promoted``).
Standby reads pause while active partitions recover. Progress is logged per
table while recovery runs (``recovery_progress``); finished recoveries stay
in ``TableManager.recoveries``.

Stores are closed when the app stops (registered on the app's exit stack at
the first assignment, so a restarted app registers again).

Under exactly-once the changelogs are read ``read_committed``: the end offset
is the last stable offset, aborted records are skipped and transaction
markers leave gaps, so the last offset before the end may be a marker that is
never delivered. A partition is then recovered when the consumer's position
reaches the end, as Kafka Streams decides it (``finish_at_positions``). Like
Kafka Streams, recovery stops at the last stable offset: records committed
behind a still open transaction (a crashed writer's, until it is fenced or
times out) are not read, which matters only if ownership moved twice within
that transaction's lifetime.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from detstream._types import TP, ConsumerRecord
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant

from .changelog_resume import recovery_start
from .recovery_progress import RecoveryProgress, TableRecovery, counted
from .standby import StandbyReader

if TYPE_CHECKING:
    from detstream.transport.base import Consumer

    from .host import TablesHost
    from .table import Table

logger = logging.getLogger(__name__)

__all__ = ["TableManager", "recovery_start"]

#: recovery reads from one past where it must start: the first record to replay is lost.
RECOVERY_STARTS_LATE = register_mutant(
    "recovery-starts-one-late",
    "table recovery starts reading its changelog one offset past the right start",
)
#: recovery ends with the first applied batch, whatever is left up to the end offset.
RECOVERY_DONE_EARLY = register_mutant(
    "recovery-done-after-first-batch",
    "a table partition counts as recovered after its first changelog batch, not at its end offset",
)


class TableManager:
    """Owns the app's tables and their recovery."""

    def __init__(self, host: TablesHost) -> None:
        #: the application (see ``host.TablesHost``: all the manager may reach of it).
        self.host = host
        self.tables: dict[str, Table] = {}
        self._targets: dict[TP, int] = {}
        #: next changelog offset to apply per partition being recovered.
        self._positions: dict[TP, int] = {}
        self._close_registered = False
        #: this worker's standby partitions, read in the background.
        self.standbys = StandbyReader(self)
        self.progress = RecoveryProgress()
        #: whether table writes must stay cached (not flushed early): set by the conductor
        #: under at-least-once to its consumer's ``membership_in_doubt``.
        self.changelogs_held: Callable[[], bool] = lambda: False

    def add(self, table: Table) -> None:
        if table.name in self.tables:
            raise ValueError(f"table {table.name!r} is defined twice in app {self.host.conf.id!r}")
        self.tables[table.name] = table

    @property
    def changelog_topics(self) -> set[str]:
        return {t.changelog_name for t in self.tables.values()}

    def table_for(self, topic: str) -> Table | None:
        for table in self.tables.values():
            if table.changelog_name == topic:
                return table
        return None

    @property
    def recovering(self) -> bool:
        return bool(self._targets)

    @property
    def recoveries(self) -> list[TableRecovery]:
        """Every table recovery finished by this app, oldest first (what each replayed)."""
        return self.progress.finished

    async def on_assigned(
        self, consumer: Consumer, assigned: set[TP], standbys: set[TP] | None = None
    ) -> None:
        """Start recovering the changelog partitions in ``assigned``; follow the new ``standbys``.

        Standbys that became active are handed to their tables first, so that
        recovery continues from where the standby got to.
        """
        topics = self.changelog_topics  # (a set made per call: once, not per partition)
        changelogs = {tp for tp in assigned if tp.topic in topics}
        standbys = {tp for tp in standbys or () if tp.topic in topics}
        self._targets, self._positions = {}, {}
        self.progress.abandon()
        if changelogs or standbys:
            self._close_on_stop()
        handed = self.standbys.promote(changelogs)
        for table in self.tables.values():
            table.on_partitions_assigned(changelogs)
        self.standbys.update(standbys - changelogs)
        if changelogs:
            await self._start_recovery(consumer, changelogs, handed)
        if not self._targets:
            self.standbys.resume()

    async def _start_recovery(
        self, consumer: Consumer, changelogs: set[TP], handed: dict[TP, int | None]
    ) -> None:
        # The log end, not the last stable offset: committed records can sit behind an
        # open transaction (a zombie's), and stopping short of them would lose updates.
        # Under read_committed the position gets there once that transaction ends.
        ends = await consumer.log_end_offsets(changelogs)
        begins = await consumer.beginning_offsets(changelogs)
        targets, positions = {}, {}
        for tp in sorted(changelogs):
            table = self.table_for(tp.topic)
            assert table is not None
            stored = table.persisted_offset(tp)
            if stored is None:
                stored = handed.get(tp)
            start, wipe = recovery_start(stored, begins[tp], ends[tp])
            if mutant_on(RECOVERY_STARTS_LATE):
                start = min(start + 1, ends[tp])
            if wipe:
                self._wipe(table, tp, stored, begins[tp], ends[tp])
            elif handed.get(tp) is not None:
                self._promoted(table, tp, start, ends[tp])
            consumer.seek(tp, start)
            if ends[tp] > start:
                targets[tp], positions[tp] = ends[tp], start
        self._targets, self._positions = targets, positions
        if targets:
            consumer.resume(*targets)
            self.standbys.pause()
            self._begin_progress({tp for tp, offset in handed.items() if offset is not None})
            order = sorted(targets, key=str)
            self.host.tracer.record(
                "recovery-start", tps=[str(tp) for tp in order],
                start=[positions[tp] for tp in order], end=[targets[tp] for tp in order],
            )
        consumer.pause(*(changelogs - set(targets)))

    def _promoted(self, table: Table, tp: TP, start: int, end: int) -> None:
        logger.info(
            "table %r partition %d: continuing its standby copy at changelog offset %d "
            "(%s to replay)", table.name, tp.partition, start, counted(end - start, "record"),
        )
        self.host.tracer.record("standby-promoted", table=table.name, tp=str(tp), start=start, end=end)

    def _begin_progress(self, promoted: set[TP]) -> None:
        by_table: dict[str, dict[TP, tuple[int, int]]] = {}
        for tp in sorted(self._targets):
            table = self.table_for(tp.topic)
            assert table is not None
            by_table.setdefault(table.name, {})[tp] = (self._positions[tp], self._targets[tp])
        for name, spans in sorted(by_table.items()):
            self.progress.begin(name, spans, promoted)

    def _wipe(self, table: Table, tp: TP, stored: int | None, begin: int, end: int) -> None:
        logger.warning(
            "table %r partition %d: local data is at changelog offset %s, but changelog %s "
            "has beginning offset %d and end offset %d (deleted and recreated, or records "
            "removed?): wiping the local partition and rebuilding it from the changelog",
            table.name, tp.partition, stored, tp, begin, end,
        )
        self.host.tracer.record(
            "recovery-reset", table=table.name, tp=str(tp), stored=stored, begin=begin, end=end
        )
        table.data.reset_partition(tp.partition)

    def apply(self, consumer: Consumer, tp: TP, records: list[ConsumerRecord]) -> None:
        """Apply a fetched changelog batch of a partition being recovered.

        Anything else is a fetch made before this assignment's pause and seek
        (another generation, or a position before the recovery start): applying
        it would write old values over newer ones, or end recovery too early.
        """
        table = self.table_for(tp.topic)
        target = self._targets.get(tp)
        if table is None or target is None:
            return
        records = [r for r in records if r.offset >= self._positions[tp]]
        if not records:
            return
        table.apply_changelog(records)
        self._positions[tp] = records[-1].offset + 1
        self.progress.applied(tp, len(records), self._positions[tp])
        if records[-1].offset + 1 >= target or mutant_on(RECOVERY_DONE_EARLY):
            self._finish(consumer, tp)

    async def finish_at_positions(self, consumer: Consumer) -> None:
        """Finish partitions whose consumer position reached the end past markers or aborted records."""
        for tp in sorted(self._targets):
            target = self._targets.get(tp)
            if target is not None and await consumer.position(tp) >= target:
                self._finish(consumer, tp)

    def _finish(self, consumer: Consumer, tp: TP) -> None:
        if tp not in self._targets:
            return
        self.progress.partition_done(tp, self._targets[tp])
        del self._targets[tp], self._positions[tp]
        consumer.pause(tp)
        if not self._targets:
            self.host.tracer.record("recovery-done")
            self.standbys.resume()

    def on_revoked(self, revoked: set[TP]) -> None:
        self._targets = {tp: o for tp, o in self._targets.items() if tp not in revoked}
        self._positions = {tp: o for tp, o in self._positions.items() if tp not in revoked}
        self.progress.abandon(revoked)
        if not self._targets:
            self.standbys.resume()
        for table in self.tables.values():
            table.on_partitions_revoked(revoked)

    def flush_changelogs(self) -> int:
        """Send every table's dirty keys to its changelog (a commit begins); how many."""
        return sum(table.flush_changelog() for table in self.tables.values())

    @property
    def unflushed(self) -> int:
        """Table writes whose changelog record waits for the next commit."""
        return sum(table.unflushed for table in self.tables.values())

    def _close_on_stop(self) -> None:
        if not self._close_registered:
            self.host.add_context(contextlib.closing(self))
            self._close_registered = True

    def close(self) -> None:
        """Close every table's store (files released, data kept): the app stopped."""
        self._close_registered = False
        self.standbys.close()
        for table in self.tables.values():
            table.data.close()
        self.host.global_tables.close()  # a crash closes GlobalTable stores too
