"""The ``memory://`` store: a dict, plus the changelog offset each partition's data reaches.

Nothing survives a restart, but within one worker process the store knows, per
partition, the last changelog offset its data reflects (the offset of its own
last durable write, or of the last changelog record it applied). When a
rebalance takes a partition away, its data is *parked* rather than deleted,
if it is exactly the changelog up to that offset (every write durable, none
failed); when the partition comes back (the assignor is sticky, so it
usually does), recovery replays only what other workers wrote meanwhile
instead of the whole changelog.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from functools import partial
from typing import TYPE_CHECKING, Any

from detstream._types import ConsumerRecord, RecordMetadata

if TYPE_CHECKING:
    from .base import RecordDecoder, StoreSpec


class MemoryStore:
    """Dict-backed store; offsets are kept in memory, so they last as long as the process."""

    #: the data is gone when the process is: standby copies must be copied into the table.
    durable = False

    #: ``get(key)``: the value, or KeyError. The dict's own ``__getitem__`` (``_data`` is
    #: never rebound), so a table read, once or twice per event, is no Python call.
    get: Callable[[Any], Any]

    def __init__(self, *, url: str = "memory://", spec: StoreSpec | None = None) -> None:
        self.url = url
        self._data: dict[Any, Any] = {}
        self.get = self._data.__getitem__
        self._partition_of: dict[Any, int] = {}
        #: partition -> last changelog offset its data reflects.
        self._offsets: dict[int, int] = {}
        #: partition -> changelog sends its writes wait on that are not settled yet.
        self._unsettled: dict[int, int] = {}
        #: those sends: writes of one key between two commits share one (the write cache's).
        self._waiting: set[asyncio.Future[RecordMetadata]] = set()
        #: partitions where a write failed to reach the changelog: data != changelog.
        self._diverged: set[int] = set()
        #: revoked partitions kept for when they come back: partition -> {key: value}.
        self._parked: dict[int, dict[Any, Any]] = {}
        #: bumped when a partition is dropped or reset, so late send callbacks are ignored.
        self._epoch: dict[int, int] = {}

    def set(
        self, key: Any, value: Any, partition: int,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None:
        self._data[key] = value
        self._partition_of[key] = partition
        if sent is not None and sent not in self._waiting:  # (_track's test: most writes share one)
            self._track(partition, sent)

    def delete(
        self, key: Any, partition: int | None = None,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None:
        self._data.pop(key, None)
        held_in = self._partition_of.pop(key, None)
        where = partition if partition is not None else held_in
        if where is not None:
            self._track(where, sent)

    def _track(self, partition: int, sent: asyncio.Future[RecordMetadata] | None) -> None:
        """Wait for ``sent`` once, however many writes share it.

        A callback per write would keep every write's event (its context)
        alive until the commit: tens of thousands of objects for the
        collector to walk at every full collection.
        """
        if sent is None or sent in self._waiting:
            return
        self._waiting.add(sent)
        self._unsettled[partition] = self._unsettled.get(partition, 0) + 1
        sent.add_done_callback(partial(self._settled, partition, self._epoch.get(partition, 0)))

    def _settled(self, partition: int, epoch: int, future: asyncio.Future[Any]) -> None:
        self._waiting.discard(future)
        if self._epoch.get(partition, 0) != epoch:
            return  # the partition was dropped or reset since: its state is decided
        self._unsettled[partition] -= 1
        if future.cancelled() or future.exception() is not None:
            self._diverged.add(partition)
            return
        offset = future.result().offset
        if offset > self._offsets.get(partition, -1):
            self._offsets[partition] = offset

    def __contains__(self, key: Any) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> Iterator[Any]:
        return iter(list(self._data))

    def partition_of(self, key: Any) -> int | None:
        return self._partition_of.get(key)

    def items_in(self, partition: int) -> dict[Any, Any]:
        return {k: v for k, v in self._data.items() if self._partition_of[k] == partition}

    def apply_changelog_batch(
        self, records: Sequence[ConsumerRecord], to_key: RecordDecoder, to_value: RecordDecoder
    ) -> None:
        for record in records:
            key = to_key(record)
            if record.value is None:
                self.delete(key, record.partition)
            else:
                self.set(key, to_value(record), record.partition)
            if record.offset > self._offsets.get(record.partition, -1):
                self._offsets[record.partition] = record.offset

    # -- partitions ---------------------------------------------------------------------
    def assign_partitions(self, partitions: AbstractSet[int]) -> None:
        """Partitions back on this worker: serve their parked data again."""
        for partition in sorted(partitions):
            for key, value in self._parked.pop(partition, {}).items():
                self._data[key] = value
                self._partition_of[key] = partition

    def drop_partitions(self, partitions: AbstractSet[int]) -> None:
        """Park what matches the changelog exactly; forget the rest."""
        dropped = sorted(partition for partition in partitions if partition not in self._parked)
        # (a parked partition was not served since it was parked, lost then revoked: kept)
        keys_of: dict[int, list[Any]] = {partition: [] for partition in dropped}
        for key, held_in in self._partition_of.items():  # one pass for all of them
            keys = keys_of.get(held_in)
            if keys is not None:
                keys.append(key)
        for partition in dropped:
            keys = keys_of[partition]
            exact = (
                partition in self._offsets
                and not self._unsettled.get(partition)
                and partition not in self._diverged
            )
            parked = {key: self._data.pop(key) for key in keys}
            for key in keys:
                del self._partition_of[key]
            if exact:
                self._parked[partition] = parked
            else:
                self._forget(partition)

    def _forget(self, partition: int) -> None:
        self._parked.pop(partition, None)
        self._offsets.pop(partition, None)
        self._unsettled.pop(partition, None)
        self._diverged.discard(partition)
        self._epoch[partition] = self._epoch.get(partition, 0) + 1

    def persisted_offset(self, partition: int) -> int | None:
        """Last changelog offset the data of ``partition`` reflects (None: replay it all)."""
        if partition in self._diverged:
            return None
        return self._offsets.get(partition)

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        self._offsets[partition] = offset

    def reset_partition(self, partition: int) -> None:
        for key in [k for k, p in self._partition_of.items() if p == partition]:
            self._data.pop(key, None)
            del self._partition_of[key]
        self._forget(partition)

    def reset_state(self) -> None:
        self._data.clear()
        self._partition_of.clear()
        for partition in {*self._offsets, *self._parked, *self._unsettled, *self._diverged}:
            self._forget(partition)

    def close(self) -> None:
        pass
