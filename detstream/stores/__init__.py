"""Table stores, chosen by the scheme of the ``store`` URL."""

from __future__ import annotations

from detstream.errors import ImproperlyConfigured

from .base import Store
from .memory import MemoryStore


def store_for_url(url: str) -> type[Store]:
    """The store class for ``url`` (``memory://``; ``rocksdb://`` lands with the production runtime)."""
    scheme = url.partition("://")[0].lower()
    if scheme == "memory":
        return MemoryStore
    raise ImproperlyConfigured(
        f"store URL {url!r} is not supported yet: use 'memory://'"
    )


__all__ = ["MemoryStore", "Store", "store_for_url"]
