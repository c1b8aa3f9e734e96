"""The store seam: what a table needs to keep its data, per partition.

A store is built as ``store_cls(url=..., spec=table.store_spec())``: a
``StoreSpec`` says what a store needs to know of its table (its name, where
its files go, how the changelog encodes keys and values), not the table
itself, so a store never reaches into the table or the app.

Writes made while processing an event carry ``sent``, the future of the
changelog record that mirrors them. A persistent store writes them to disk
only once that future resolves, together with its changelog offset, so what
is on disk is always a prefix of the changelog: after a crash, replaying the
changelog from the persisted offset rebuilds exactly the table the changelog
describes (never a value the changelog does not have). Under exactly-once the
future resolves when the record's transaction commits, and fails when it
aborts (``ProducerBuffer.durable``): the changelog a read_committed recovery
reads never has an aborted record, so the disk must not have one either.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from detstream._types import ConsumerRecord, RecordMetadata

#: Decodes a changelog record's key or value (the table's schema).
RecordDecoder = Callable[[ConsumerRecord], Any]


class ChangelogTopic(Protocol):
    """The part of the table's changelog topic a store reads: how records are encoded."""

    schema: Any

    def get_topic_name(self) -> str: ...


@dataclass(frozen=True)
class StoreSpec:
    """What a store knows of its table.

    Read at every use, not copied: the changelog's schema changes when the
    table becomes windowed (``table.tumbling(...)``) after it was built, and
    an app's ``datadir`` may be set after its tables are defined
    (``detstream worker --datadir``).
    """

    #: the table's name (file names, messages).
    table: str
    #: its changelog topic: a persistent store encodes keys and values as its schema does.
    changelog: ChangelogTopic
    #: where the table's partition files go (``{datadir}/v{version}/tables``).
    directory: Callable[[], Path]
    #: the app's datadir, for the message when another worker holds the files.
    datadir: Callable[[], str]


class Store(Protocol):
    """Key/value data of one table, remembering each key's partition."""

    def get(self, key: Any) -> Any:
        """The value, or raise KeyError."""
        ...

    def set(
        self, key: Any, value: Any, partition: int,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None: ...

    def delete(
        self, key: Any, partition: int | None = None,
        sent: asyncio.Future[RecordMetadata] | None = None,
    ) -> None: ...

    def __contains__(self, key: Any) -> bool: ...

    def __len__(self) -> int:
        """Keys of the partitions this worker holds (not every key on disk)."""
        ...

    def keys(self) -> Iterator[Any]: ...

    def partition_of(self, key: Any) -> int | None:
        """The partition holding ``key``, None if absent (expiry writes its tombstone there)."""
        ...

    def apply_changelog_batch(
        self, records: Sequence[ConsumerRecord], to_key: RecordDecoder, to_value: RecordDecoder
    ) -> None:
        """Apply changelog records in order (None value deletes) and remember their offsets."""
        ...

    def assign_partitions(self, partitions: AbstractSet[int]) -> None:
        """These partitions are now this worker's: make them readable."""
        ...

    def drop_partitions(self, partitions: AbstractSet[int]) -> None:
        """``partitions`` moved to another worker: stop serving them (disk data may stay)."""
        ...

    def persisted_offset(self, partition: int) -> int | None:
        """Changelog offset already applied, for stores that survive restarts."""
        ...

    def set_persisted_offset(self, partition: int, offset: int) -> None: ...

    def reset_partition(self, partition: int) -> None:
        """Forget one partition's data and offset (it will be rebuilt from the changelog)."""
        ...

    def reset_state(self) -> None:
        """Delete every piece of local data of this table (``detstream reset``)."""
        ...

    def close(self) -> None:
        """Release files; persisted data stays. Safe to call twice."""
        ...
