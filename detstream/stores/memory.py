"""The ``memory://`` store: a dict, rebuilt from the changelog on every assignment."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from detstream._types import ConsumerRecord, RecordMetadata

if TYPE_CHECKING:
    from .base import RecordDecoder


class MemoryStore:
    """Dict-backed store; keeps no offsets, so recovery always replays fully."""

    def __init__(self, *, url: str = "memory://", table: Any = None) -> None:
        self.url = url
        self._data: dict[Any, Any] = {}
        self._partition_of: dict[Any, int] = {}

    def get(self, key: Any) -> Any:
        return self._data[key]

    def set(
        self, key: Any, value: Any, partition: int,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None:
        self._data[key] = value
        self._partition_of[key] = partition

    def delete(
        self, key: Any, partition: int | None = None,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None:
        self._data.pop(key, None)
        self._partition_of.pop(key, None)

    def __contains__(self, key: Any) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)

    def keys(self) -> Iterator[Any]:
        return iter(list(self._data))

    def items_in(self, partition: int) -> dict[Any, Any]:
        return {k: v for k, v in self._data.items() if self._partition_of[k] == partition}

    def apply_changelog_batch(
        self, records: Sequence[ConsumerRecord], to_key: RecordDecoder, to_value: RecordDecoder
    ) -> None:
        for record in records:
            key = to_key(record)
            if record.value is None:
                self.delete(key)
            else:
                self.set(key, to_value(record), record.partition)

    def assign_partitions(self, partitions: set[int]) -> None:
        pass

    def drop_partitions(self, partitions: set[int]) -> None:
        for key in [k for k, p in self._partition_of.items() if p in partitions]:
            self.delete(key)

    def persisted_offset(self, partition: int) -> int | None:
        return None

    def set_persisted_offset(self, partition: int, offset: int) -> None:
        pass

    def reset_partition(self, partition: int) -> None:
        self.drop_partitions({partition})

    def reset_state(self) -> None:
        self._data.clear()
        self._partition_of.clear()

    def close(self) -> None:
        pass
