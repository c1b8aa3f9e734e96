"""GlobalTable: a table every worker holds whole, read from all of its changelog.

A GlobalTable is not part of the consumer group: its changelog is neither
subscribed by the group consumer nor split by the assignor into active and
standby partitions. Each worker reads *every* partition of it with a consumer
of its own (:class:`GlobalTableManager`, manually assigned, no group), first
up to the end offsets seen at start, before the app's agents get any event,
then for as long as the app runs. So every worker's copy converges to the
fold of the changelog, and reads see every key, wherever it was written.

Writes work as Faust's: they go to the changelog (the current event's
partition, or the key's with ``use_partitioner=True``), never straight into
the local copy, which stays exactly the changelog as read so far. So that a
worker reads its own writes at once (``gt[k] += 1`` twice in a row must count
2, not 1), a write is also kept in an in-memory overlay until the reader has
read its record back; reads look at the overlay first. A write that fails
(or whose transaction aborts, under exactly-once) leaves the overlay and the
changelog's value shows again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from detstream._types import TP, ConsumerRecord, RecordMetadata
from detstream.errors import InvalidArgument

from .recovery import recovery_start
from .table import Table

if TYPE_CHECKING:
    from detstream.app import App
    from detstream.transport.base import PartitionReader

logger = logging.getLogger(__name__)

__all__ = ["GlobalTable", "GlobalTableManager"]

#: overlay value of a key this worker deleted
_DELETED = object()


@dataclass
class _OwnWrite:
    """The newest value this worker wrote to a key, and how many of its writes are unread."""

    value: Any
    unread: int


class GlobalTable(Table):
    """``app.GlobalTable(name, ...)``: like ``app.Table``, but every worker holds every key."""

    is_global = True
    windowing_refused = (
        "every worker would expire the same windows; use a windowed app.Table() "
        "partitioned with group_by"
    )

    def __init__(
        self, app: App, name: str, *, synchronize_all_active_partitions: bool = False, **options: Any
    ) -> None:
        if options.get("window") is not None:
            raise InvalidArgument(f"GlobalTable {name!r} cannot be windowed: {self.windowing_refused}")
        super().__init__(app, name, **options)
        #: accepted for Faust compatibility: every worker reads every partition anyway.
        self.synchronize_all_active_partitions = synchronize_all_active_partitions
        self._own: dict[Any, _OwnWrite] = {}
        #: (partition, offset) of own records not yet read back -> key.
        self._unread: dict[tuple[int, int], Any] = {}
        #: per partition, the offset after the last changelog record applied.
        self._applied: dict[int, int] = {}
        #: changelog partitions, known once the reader started.
        self.partition_count: int | None = None

    # -- reads: the overlay of own unread writes, then the changelog as read ----------
    def _get(self, key: Any) -> Any:
        own = self._own.get(key)
        if own is None:
            return self.data.get(key)
        if own.value is _DELETED:
            raise KeyError(key)
        return own.value

    def __contains__(self, key: object) -> bool:
        own = self._own.get(key)
        if own is None:
            return key in self.data
        return own.value is not _DELETED

    def __iter__(self) -> Iterator[Any]:
        own = dict(self._own)
        keys = [k for k in self.data.keys() if k not in own]
        keys += [k for k, w in own.items() if w.value is not _DELETED]
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    # -- writes: to the changelog, remembered until read back ---------------------------
    def _partition_for_write(self, op: str, key: Any, *, check_agent: bool = True) -> int:
        partition = super()._partition_for_write(op, key, check_agent=check_agent)
        count = self.partition_count
        if count is not None and partition >= count:
            raise InvalidArgument(
                f"GlobalTable {self.name!r}: the event's partition {partition} does not exist in "
                f"its changelog ({count} partitions); make the table with use_partitioner=True "
                "to place writes by key"
            )
        return partition

    def _write(self, key: Any, value: Any, partition: int) -> None:
        self._remember(key, value, self._send_changelog(key, value, partition))

    def _remove(self, key: Any, partition: int) -> None:
        self._remember(key, _DELETED, self._send_changelog(key, None, partition))

    def _remember(self, key: Any, value: Any, sent: asyncio.Future[RecordMetadata]) -> None:
        own = self._own.get(key)
        if own is None:
            own = self._own[key] = _OwnWrite(value, 0)
        own.value = value
        own.unread += 1
        durable = self.app.producer.durable(sent)
        durable.add_done_callback(partial(self._on_durable, key))

    def _on_durable(self, key: Any, future: asyncio.Future[RecordMetadata]) -> None:
        if future.cancelled() or future.exception() is not None:
            self._read_back(key)  # never in the changelog a reader sees
            return
        meta = future.result()
        if self._applied.get(meta.partition, 0) > meta.offset:
            self._read_back(key)  # the reader got there first
        else:
            self._unread[(meta.partition, meta.offset)] = key

    def _read_back(self, key: Any) -> None:
        own = self._own.get(key)
        if own is None:
            return
        own.unread -= 1
        if own.unread <= 0:
            del self._own[key]

    # -- the reader applies the changelog ------------------------------------------------
    def apply_changelog(self, records: list[ConsumerRecord]) -> None:
        super().apply_changelog(records)
        for record in records:
            self._applied[record.partition] = max(
                self._applied.get(record.partition, 0), record.offset + 1
            )
            key = self._unread.pop((record.partition, record.offset), None)
            if key is not None:
                self._read_back(key)

    def on_partitions_assigned(self, tps: set[TP]) -> None:
        """Not in the group: the manager opens every partition itself."""

    def on_partitions_revoked(self, tps: set[TP]) -> None:
        """Not in the group: nothing is ever revoked."""


class GlobalTableManager:
    """Reads every partition of the app's global tables' changelogs, outside the group."""

    #: seconds one fetch waits for records before asking again.
    poll_timeout = 1.0

    def __init__(self, app: App) -> None:
        self.app = app
        self.tables: dict[str, GlobalTable] = {}
        self._consumer: PartitionReader | None = None
        self._task: asyncio.Future[None] | None = None

    def add(self, table: GlobalTable) -> None:
        if table.name in self.tables or table.name in self.app.tables.tables:
            raise ValueError(f"table {table.name!r} is defined twice in app {self.app.conf.id!r}")
        self.tables[table.name] = table

    def table_for(self, topic: str) -> GlobalTable | None:
        for table in self.tables.values():
            if table.changelog_name == topic:
                return table
        return None

    async def start(self) -> None:
        """Read every global changelog to its current end, then follow it in the background."""
        if not self.tables:
            return
        app = self.app
        self._consumer = consumer = app.transport.create_consumer(
            client_id=f"{app.client_name}-global-tables", group_id=None,
            isolation_level="read_committed" if app.exactly_once else "read_uncommitted",
        )
        await consumer.start()
        tps = await self._open_partitions()
        consumer.assign(tps)
        starts, targets = await self._seek(tps)
        if targets:
            order = sorted(targets)
            app.tracer.record("global-recovery-start", tps=[str(tp) for tp in order],
                              start=[starts[tp] for tp in order], end=[targets[tp] for tp in order])
            await self._recover(targets)
            app.tracer.record("global-recovery-done")
        self._task = asyncio.ensure_future(self._guard(self._follow()))

    async def _open_partitions(self) -> list[TP]:
        tps = []
        for table in sorted(self.tables.values(), key=lambda t: t.name):
            await table.changelog_topic.declare()
            count = await self.app.admin.partitions_for(table.changelog_name) or table.changelog_partitions
            table.partition_count = count
            table.data.assign_partitions(set(range(count)))
            tps += [TP(table.changelog_name, p) for p in range(count)]
        return tps

    async def _seek(self, tps: list[TP]) -> tuple[dict[TP, int], dict[TP, int]]:
        """Seek each partition to where the store left off; the starts, and the ends still to read."""
        consumer = self._reader()
        begins = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        starts, targets = {}, {}
        for tp in tps:
            table = self.table_for(tp.topic)
            assert table is not None
            start, wipe = recovery_start(table.persisted_offset(tp), begins[tp], ends[tp])
            if wipe:
                self.app.tracer.record("recovery-reset", table=table.name, tp=str(tp),
                                       begin=begins[tp], end=ends[tp])
                table.data.reset_partition(tp.partition)
            consumer.seek(tp, start)
            table._applied[tp.partition] = starts[tp] = start
            if ends[tp] > start:
                targets[tp] = ends[tp]
        return starts, targets

    async def _recover(self, targets: dict[TP, int]) -> None:
        """Apply until every partition's position reached its end (past markers, too)."""
        consumer = self._reader()
        remaining = dict(targets)
        while remaining:
            self._apply(await consumer.getmany(self.poll_timeout))
            for tp in sorted(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]

    async def _follow(self) -> None:
        consumer = self._reader()
        while True:
            self._apply(await consumer.getmany(self.poll_timeout))

    def _reader(self) -> PartitionReader:
        assert self._consumer is not None, "the global tables' reader is made by start()"
        return self._consumer

    def _apply(self, batch: dict[TP, list[ConsumerRecord]]) -> None:
        for tp in sorted(batch):
            table = self.table_for(tp.topic)
            if table is not None and batch[tp]:
                table.apply_changelog(batch[tp])

    async def _guard(self, loop_coro: Any) -> None:
        """A reader that dies unseen would leave every worker's copy silently stale: crash."""
        try:
            await loop_coro
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.app.tracer.record("engine-error", error=type(exc).__name__)
            logger.exception("reading global tables failed: %r; the app is crashing", exc)
            await self.app.crash(exc)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()
        self.close()

    def close(self) -> None:
        """Close every global table's store (files released, data kept); safe to call twice."""
        for table in self.tables.values():
            table.data.close()
