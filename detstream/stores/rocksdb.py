"""The ``rocksdb://`` store: one RocksDB (through rocksdict) per table partition.

Layout: ``{datadir}/v{version}/tables/{table}-{partition}.db``. Keys and values
are the changelog's bytes (the changelog topic's schema, default codec json),
and each DB keeps the last changelog offset it holds under a reserved key,
written in the same WriteBatch as the data: data and offset cannot disagree
after a crash, so recovery only reads the changelog after that offset.

The running worker's own writes wait in memory (read first) until their
changelog record is acknowledged, then go to disk in send order together with
that record's offset. So a DB is always a prefix of its changelog. Faust wrote
the DB before the changelog send, so after ``kill -9`` a value could be on
disk that the changelog never got while its source event was processed again
(counted twice: Faust pain point #4). Under exactly-once "acknowledged" means
"its transaction committed" (the table hands the store
``ProducerBuffer.durable`` futures): a write of an aborted transaction fails
and never reaches the disk, and recovery reads the changelog read_committed.

rocksdict is imported when the first rocksdb table is built, never by
``import detstream``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from detstream._types import ConsumerRecord, RecordMetadata
from detstream.errors import ImproperlyConfigured, InvalidArgument

from .base import StoreSpec

if TYPE_CHECKING:
    from .base import RecordDecoder

logger = logging.getLogger(__name__)

#: Where each partition DB keeps its changelog offset (never a JSON-encoded key).
OFFSET_KEY = b"__detstream\x00offset__"


@dataclass(eq=False)
class _Write:
    """One table write waiting to reach disk (value None: delete)."""

    key: bytes
    value: bytes | None
    done: bool = False
    failed: bool = False
    offset: int | None = None
    #: the changelog send it waits for; later writes of the key that share it join this write.
    sent: asyncio.Future[RecordMetadata] | None = None


class _Partition:
    """An open partition DB and the writes still waiting for their changelog ack."""

    def __init__(self, number: int, db: Any, offset: int | None) -> None:
        self.number = number
        self.db = db
        self.offset = offset
        self.queue: deque[_Write] = deque()
        self.overlay: dict[bytes, _Write] = {}


class RocksDBStore:
    """A table's data on disk, one DB per partition held by this worker."""

    #: the data outlives the process (a standby's files are the table's files).
    durable = True

    def __init__(self, *, url: str, spec: StoreSpec) -> None:
        self.url = url
        self.spec = spec
        self._rocksdict = _import_rocksdict(url, spec.table)
        self._partitions: dict[int, _Partition] = {}

    def __repr__(self) -> str:
        return f"<RocksDBStore: {self.spec.table} at {self.directory}>"

    # -- layout ---------------------------------------------------------------------
    @property
    def directory(self) -> Path:
        """Read at every open: the datadir may be set after the table is defined."""
        return self.spec.directory()

    def path_for(self, partition: int) -> Path:
        return self.directory / f"{self.spec.table}-{partition}.db"

    def _open(self, partition: int) -> _Partition:
        part = self._partitions.get(partition)
        if part is not None:
            return part
        path = self.path_for(partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        options = self._rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        try:
            db = self._rocksdict.Rdict(str(path), options)
        except Exception as exc:
            if "lock" not in str(exc).lower():
                raise
            datadir = self.spec.datadir()
            raise ImproperlyConfigured(
                f"table {self.spec.table!r} partition {partition}: RocksDB {path} is locked by "
                f"another worker ({exc}): is another worker process using datadir "
                f"{str(datadir)!r}? Give each worker its own datadir (--datadir DIR or the "
                f"datadir setting), or stop the other one."
            ) from exc
        raw = db.get(OFFSET_KEY)
        part = _Partition(partition, db, None if raw is None else int(raw))
        self._partitions[partition] = part
        return part

    def _close(self, partition: int) -> None:
        part = self._partitions.pop(partition, None)
        if part is not None:
            part.db.close()

    # -- encoding (the changelog's bytes) -----------------------------------------------
    def _dump_key(self, key: Any) -> bytes | None:
        return self.spec.changelog.schema.dumps_key(key, default_serializer="json")

    def _dump_value(self, value: Any) -> bytes | None:
        return self.spec.changelog.schema.dumps_value(value, default_serializer="json")

    def _load_key(self, data: bytes) -> Any:
        changelog = self.spec.changelog
        return changelog.schema.loads_key(data, default_serializer="json", topic=changelog.get_topic_name())

    def _load_value(self, data: bytes) -> Any:
        changelog = self.spec.changelog
        return changelog.schema.loads_value(
            data, default_serializer="json", topic=changelog.get_topic_name()
        )

    # -- reads ------------------------------------------------------------------------
    def _lookup(self, key: Any) -> bytes | None:
        data = self._dump_key(key)
        if data is None:
            return None
        for part in self._partitions.values():
            write = part.overlay.get(data)
            if write is not None:
                if write.value is not None:
                    return write.value
                continue
            value = part.db.get(data)
            if value is not None:
                return value
        return None

    def get(self, key: Any) -> Any:
        value = self._lookup(key)
        if value is None:
            raise KeyError(key)
        return self._load_value(value)

    def __contains__(self, key: Any) -> bool:
        return self._lookup(key) is not None

    def _live_keys(self) -> Iterator[bytes]:
        for part in list(self._partitions.values()):
            yield from (k for k, w in part.overlay.items() if w.value is not None)
            yield from (k for k in part.db.keys() if k != OFFSET_KEY and k not in part.overlay)

    def keys(self) -> Iterator[Any]:
        return iter([self._load_key(k) for k in self._live_keys()])

    def __len__(self) -> int:
        return sum(1 for _ in self._live_keys())

    # -- writes -----------------------------------------------------------------------
    def set(
        self, key: Any, value: Any, partition: int,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None:
        """``value`` None is stored as a delete, as the changelog tombstone it sends."""
        self._enqueue(partition, self._key_for_write(key), self._dump_value(value), sent)

    def delete(
        self, key: Any, partition: int | None = None,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None:
        data = self._key_for_write(key)
        if partition is None:
            partition = self._partition_holding(data)
            if partition is None:
                return
        self._enqueue(partition, data, None, sent)

    def partition_of(self, key: Any) -> int | None:
        data = self._dump_key(key)
        return None if data is None else self._partition_holding(data)

    def _partition_holding(self, data: bytes) -> int | None:
        return next((p.number for p in self._partitions.values() if self._holds(p, data)), None)

    def _key_for_write(self, key: Any) -> bytes:
        data = self._dump_key(key)
        if data is None:
            raise InvalidArgument(f"table {self.spec.table!r}: a rocksdb table cannot store key None")
        return data

    @staticmethod
    def _holds(part: _Partition, data: bytes) -> bool:
        write = part.overlay.get(data)
        return write.value is not None if write is not None else part.db.get(data) is not None

    def _enqueue(
        self, partition: int, key: bytes, value: bytes | None,
        sent: asyncio.Future[RecordMetadata] | None,
    ) -> None:
        part = self._open(partition)
        pending = part.overlay.get(key)
        if sent is not None and pending is not None and pending.sent is sent and not pending.done:
            pending.value = value  # one changelog record (the write cache's) mirrors both writes
            return
        write = _Write(key, value, sent=sent)
        part.queue.append(write)
        part.overlay[key] = write
        if sent is None:
            write.done = True
        else:
            sent.add_done_callback(partial(self._on_sent, part, write))
        self._persist_acked(part)

    def _on_sent(self, part: _Partition, write: _Write, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            write.failed = True
        else:
            write.offset = future.result().offset
        write.done = True
        if self._partitions.get(part.number) is part:  # else closed: recovery replays it
            self._persist_acked(part)

    def _persist_acked(self, part: _Partition) -> None:
        """Write the acknowledged head of the queue, in send order, with its last offset."""
        batch = None
        offset = part.offset
        failed = 0
        while part.queue and part.queue[0].done:
            write = part.queue.popleft()
            if write.failed:  # not in the changelog (or its transaction aborted): never on disk
                failed += 1
                continue
            if part.overlay.get(write.key) is write:
                del part.overlay[write.key]
            batch = batch or self._rocksdict.WriteBatch(raw_mode=True)
            if write.value is None:
                batch.delete(write.key)
            else:
                batch.put(write.key, write.value)
            if write.offset is not None and (offset is None or write.offset > offset):
                offset = write.offset
        if failed:
            logger.warning(
                "table %r partition %d: %d writes failed to reach the changelog (send failed or "
                "transaction aborted); they stay in memory only", self.spec.table, part.number, failed,
            )
        if batch is None:
            return
        if offset != part.offset:
            batch.put(OFFSET_KEY, str(offset).encode())
            part.offset = offset
        part.db.write(batch)

    # -- changelog and offsets ------------------------------------------------------------
    def apply_changelog_batch(
        self, records: Sequence[ConsumerRecord], to_key: RecordDecoder, to_value: RecordDecoder
    ) -> None:
        """One WriteBatch per partition: data and offset land together or not at all."""
        by_partition: dict[int, list[ConsumerRecord]] = {}
        for record in records:
            by_partition.setdefault(record.partition, []).append(record)
        for number, batch_records in by_partition.items():
            part = self._open(number)
            batch = self._rocksdict.WriteBatch(raw_mode=True)
            offset = part.offset
            for record in batch_records:
                if offset is not None and record.offset <= offset:
                    continue  # already on disk: applying it again would go back in time
                offset = record.offset
                key = self._dump_key(to_key(record))
                if key is None:
                    continue
                if record.value is None:
                    batch.delete(key)
                else:
                    batch.put(key, record.value)
            if offset != part.offset:
                batch.put(OFFSET_KEY, str(offset).encode())
                part.db.write(batch)
                part.offset = offset

    def persisted_offset(self, partition: int) -> int | None:
        return self._open(partition).offset

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        part = self._open(partition)
        part.db.put(OFFSET_KEY, str(offset).encode())
        part.offset = offset

    # -- partitions and lifecycle -------------------------------------------------------------
    def assign_partitions(self, partitions: AbstractSet[int]) -> None:
        for partition in sorted(partitions):
            self._open(partition)

    def drop_partitions(self, partitions: AbstractSet[int]) -> None:
        """Close the DBs; the data stays on disk for the next time we get them."""
        for partition in sorted(partitions):
            self._close(partition)

    def reset_partition(self, partition: int) -> None:
        reopen = partition in self._partitions
        self._close(partition)
        self._destroy(self.path_for(partition))
        if reopen:
            self._open(partition)

    def reset_state(self) -> None:
        self.close()
        if not self.directory.is_dir():
            return
        pattern = re.compile(rf"{re.escape(self.spec.table)}-\d+\.db")
        for path in sorted(self.directory.iterdir()):
            if pattern.fullmatch(path.name):
                self._destroy(path)

    def _destroy(self, path: Path) -> None:
        if path.exists():
            self._rocksdict.Rdict.destroy(str(path), self._rocksdict.Options(raw_mode=True))

    def close(self) -> None:
        """Writes not yet acknowledged are dropped: the changelog has them, or nobody does."""
        for partition in list(self._partitions):
            self._close(partition)


def _import_rocksdict(url: str, table: str) -> ModuleType:
    try:
        import rocksdict
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"table {table!r} uses store {url!r}, which needs rocksdict: pip install rocksdict"
        ) from exc
    return rocksdict
