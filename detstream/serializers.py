"""Schema: how one topic's keys and values become bytes and back (Faust's ``faust.Schema``).

Which codec applies, in order: the schema's explicit ``key_serializer``/``value_serializer``;
for a Record (type or instance) its ``serializer`` option; ``raw`` for ``bytes``/``str``
types; else the default the caller passes (the app's ``key_serializer``, ``raw``, and
``value_serializer``, ``json``); a Record never falls back to ``raw``, which cannot carry it,
but to ``json``. Imports only codecs, models and errors.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from detstream import codecs
from detstream._annotations import is_model_type, type_name
from detstream.errors import DecodeError, InvalidArgument, KeyDecodeError, ValueDecodeError
from detstream.models import Record, current_registry

__all__ = ["Schema"]

CodecArg = codecs.Codec | str | None
#: A default codec: always set (the caller's ``default_serializer`` or ours below).
_DefaultCodec = codecs.Codec | str

#: App defaults (Faust's ``key_serializer``/``value_serializer`` settings).
DEFAULT_KEY_SERIALIZER = "raw"
DEFAULT_VALUE_SERIALIZER = "json"


#: Attributes a Schema's compiled plans depend on; setting one drops them.
_PLANNED = frozenset({"key_type", "value_type", "key_serializer", "value_serializer"})


class Schema:
    """Key/value types and codecs of a topic or channel.

    ``None`` keys and values (tombstones) stay ``None`` both ways. ``allow_empty`` is kept for
    the stream layer, which decides whether tombstones reach the agent.

    Every event goes through here, so the codec and the decoding steps for a type are
    decided once per default serializer (a :class:`_Plan`) and reused until an attribute
    above changes or a codec is (un)registered.

    Example::

        schema = Schema(key_type=str, value_type=Point)
        schema.loads_value(schema.dumps_value(Point(1), default_serializer='json'),
                           default_serializer='json') == Point(1)
    """

    #: compiled plans by default serializer; reset by ``__setattr__`` (see ``_PLANNED``).
    _key_plans: dict[Any, _Plan]
    _value_plans: dict[Any, _Plan]

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

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _PLANNED:  # plans made for the old types or codecs no longer hold
            object.__setattr__(self, "_key_plans", {})
            object.__setattr__(self, "_value_plans", {})

    def __getstate__(self) -> dict[str, Any]:
        # Plans hold closures; a copy or an unpickled schema makes its own.
        return {**self.__dict__, "_key_plans": {}, "_value_plans": {}}

    def dumps_key(self, key: Any, *, default_serializer: CodecArg = None) -> bytes | None:
        """Encode a message key; raises CodecError if the codec cannot encode it."""
        default = default_serializer or DEFAULT_KEY_SERIALIZER
        if key is None:
            return None
        if isinstance(key, Record):
            return _dumps_record(key, self.key_serializer, default)
        return _plan(self._key_plans, self.key_type, self.key_serializer, default).dumps(key)

    def dumps_value(self, value: Any, *, default_serializer: CodecArg = None) -> bytes | None:
        """Encode a message value; raises CodecError if the codec cannot encode it."""
        default = default_serializer or DEFAULT_VALUE_SERIALIZER
        if value is None:
            return None
        if isinstance(value, Record):
            return _dumps_record(value, self.value_serializer, default)
        return _plan(self._value_plans, self.value_type, self.value_serializer, default).dumps(value)

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
        plan = _plan(self._key_plans, self.key_type, self.key_serializer,
                     default_serializer or DEFAULT_KEY_SERIALIZER)
        if data is None:
            return None
        try:
            return plan.decode(bytes(data))
        except Exception as exc:
            raise _decode_error(KeyDecodeError, "key", self.key_type, plan.codec, exc,
                                topic, partition, offset) from exc

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
        plan = _plan(self._value_plans, self.value_type, self.value_serializer,
                     default_serializer or DEFAULT_VALUE_SERIALIZER)
        if data is None:
            return None
        try:
            return plan.decode(bytes(data))
        except Exception as exc:
            raise _decode_error(ValueDecodeError, "value", self.value_type, plan.codec, exc,
                                topic, partition, offset) from exc

    def loads_message(
        self, message: Any, key_serializer: CodecArg, value_serializer: CodecArg
    ) -> tuple[Any, Any]:
        """``loads_key`` and ``loads_value`` of a consumed message, as one step (the hot path).

        ``key_serializer``/``value_serializer`` are the app's defaults; a
        failure names the message's topic, partition and offset.
        """
        key_data, value_data = message.key, message.value
        key = value = None
        generation = codecs.codecs.generation
        if key_data is not None:
            default = key_serializer or DEFAULT_KEY_SERIALIZER
            plan = self._key_plans.get(default)  # (``_plan`` inlined: this runs per message)
            if plan is None or plan.generation != generation:
                plan = _plan(self._key_plans, self.key_type, self.key_serializer, default)
            try:
                key = plan.decode(key_data if type(key_data) is bytes else bytes(key_data))
            except Exception as exc:
                raise _decode_error(KeyDecodeError, "key", self.key_type, plan.codec, exc,
                                    message.topic, message.partition, message.offset) from exc
        if value_data is not None:
            default = value_serializer or DEFAULT_VALUE_SERIALIZER
            plan = self._value_plans.get(default)
            if plan is None or plan.generation != generation:
                plan = _plan(self._value_plans, self.value_type, self.value_serializer, default)
            try:
                value = plan.decode(value_data if type(value_data) is bytes else bytes(value_data))
            except Exception as exc:
                raise _decode_error(ValueDecodeError, "value", self.value_type, plan.codec, exc,
                                    message.topic, message.partition, message.offset) from exc
        return key, value

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


def _codec_for(typ: Any, explicit: CodecArg, default: _DefaultCodec) -> codecs.Codec:
    if explicit:
        return codecs.get_codec(explicit)
    if is_model_type(typ):
        return _record_codec(typ._options.serializer, default)
    if typ is bytes or typ is str:
        return codecs.get_codec("raw")
    return codecs.get_codec(default)


def _record_codec(option: CodecArg, default: _DefaultCodec) -> codecs.Codec:
    # raw cannot carry a Record, so a Record key under the app's raw key default uses json.
    codec = codecs.get_codec(option or default)
    if not option and isinstance(codec, codecs.RawCodec):
        return codecs.get_codec("json")
    return codec


class _Plan:
    """The codec of one side (key or value) of a Schema under one default, and what follows.

    ``dumps``/``decode`` are :func:`_codec_for` plus the per-type steps, decided when the
    plan is made instead of per message.
    """

    __slots__ = ("generation", "codec", "decode", "raw_numbers")

    def __init__(self, typ: Any, explicit: CodecArg, default: _DefaultCodec) -> None:
        self.generation = codecs.codecs.generation
        self.codec = _codec_for(typ, explicit, default)
        self.decode = _decoder(typ, self.codec)
        #: raw carries int/float as their text, read back by _to_number.
        self.raw_numbers = typ in (int, float) and isinstance(self.codec, codecs.RawCodec)

    def dumps(self, obj: Any) -> bytes:
        if self.raw_numbers and _is_number(obj):
            obj = repr(obj)
        return self.codec.dumps(obj)


def _plan(plans: dict[Any, _Plan], typ: Any, explicit: CodecArg, default: _DefaultCodec) -> _Plan:
    """The cached plan for ``default``, made anew if codecs were (un)registered since."""
    if type(default) is not str:  # a Codec object: a fresh one per call must not pile up here
        return _Plan(typ, explicit, default)
    plan = plans.get(default)
    if plan is None or plan.generation != codecs.codecs.generation:
        plan = plans[default] = _Plan(typ, explicit, default)
    return plan


def _dumps_record(obj: Record, explicit: CodecArg, default: _DefaultCodec) -> bytes:
    codec = explicit or _record_codec(obj._options.serializer, default)
    return obj.dumps(serializer=codec)


def _decode_error(
    error: type[DecodeError], what: str, typ: Any, codec: codecs.Codec, exc: Exception,
    topic: str | None, partition: int | None, offset: int | None,
) -> DecodeError:
    # Built only when decoding failed.
    reason = (
        f"cannot decode {what} as {type_name(typ) if typ is not None else 'any'} "
        f"with codec {codec.name!r}: {exc}"
    )
    return error(reason, topic=topic, partition=partition, offset=offset)


def _decoder(typ: Any, codec: codecs.Codec) -> Callable[[bytes], Any]:
    """Bytes -> the declared type through ``codec``: the per-type steps chosen once."""
    loads = codec.decoder()
    if typ is None:
        return _any_decoder(loads)
    if is_model_type(typ):
        return lambda data: typ.from_data(loads(data))
    if typ is str or typ is bytes:
        return _text_decoder(typ, codec)
    if typ is int or typ is float:
        return lambda data: _to_number(loads(data), typ)
    return loads


def _any_decoder(loads: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """No declared type: the payload as decoded, or the Record it names (``_maybe_record``)."""
    not_mappings = _NOT_MAPPINGS

    def decode(data: bytes) -> Any:
        obj = loads(data)
        cls = type(obj)
        if cls in not_mappings or (cls is dict and "__faust" not in obj):
            return obj  # the common payloads, without a call
        return _maybe_record(obj)

    return decode


def _text_decoder(typ: type, codec: codecs.Codec) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        obj = codec.loads(data)
        if type(obj) is typ:
            return obj
        if typ is str:
            obj = obj.decode("utf-8") if isinstance(obj, bytes) else obj
        else:
            obj = obj.encode("utf-8") if isinstance(obj, str) else obj
        return _expect(obj, typ)

    return decode


#: decoded payload types that are never a Mapping (no ABC isinstance check for them).
_NOT_MAPPINGS = frozenset({str, bytes, int, float, bool, list, type(None)})


def _maybe_record(obj: Any) -> Any:
    # No declared type: a payload naming a registered Record still decodes to it (as Faust).
    cls = type(obj)
    if cls in _NOT_MAPPINGS:
        return obj
    if cls is dict or isinstance(obj, Mapping):
        meta = obj.get("__faust")
        if meta is not None and isinstance(meta, Mapping) and meta.get("ns") in current_registry():
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
