"""Schema: how one topic's keys and values become bytes and back (Faust's ``faust.Schema``).

Which codec applies, in order: the schema's explicit ``key_serializer``/``value_serializer``;
for a Record (type or instance) its ``serializer`` option; ``raw`` for ``bytes``/``str``
types; else the default the caller passes (the app's ``key_serializer``, ``raw``, and
``value_serializer``, ``json``); a Record never falls back to ``raw``, which cannot carry it,
but to ``json``. Imports only codecs, models and errors.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from detstream import codecs
from detstream._annotations import is_model_type, type_name
from detstream.errors import DecodeError, InvalidArgument, KeyDecodeError, ValueDecodeError
from detstream.models import Record, registry

__all__ = ["Schema"]

CodecArg = codecs.Codec | str | None

#: App defaults (Faust's ``key_serializer``/``value_serializer`` settings).
DEFAULT_KEY_SERIALIZER = "raw"
DEFAULT_VALUE_SERIALIZER = "json"


class Schema:
    """Key/value types and codecs of a topic or channel.

    ``None`` keys and values (tombstones) stay ``None`` both ways. ``allow_empty`` is kept for
    the stream layer, which decides whether tombstones reach the agent.

    Example::

        schema = Schema(key_type=str, value_type=Point)
        schema.loads_value(schema.dumps_value(Point(1), default_serializer='json'),
                           default_serializer='json') == Point(1)
    """

    def __init__(
        self,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: CodecArg = None,
        value_serializer: CodecArg = None,
        allow_empty: bool = False,
    ) -> None:
        self.key_type = _check_type("key_type", key_type)
        self.value_type = _check_type("value_type", value_type)
        self.key_serializer = _check_codec("key_serializer", key_serializer)
        self.value_serializer = _check_codec("value_serializer", value_serializer)
        self.allow_empty = allow_empty

    def dumps_key(self, key: Any, *, default_serializer: CodecArg = None) -> bytes | None:
        """Encode a message key; raises CodecError if the codec cannot encode it."""
        default = default_serializer or DEFAULT_KEY_SERIALIZER
        return _dumps(key, self.key_type, self.key_serializer, default)

    def dumps_value(self, value: Any, *, default_serializer: CodecArg = None) -> bytes | None:
        """Encode a message value; raises CodecError if the codec cannot encode it."""
        default = default_serializer or DEFAULT_VALUE_SERIALIZER
        return _dumps(value, self.value_type, self.value_serializer, default)

    def loads_key(
        self,
        data: bytes | None,
        *,
        default_serializer: CodecArg = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> Any:
        """Decode a message key; raises KeyDecodeError naming topic, partition and offset."""
        codec = _codec_for(self.key_type, self.key_serializer,
                           default_serializer or DEFAULT_KEY_SERIALIZER)
        where = {"topic": topic, "partition": partition, "offset": offset}
        return _loads(data, self.key_type, codec, KeyDecodeError, "key", where)

    def loads_value(
        self,
        data: bytes | None,
        *,
        default_serializer: CodecArg = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> Any:
        """Decode a message value; raises ValueDecodeError naming topic, partition and offset."""
        codec = _codec_for(self.value_type, self.value_serializer,
                           default_serializer or DEFAULT_VALUE_SERIALIZER)
        where = {"topic": topic, "partition": partition, "offset": offset}
        return _loads(data, self.value_type, codec, ValueDecodeError, "value", where)

    def __repr__(self) -> str:
        return (
            f"<Schema: key_type={type_name(self.key_type)} "
            f"value_type={type_name(self.value_type)} "
            f"key_serializer={self.key_serializer!r} value_serializer={self.value_serializer!r}>"
        )


def _check_type(arg: str, typ: Any) -> Any:
    # Catch the classic slip value_type='json' at topic creation, not at the first message.
    if typ is None or isinstance(typ, type) or typing.get_origin(typ) is not None:
        return typ
    hint = f"; did you mean {arg.replace('_type', '_serializer')}={typ!r}?" if isinstance(
        typ, str) else ""
    raise InvalidArgument(f"{arg} must be a type such as a Record class, bytes or str, "
                          f"got {typ!r}{hint}")


def _check_codec(arg: str, codec: CodecArg) -> CodecArg:
    if codec is not None:
        codecs.get_codec(codec)  # unknown names fail here, listing the known ones
    return codec


def _codec_for(typ: Any, explicit: CodecArg, default: CodecArg) -> codecs.Codec:
    if explicit:
        return codecs.get_codec(explicit)
    if is_model_type(typ):
        return _record_codec(typ._options.serializer, default)
    if typ is bytes or typ is str:
        return codecs.get_codec("raw")
    return codecs.get_codec(default)  # type: ignore[arg-type]


def _record_codec(option: CodecArg, default: CodecArg) -> codecs.Codec:
    # raw cannot carry a Record, so a Record key under the app's raw key default uses json.
    codec = codecs.get_codec(option or default)  # type: ignore[arg-type]
    if not option and isinstance(codec, codecs.RawCodec):
        return codecs.get_codec("json")
    return codec


def _dumps(obj: Any, typ: Any, explicit: CodecArg, default: CodecArg) -> bytes | None:
    if obj is None:
        return None
    if isinstance(obj, Record):
        codec = explicit or _record_codec(obj._options.serializer, default)
        return obj.dumps(serializer=codec)
    codec = _codec_for(typ, explicit, default)
    if typ in (int, float) and isinstance(codec, codecs.RawCodec) and _is_number(obj):
        obj = repr(obj)  # raw carries numbers as their text, read back by _to_number
    return codec.dumps(obj)


def _loads(
    data: bytes | None,
    typ: Any,
    codec: codecs.Codec,
    error: type[DecodeError],
    what: str,
    where: dict[str, Any],
) -> Any:
    if data is None:
        return None
    try:
        return _decode(bytes(data), typ, codec)
    except Exception as exc:
        reason = (
            f"cannot decode {what} as {type_name(typ) if typ is not None else 'any'} "
            f"with codec {codec.name!r}: {exc}"
        )
        raise error(reason, **where) from exc


def _decode(data: bytes, typ: Any, codec: codecs.Codec) -> Any:
    obj = codec.loads(data)
    if typ is None:
        return _maybe_record(obj)
    if is_model_type(typ):
        return typ.from_data(obj)
    if typ is str:
        obj = obj.decode("utf-8") if isinstance(obj, bytes) else obj
        return _expect(obj, str)
    if typ is bytes:
        obj = obj.encode("utf-8") if isinstance(obj, str) else obj
        return _expect(obj, bytes)
    if typ is int or typ is float:
        return _to_number(obj, typ)
    return obj


def _maybe_record(obj: Any) -> Any:
    # No declared type: a payload naming a registered Record still decodes to it (as Faust).
    if isinstance(obj, Mapping):
        meta = obj.get("__faust")
        if isinstance(meta, Mapping) and meta.get("ns") in registry:
            return Record.from_data(obj)
    return obj


def _expect(obj: Any, typ: type) -> Any:
    if not isinstance(obj, typ):
        raise TypeError(f"expected {typ.__name__}, got {type(obj).__name__}")
    return obj


def _is_number(obj: Any) -> bool:
    return isinstance(obj, (int, float)) and not isinstance(obj, bool)


def _to_number(obj: Any, typ: type) -> Any:
    if isinstance(obj, bytes):
        obj = obj.decode("utf-8")
    if isinstance(obj, str):
        return typ(obj.strip())
    if typ is int and isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    if typ is float and _is_number(obj):
        return float(obj)
    raise TypeError(f"expected {typ.__name__}, got {type(obj).__name__}")
