"""Standby replicas: keep warm copies of other workers' table partitions.

Besides its active partitions the group leader gives each worker *standby*
changelog partitions: ``table_standby_replicas`` copies of each, on workers
other than the active one (``assignor.standby_assignment``). This worker
reads them continuously with a consumer of its own (no group, so its fetches
never wait behind active processing, and active fetches never wait behind
them) into stores of their own: a table serves its active partitions only,
so a standby's keys must not show through it. Each standby store keeps the
offset it reached: RocksDB on disk, in the same write as the data, so a
restarted worker resumes there; the memory store in this reader.

When a rebalance makes a standby partition active, ``promote`` hands its data
to the table (RocksDB: close it here, the table opens the same files; memory:
copy the keys) and recovery starts after the standby's offset, so it replays
only the tail the standby had not read yet. That is the point of standbys:
a takeover costs seconds, not a full changelog replay. A partition that
stops being active may become a standby: with RocksDB its data stays on disk
and the standby continues from its offset.

Standby reads pause while this worker recovers active partitions: those
block its agents, and both read the same brokers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from detstream._types import TP, ConsumerRecord
from detstream.errors import ChangelogDecodeError
from detstream.futures import current_task_cancelling
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant
from detstream.stores import store_for_url

from .changelog_resume import recovery_start

if TYPE_CHECKING:
    from detstream.stores.base import Store
    from detstream.transport.base import PartitionReader

    from .recovery import TableManager
    from .table import Table

logger = logging.getLogger(__name__)

#: a standby steps over one record of each fetched batch: its copy misses that write.
STANDBY_SKIPS_RECORD = register_mutant(
    "standby-skips-record",
    "a standby replica steps over the second record of each changelog batch it applies",
)
#: a standby applies a batch newest first: per key the oldest value of the batch wins.
STANDBY_KEEPS_OLDEST = register_mutant(
    "standby-keeps-oldest",
    "a standby replica applies each changelog batch in reverse, keeping the oldest value per key",
)


@dataclass(eq=False)
class _Standby:
    """One standby partition: its table, its own store, and how far it has read."""

    table: Table
    store: Store
    #: last changelog offset applied (None: nothing yet).
    offset: int | None
    #: next offset to apply; None until the reader has sought the consumer there.
    position: int | None = None


class StandbyReader:
    """Reads this worker's standby changelog partitions in the background."""

    fetch_timeout = 1.0
    #: pause after a failed read, so a broken broker does not spin the loop.
    retry_delay = 1.0

    def __init__(self, manager: TableManager) -> None:
        self.manager = manager
        self.host = manager.host
        self._partitions: dict[TP, _Standby] = {}
        self._consumer: PartitionReader | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = asyncio.Event()
        self._running.set()
        self._changed = asyncio.Event()
        #: partitions to seek again to their position: a new assignment may reset positions.
        self._reseek: set[TP] = set()
        #: changelog records applied to standby stores (all partitions, this process).
        self.applied = 0

    @property
    def partitions(self) -> set[TP]:
        return set(self._partitions)

    def offset(self, tp: TP) -> int | None:
        """Last changelog offset the standby copy of ``tp`` holds (None: none or not a standby)."""
        entry = self._partitions.get(tp)
        return None if entry is None else entry.offset

    # -- assignment ------------------------------------------------------------------
    def update(self, standbys: set[TP]) -> None:
        """Follow a new standby set: drop what left (RocksDB data stays on disk), open what came."""
        for tp in sorted(set(self._partitions) - standbys):
            self._close(self._partitions.pop(tp))
        for tp in sorted(standbys - set(self._partitions)):
            table = self.manager.table_for(tp.topic)
            if table is not None:
                self._partitions[tp] = self._open(table, tp)
        if self._partitions:
            self._ensure_started()
        self._reassign()
        self._changed.set()

    def promote(self, tps: set[TP]) -> dict[TP, int | None]:
        """Hand standby partitions that became active to their tables.

        Returns, per promoted partition, the last changelog offset its data
        reaches: recovery continues after it. Call before the table opens
        the partition (a RocksDB partition can be open once per process).
        """
        handed: dict[TP, int | None] = {}
        for tp in sorted(tps & set(self._partitions)):
            entry = self._partitions.pop(tp)
            if not getattr(entry.store, "durable", True):
                self._copy_into_table(entry, tp.partition)
            self._close(entry)
            handed[tp] = entry.offset
        if handed:
            self._reassign()
        return handed

    def _reassign(self) -> None:
        """Give the reader's consumer the standby set; positions already reached are kept.

        aiokafka resets every position on ``assign`` (to ``auto_offset_reset``),
        so the reader seeks the partitions it was reading back to where it was.
        """
        if self._consumer is None:
            return
        self._consumer.assign(sorted(self._partitions))
        self._reseek = {tp for tp, e in self._partitions.items() if e.position is not None}

    def _open(self, table: Table, tp: TP) -> _Standby:
        store = store_for_url(table.store_url)(url=table.store_url, spec=table.store_spec())
        store.assign_partitions({tp.partition})
        return _Standby(table, store, store.persisted_offset(tp.partition))

    @staticmethod
    def _copy_into_table(entry: _Standby, partition: int) -> None:
        """A store that lives in memory holds the standby's keys only here: copy them.

        Whatever the table kept of the partition from an earlier assignment is
        older than the standby's copy, so it goes first; the copy's offset
        comes along, so recovery continues from it.
        """
        store = entry.store
        table_store = entry.table.data
        table_store.reset_partition(partition)
        for key in list(store.keys()):
            table_store.set(key, store.get(key), partition)
        if entry.offset is not None:
            table_store.set_persisted_offset(partition, entry.offset)

    @staticmethod
    def _close(entry: _Standby) -> None:
        entry.store.close()

    # -- pausing -----------------------------------------------------------------------
    def pause(self) -> None:
        """Active recovery is running: leave the brokers to it."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    # -- the reader ----------------------------------------------------------------------
    def _ensure_started(self) -> PartitionReader:
        if self._consumer is None:
            self._consumer = self.host.transport.create_consumer(
                client_id=f"{self.host.client_name}-standby", group_id=None,
                isolation_level="read_committed" if self.host.exactly_once else "read_uncommitted",
            )
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._consumer), name=f"{self.host.client_name}-standby"
            )
        return self._consumer

    async def _run(self, consumer: PartitionReader) -> None:
        await consumer.start()
        while True:
            await self._running.wait()
            if not self._partitions:
                self._changed.clear()
                await self._changed.wait()
                continue
            try:
                await self._seek_new(consumer)
                self._apply(await consumer.getmany(self.fetch_timeout))
            except asyncio.CancelledError:
                raise
            except ChangelogDecodeError as exc:
                # the policy is the table's, not the standby's: the copy would be wrong, and
                # retrying would silently step over the record (the fetch moved past it)
                logger.error("standby copy stopped: %s; the app is crashing", exc)
                await self.host.crash(exc)
                return
            except Exception as exc:  # a standby must never take the worker down
                logger.warning("standby read failed (%r); retrying in %.1fs", exc, self.retry_delay)
                self.host.tracer.record("standby-error", error=type(exc).__name__)
                await asyncio.sleep(self.retry_delay)

    async def _seek_new(self, consumer: PartitionReader) -> None:
        """Position the consumer on partitions that just became standbys, after their offset."""
        reseek, self._reseek = self._reseek, set()
        for tp in sorted(reseek):
            entry = self._partitions.get(tp)
            if entry is not None and entry.position is not None:
                consumer.seek(tp, entry.position)
        new = {tp: e for tp, e in sorted(self._partitions.items()) if e.position is None}
        if not new:
            return
        begins = await consumer.beginning_offsets(new)
        ends = await consumer.end_offsets(new)
        for tp, entry in new.items():
            if self._partitions.get(tp) is not entry:
                continue  # promoted or dropped meanwhile
            start, wipe = recovery_start(entry.offset, begins[tp], ends[tp])
            if wipe:
                logger.warning(
                    "standby of table %r partition %d is at offset %s, outside changelog %s "
                    "[%d, %d): wiping it and reading the changelog again",
                    entry.table.name, tp.partition, entry.offset, tp, begins[tp], ends[tp],
                )
                self.host.tracer.record(
                    "standby-reset", table=entry.table.name, tp=str(tp), stored=entry.offset,
                    begin=begins[tp], end=ends[tp],
                )
                entry.store.reset_partition(tp.partition)
                entry.offset = None
            consumer.seek(tp, start)
            entry.position = start

    def _apply(self, batch: dict[TP, list[ConsumerRecord]]) -> None:
        """Apply fetched records to the standby stores; skip partitions no longer standby."""
        for tp in sorted(batch):
            entry = self._partitions.get(tp)
            if entry is None or entry.position is None:
                continue
            position = entry.position
            records = [r for r in batch[tp] if r.offset >= position]
            if not records:
                continue
            last = records[-1].offset
            if mutant_on(STANDBY_SKIPS_RECORD) and len(records) > 1:
                records = [records[0], *records[2:]]
            if mutant_on(STANDBY_KEEPS_OLDEST):
                records = records[::-1]
            # decoded as recovery decodes, under the same table_changelog_decode_errors
            # policy; on_changelog_event is called as Faust does while standbys sync
            entry.table.apply_changelog_to(entry.store, records)
            entry.offset = last
            entry.position = entry.offset + 1
            self.applied += len(records)

    # -- lifecycle -------------------------------------------------------------------------
    async def stop(self) -> None:
        """Graceful stop: the reader ends; stores are closed by ``close`` (the app's exit stack)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if current_task_cancelling():
                    raise
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def close(self) -> None:
        """Close every standby store (files released, data kept); forget the standby set."""
        partitions, self._partitions = self._partitions, {}
        for entry in partitions.values():
            self._close(entry)

