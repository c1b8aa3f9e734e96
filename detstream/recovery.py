"""Table recovery: rebuild assigned table partitions from their changelogs.

On assignment the worker pauses its source partitions, reads each assigned
changelog partition from the store's persisted offset (memory store: the
beginning) up to the end offset seen at assignment, then resumes the sources.
So an agent never sees a new event before its table partition is complete.

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
from typing import TYPE_CHECKING

from ._types import TP, ConsumerRecord

if TYPE_CHECKING:
    from .app import App
    from .table import Table
    from .transport.base import Consumer

logger = logging.getLogger(__name__)


def recovery_start(stored: int | None, begin: int, end: int) -> tuple[int, bool]:
    """Where to start reading a changelog partition, and whether to wipe local data first.

    ``stored`` is the offset of the last record the store holds, so reading
    resumes at ``stored + 1``. A stored offset the changelog cannot have had
    (``stored + 1`` past ``end``, or before ``begin``) means the local data is
    not from this changelog: the topic was deleted and recreated, or records
    were removed under it. Waiting for that offset would hang (Faust pain
    point #6); keeping the data would mix two histories. So, as Kafka Streams
    does on an out-of-range changelog, wipe and rebuild from ``begin``.
    """
    if stored is None:
        return begin, False
    if not begin <= stored + 1 <= end:
        return begin, True
    return stored + 1, False


class TableManager:
    """Owns the app's tables and their recovery."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.tables: dict[str, Table] = {}
        self._targets: dict[TP, int] = {}
        #: next changelog offset to apply per partition being recovered.
        self._positions: dict[TP, int] = {}
        self._sources: set[TP] = set()
        self._close_registered = False

    def add(self, table: Table) -> None:
        if table.name in self.tables:
            raise ValueError(f"table {table.name!r} is defined twice in app {self.app.conf.id!r}")
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

    async def on_assigned(self, consumer: Consumer, assigned: set[TP]) -> None:
        """Start recovering the changelog partitions in ``assigned``."""
        changelogs = {tp for tp in assigned if tp.topic in self.changelog_topics}
        self._sources = assigned - changelogs
        self._targets, self._positions = {}, {}
        if not changelogs:
            return
        self._close_on_stop()
        for table in self.tables.values():
            table.on_partitions_assigned(changelogs)
        ends = await consumer.end_offsets(changelogs)
        begins = await consumer.beginning_offsets(changelogs)
        targets, positions = {}, {}
        for tp in sorted(changelogs):
            table = self.table_for(tp.topic)
            assert table is not None
            stored = table.persisted_offset(tp)
            start, wipe = recovery_start(stored, begins[tp], ends[tp])
            if wipe:
                self._wipe(table, tp, stored, begins[tp], ends[tp])
            consumer.seek(tp, start)
            if ends[tp] > start:
                targets[tp], positions[tp] = ends[tp], start
        self._targets, self._positions = targets, positions
        if targets:
            consumer.pause(*self._sources)
            consumer.resume(*targets)
            order = sorted(targets, key=str)
            self.app._record(
                "recovery-start", tps=[str(tp) for tp in order],
                start=[positions[tp] for tp in order], end=[targets[tp] for tp in order],
            )
        consumer.pause(*(changelogs - set(targets)))

    def _wipe(self, table: Table, tp: TP, stored: int | None, begin: int, end: int) -> None:
        logger.warning(
            "table %r partition %d: local data is at changelog offset %s, but changelog %s "
            "has beginning offset %d and end offset %d (deleted and recreated, or records "
            "removed?): wiping the local partition and rebuilding it from the changelog",
            table.name, tp.partition, stored, tp, begin, end,
        )
        self.app._record(
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
        if records[-1].offset + 1 >= target:
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
        del self._targets[tp], self._positions[tp]
        consumer.pause(tp)
        if not self._targets:
            self.app._record("recovery-done")
            consumer.resume(*self._sources)

    def on_revoked(self, revoked: set[TP]) -> None:
        self._targets = {tp: o for tp, o in self._targets.items() if tp not in revoked}
        self._positions = {tp: o for tp, o in self._positions.items() if tp not in revoked}
        for table in self.tables.values():
            table.on_partitions_revoked(revoked)

    def _close_on_stop(self) -> None:
        if not self._close_registered:
            self.app.add_context(contextlib.closing(self))
            self._close_registered = True

    def close(self) -> None:
        """Close every table's store (files released, data kept): the app stopped."""
        self._close_registered = False
        for table in self.tables.values():
            table.data.close()
