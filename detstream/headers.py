"""Message headers as Faust's helpers take them (``faust.types.core``): a dict or a list of pairs.

A Faust ``Schema`` subclass's header hooks get the record's headers open for
change and use :func:`merge_headers` to add to them, as models.rst shows.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

__all__ = ["merge_headers", "prepare_headers"]


def prepare_headers(target: Any) -> Any:
    """``target`` open for change: a dict stays a dict, pairs become a list (None: a dict)."""
    if target is None:
        return {}
    if isinstance(target, MutableMapping):
        return target
    if isinstance(target, Mapping):
        return dict(target)
    return list(target)


def merge_headers(target: Any, source: Mapping[str, Any]) -> None:
    """Add ``source``'s headers to ``target`` in place (names as str, values as bytes).

    Returns None, as Faust's; a header hook returning it keeps the headers it changed.
    """
    if not source:
        return
    added = {_text(name): _raw(value) for name, value in source.items()}
    if isinstance(target, MutableMapping):
        target.update(added)
    elif isinstance(target, list):
        target.extend(added.items())
    else:
        raise TypeError(f"merge_headers: cannot add to {type(target).__name__}; "
                        "pass a dict or a list of (name, bytes) pairs")


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _raw(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode() if not isinstance(value, (bytearray, memoryview)) else bytes(value)
