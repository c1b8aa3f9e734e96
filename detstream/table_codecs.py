"""Changelog codecs of the table kinds whose keys or values JSON cannot give back as they were.

JSON turns tuples and sets into lists, and lists are not hashable: a windowed
key ``("a", (60.0, 119.9))`` would come back from the changelog as
``["a", [60.0, 119.9]]`` and could not be a dict key again, and a SetTable's
value would come back as a list. These codecs write exactly the JSON bytes
Faust writes (``["a",[60.0,119.9]]``, sets as sorted lists) and read them back
as tuples and frozensets, so every reader of the changelog (recovery, the
rocksdb store, the simulator's fold of the changelog) sees the keys and
values the table wrote.
"""

from __future__ import annotations

from typing import Any

from . import codecs
from ._annotations import is_model_type

__all__ = ["SetValueCodec", "WindowedKeyCodec", "hashable"]


def hashable(obj: Any) -> Any:
    """``obj`` with every list turned into a tuple, recursively (JSON arrays as dict keys)."""
    if isinstance(obj, list):
        return tuple(hashable(item) for item in obj)
    return obj


def restore(obj: Any, typ: Any) -> Any:
    """A decoded JSON item as ``typ`` (a Record, bytes, a number), else made hashable."""
    if obj is None or typ is None:
        return hashable(obj)
    if is_model_type(typ):
        return typ.from_data(obj)
    if typ is bytes and isinstance(obj, str):
        return obj.encode("utf-8")
    if typ in (int, float) and isinstance(obj, (int, float, str)) and not isinstance(obj, bool):
        return typ(obj)
    return hashable(obj)


class WindowedKeyCodec(codecs.Codec):
    """``(key, (start, end))`` as the JSON ``[key, [start, end]]``; ``key`` decoded as ``key_type``."""

    name = "windowed-json"

    def __init__(self, key_type: Any = None) -> None:
        self.key_type = key_type
        self._json = codecs.get_codec("json")

    def _dumps(self, obj: Any) -> bytes:
        key, (start, end) = obj
        return self._json.dumps([key, [float(start), float(end)]])

    def _loads(self, data: bytes) -> Any:
        key, (start, end) = self._json.loads(data)
        return (restore(key, self.key_type), (float(start), float(end)))


class SetValueCodec(codecs.Codec):
    """A set as a sorted JSON list (stable bytes), read back as a frozenset of ``member_type``."""

    name = "set-json"

    def __init__(self, member_type: Any = None) -> None:
        self.member_type = member_type
        self._json = codecs.get_codec("json")

    def _dumps(self, obj: Any) -> bytes:
        return self._json.dumps(frozenset(obj))

    def _loads(self, data: bytes) -> Any:
        return frozenset(restore(item, self.member_type) for item in self._json.loads(data))
