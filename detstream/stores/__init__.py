"""Table stores, chosen by the scheme of the ``store`` URL.

``rocksdb://`` is imported only when asked for, so that ``import detstream``
never loads rocksdict.
"""

from __future__ import annotations

from typing import Any

from detstream.errors import ImproperlyConfigured

from .base import Store, StoreSpec
from .memory import MemoryStore

SUPPORTED = ("memory://", "rocksdb://")


def store_for_url(url: str) -> type[Any]:
    """The store class for ``url``; build it as ``cls(url=url, spec=table.store_spec())``."""
    scheme = url.partition("://")[0].lower() if isinstance(url, str) and "://" in url else ""
    if scheme == "memory":
        return MemoryStore
    if scheme == "rocksdb":
        from .rocksdb import RocksDBStore

        return RocksDBStore
    raise ImproperlyConfigured(
        f"store URL {url!r} is not supported: use one of {', '.join(SUPPORTED)}"
    )


__all__ = ["SUPPORTED", "MemoryStore", "Store", "StoreSpec", "store_for_url"]
