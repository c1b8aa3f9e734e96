"""Table recovery: rebuild assigned table partitions from their changelogs.

On assignment the worker pauses its source partitions, reads each assigned
changelog partition from the store's persisted offset (memory store: the
beginning) up to the end offset seen at assignment, then resumes the sources.
So an agent never sees a new event before its table partition is complete.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._types import TP, ConsumerRecord

if TYPE_CHECKING:
    from .app import App
    from .table import Table
    from .transport.base import Consumer


class TableManager:
    """Owns the app's tables and their recovery."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.tables: dict[str, Table] = {}
        self._targets: dict[TP, int] = {}
        self._sources: set[TP] = set()

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
        if not changelogs:
            self._targets = {}
            return
        ends = await consumer.end_offsets(changelogs)
        begins = await consumer.beginning_offsets(changelogs)
        targets = {}
        for tp in sorted(changelogs):
            table = self.table_for(tp.topic)
            assert table is not None
            stored = table.data.persisted_offset(tp.partition)
            start = begins[tp] if stored is None else stored + 1
            consumer.seek(tp, start)
            if ends[tp] > start:
                targets[tp] = ends[tp]
        self._targets = targets
        if targets:
            consumer.pause(*self._sources)
            consumer.resume(*targets)
            self.app._record("recovery-start", tps=sorted(str(tp) for tp in targets))
        consumer.pause(*(changelogs - set(targets)))

    def apply(self, consumer: Consumer, tp: TP, records: list[ConsumerRecord]) -> None:
        table = self.table_for(tp.topic)
        if table is None:
            return
        table.apply_changelog(records)
        target = self._targets.get(tp)
        if target is not None and records[-1].offset + 1 >= target:
            del self._targets[tp]
            consumer.pause(tp)
            if not self._targets:
                self.app._record("recovery-done")
                consumer.resume(*self._sources)

    def on_revoked(self, revoked: set[TP]) -> None:
        self._targets = {tp: o for tp, o in self._targets.items() if tp not in revoked}
        for table in self.tables.values():
            table.on_partitions_revoked(revoked)
