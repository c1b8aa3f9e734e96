"""Changelog codecs of the table kinds whose keys or values JSON cannot give back as they were.

JSON turns tuples and sets into lists, and lists are not hashable: a windowed
key ``("a", (60.0, 119.9))`` would come back from the changelog as
``["a", [60.0, 119.9]]`` and could not be a dict key again, and a SetTable's
value would come back as a list. These codecs write exactly the JSON bytes
Faust writes (``["a",[60.0,119.9]]``, sets as sorted lists) and read them back
as tuples and frozensets, so every reader of the changelog (recovery, the
rocksdb store, the simulator's fold of the changelog) sees the keys and
values the table wrote.

Bytes are the other thing JSON cannot give back: Faust writes a bytes key
``b"a"`` as the JSON string ``"a"``, which comes back as the str ``"a"``, so
after recovery the table holds ``"a"`` while the live table held ``b"a"``.
A table without ``key_type`` (keys of any type: what an agent reading a topic
without ``key_type`` gets as ``event.key`` is bytes) therefore encodes its
changelog keys with :class:`TableKeyCodec`: the same JSON as Faust for every
other key, and bytes tagged as ``{"__bytes__": "<utf-8 text>"}`` (or
``{"__bytes_b64__": "<base64>"}`` when they are not UTF-8), which no hashable
key can otherwise encode to. Windowed keys tag the bytes inside them the same
way.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from detstream import codecs
from detstream._annotations import is_model_type

__all__ = ["SetValueCodec", "TableValueCodec", "TableKeyCodec", "WindowedKeyCodec", "hashable"]

#: JSON object keys of a tagged bytes key: UTF-8 text, or base64 for other bytes.
BYTES_TAG = "__bytes__"
BYTES_B64_TAG = "__bytes_b64__"


def hashable(obj: Any) -> Any:
    """``obj`` with every list turned into a tuple, recursively (JSON arrays as dict keys)."""
    if isinstance(obj, list):
        return tuple(hashable(item) for item in obj)
    return obj


def tag_bytes(obj: Any) -> Any:
    """``obj`` ready for JSON with its bytes tagged (in tuples and lists too), so they come back as bytes."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        data = bytes(obj)
        try:
            return {BYTES_TAG: data.decode("utf-8")}
        except UnicodeDecodeError:
            return {BYTES_B64_TAG: base64.b64encode(data).decode("ascii")}
    if isinstance(obj, (tuple, list)):
        return [tag_bytes(item) for item in obj]
    return obj


def untag(obj: Any) -> Any:
    """A decoded JSON key as it was written: tagged bytes as bytes, lists as tuples, Records."""
    if isinstance(obj, list):
        return tuple(untag(item) for item in obj)
    if isinstance(obj, Mapping):
        if len(obj) == 1 and isinstance(obj.get(BYTES_TAG), str):
            return obj[BYTES_TAG].encode("utf-8")
        if len(obj) == 1 and isinstance(obj.get(BYTES_B64_TAG), str):
            return base64.b64decode(obj[BYTES_B64_TAG], validate=True)
        from detstream.serializers import _maybe_record

        return _maybe_record(obj)
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


class TableKeyCodec(codecs.Codec):
    """Changelog keys of a table without ``key_type``: Faust's JSON, bytes tagged (module docstring)."""

    name = "table-key-json"

    def __init__(self) -> None:
        self._json = codecs.get_codec("json")

    def _dumps(self, obj: Any) -> bytes:
        return self._json.dumps(tag_bytes(obj))

    def _loads(self, data: bytes) -> Any:
        return untag(self._json.loads(data))


class WindowedKeyCodec(codecs.Codec):
    """``(key, (start, end))`` as the JSON ``[key, [start, end]]``; ``key`` decoded as ``key_type``.

    Without ``key_type``, bytes in ``key`` are tagged as :class:`TableKeyCodec` does.
    """

    name = "windowed-json"

    def __init__(self, key_type: Any = None) -> None:
        self.key_type = key_type
        self._json = codecs.get_codec("json")

    def _dumps(self, obj: Any) -> bytes:
        key, (start, end) = obj
        if self.key_type is None:
            key = tag_bytes(key)
        return self._json.dumps([key, [float(start), float(end)]])

    def _loads(self, data: bytes) -> Any:
        key, (start, end) = self._json.loads(data)
        key = untag(key) if self.key_type is None else restore(key, self.key_type)
        return (key, (float(start), float(end)))


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


def restore_records(obj: Any) -> Any:
    """Decoded JSON with every payload naming a registered Record (``__faust.ns``) made that Record.

    Also inside lists and dicts: the JSON of a list of Records is a list of
    such payloads, which plain decoding leaves as dicts.
    """
    if isinstance(obj, list):
        return [restore_records(item) for item in obj]
    if isinstance(obj, dict):
        meta = obj.get("__faust")
        if isinstance(meta, dict):
            from detstream.models import Record, registry

            if meta.get("ns") in registry:
                return Record.from_data(obj)
        return {key: restore_records(value) for key, value in obj.items()}
    return obj


class TableValueCodec(codecs.Codec):
    """Changelog values of a table without ``value_type``: JSON, nested Records read back as Records.

    Faust's own ``windowed_aggregation.py`` keeps a list of Records per window.
    The live table holds the Records; JSON alone gives back a list of dicts,
    so a recovered table (and a rocksdb store, which decodes every read)
    would hold something else than the live one. The bytes are plain JSON,
    as Faust writes them.
    """

    name = "table-value-json"

    def __init__(self) -> None:
        self._json = codecs.get_codec("json")

    def _dumps(self, obj: Any) -> bytes:
        return self._json.dumps(obj)

    def _loads(self, data: bytes) -> Any:
        return restore_records(self._json.loads(data))
