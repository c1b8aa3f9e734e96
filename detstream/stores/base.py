"""The store seam: what a table needs to keep its data, per partition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol


class Store(Protocol):
    """Key/value data of one table, remembering each key's partition."""

    def get(self, key: Any) -> Any:
        """The value, or raise KeyError."""
        ...

    def set(self, key: Any, value: Any, partition: int) -> None: ...

    def delete(self, key: Any) -> None: ...

    def __contains__(self, key: Any) -> bool: ...

    def __len__(self) -> int: ...

    def keys(self) -> Iterator[Any]: ...

    def drop_partitions(self, partitions: set[int]) -> None:
        """Forget every key of ``partitions`` (they moved to another worker)."""
        ...

    def persisted_offset(self, partition: int) -> int | None:
        """Changelog offset already applied, for stores that survive restarts."""
        ...

    def set_persisted_offset(self, partition: int, offset: int) -> None: ...
