"""Schema: how one topic's keys and values become bytes and back (Faust's ``faust.Schema``).

Which codec applies, in order: the schema's explicit ``key_serializer``/``value_serializer``;
for a Record (type or instance) its ``serializer`` option; ``raw`` for ``bytes``/``str``
types; else the default the caller passes (the app's ``key_serializer``, ``raw``, and
``value_serializer``, ``json``); a Record never falls back to ``raw``, which cannot carry it,
but to ``json``. Imports only codecs, models and errors.

A Schema speaks two dialects. detstream's own (``encode_key(key, default_serializer=...)``,
``decode_value(data, ...)``, what topics and tables call) and Faust's, for subclasses written
for Faust (models.rst's ``Autodetect``): ``loads_key(app, message, *, loads=None,
serializer=None)``, ``loads_value``, ``dumps_key(app, key, *, serializer=None, headers)``,
``dumps_value`` and the ``on_dumps_key_prepare_headers``/``on_dumps_value_prepare_headers``
hooks. A subclass overriding any of those has them called by its topics: the loads when a
stream decodes a message, the dumps and hooks when a topic sends. Faust's calls go through
``app.serializers`` (:class:`~detstream.serializer_registry.Registry`), whose bytes are the
Schema's. ``loads_key(data, default_serializer=...)`` with one positional argument is
detstream's ``decode_key`` (and so on), as before.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping
from typing import Any

from detstream import codecs
from detstream._annotations import is_model_type, type_name
from detstream.errors import (
    DecodeError,
    ImproperlyConfigured,
    InvalidArgument,
    KeyDecodeError,
    ValueDecodeError,
)
from detstream.models import Record, current_registry, record_decoder

__all__ = ["Schema"]

CodecArg = codecs.Codec | str | None
#: A default codec: always set (the caller's ``default_serializer`` or ours below).
_DefaultCodec = codecs.Codec | str

#: App defaults (Faust's ``key_serializer``/``value_serializer`` settings).
DEFAULT_KEY_SERIALIZER = "raw"
DEFAULT_VALUE_SERIALIZER = "json"


#: Attributes a Schema's compiled plans depend on; setting one drops them.
_PLANNED = frozenset({"key_type", "value_type", "key_serializer", "value_serializer"})

#: ``loads_key(data)`` called without Faust's ``message``: detstream's dialect.
_NO_MESSAGE: Any = object()
#: Faust's methods a subclass may override: the decoding ones, and the encoding ones.
_FAUST_LOADS = ("loads_key", "loads_value")
_FAUST_DUMPS = ("dumps_key", "dumps_value", "on_dumps_key_prepare_headers",
                "on_dumps_value_prepare_headers")


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
    #: the class overrides Faust's decoding (``loads_key``/``loads_value``) or encoding
    #: methods, which its topics then call (see the module docstring).
    faust_loads: bool = False
    faust_dumps: bool = False
    #: the app of the last channel made with this schema: what Faust's ``loads_*`` get.
    _app: Any = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.faust_loads = any(getattr(cls, name) is not getattr(Schema, name)
                              for name in _FAUST_LOADS)
        cls.faust_dumps = any(getattr(cls, name) is not getattr(Schema, name)
                              for name in _FAUST_DUMPS)

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
        self._check_configured()

    def update(
        self,
        *,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: CodecArg = None,
        value_serializer: CodecArg = None,
        allow_empty: bool | None = None,
    ) -> None:
        """Set the arguments given (not None), as Faust's ``Schema.update``.

        A topic made with ``schema=`` and ``key_type=`` (and so on) updates the schema so.
        """
        if key_type is not None:
            self.key_type = _check_type("key_type", key_type)
        if value_type is not None:
            self.value_type = _check_type("value_type", value_type)
        if key_serializer is not None:
            self.key_serializer = _check_codec("key_serializer", key_serializer)
        if value_serializer is not None:
            self.value_serializer = _check_codec("value_serializer", value_serializer)
        if allow_empty is not None:
            self.allow_empty = allow_empty
        self._check_configured()

    def _check_configured(self) -> None:
        """Codecs that cannot work here fail now; the unsafe pickle codec is warned about.

        Counts a Record type's ``serializer`` option too, as Faust does.
        """
        for explicit, typ in ((self.key_serializer, self.key_type),
                              (self.value_serializer, self.value_type)):
            codec = explicit or (typ._options.serializer if is_model_type(typ) else None)
            if codec:
                codecs.get_codec(codec).check_usable()
                codecs.warn_if_unsafe_pickle(codec, stacklevel=None)

    def bind_app(self, app: Any) -> None:
        """Remember ``app`` for Faust's ``loads_key(app, message)`` (a channel calls it)."""
        if self.faust_loads:
            self._app = app

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        if name in _PLANNED:  # plans made for the old types or codecs no longer hold
            object.__setattr__(self, "_key_plans", {})
            object.__setattr__(self, "_value_plans", {})

    def __getstate__(self) -> dict[str, Any]:
        # Plans hold closures; a copy or an unpickled schema makes its own (and no app).
        state = {**self.__dict__, "_key_plans": {}, "_value_plans": {}}
        state.pop("_app", None)
        return state

    # -- detstream's dialect ------------------------------------------------------------
    def encode_key(self, key: Any, *, default_serializer: CodecArg = None) -> bytes | None:
        """Encode a message key; raises CodecError if the codec cannot encode it."""
        default = default_serializer or DEFAULT_KEY_SERIALIZER
        if key is None:
            return None
        plan = self._key_plans.get(default)  # (``_plan`` inlined: this runs per record sent)
        if plan is None or plan.generation != codecs.codecs.generation:
            plan = _plan(self._key_plans, self.key_type, self.key_serializer, default)
        if type(key) is plan.record_type:  # the declared Record class: its codec is the plan's
            return plan.encode(key.to_representation())
        if isinstance(key, Record):
            return _dumps_record(key, self.key_serializer, default)
        return plan.dumps(key)

    def encode_value(self, value: Any, *, default_serializer: CodecArg = None) -> bytes | None:
        """Encode a message value; raises CodecError if the codec cannot encode it."""
        default = default_serializer or DEFAULT_VALUE_SERIALIZER
        if value is None:
            return None
        plan = self._value_plans.get(default)
        if plan is None or plan.generation != codecs.codecs.generation:
            plan = _plan(self._value_plans, self.value_type, self.value_serializer, default)
        if type(value) is plan.record_type:
            return plan.encode(value.to_representation())
        if isinstance(value, Record):
            return _dumps_record(value, self.value_serializer, default)
        return plan.dumps(value)

    def decode_key(
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

    def decode_value(
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

    # -- Faust's dialect (and detstream's, by the arguments given) ------------------------
    def loads_key(self, data: Any, message: Any = _NO_MESSAGE, /, *, loads: Any = None,
                  serializer: CodecArg = None, **options: Any) -> Any:
        """Faust's ``loads_key(app, message, *, loads=None, serializer=None)``: the key decoded
        by ``loads`` (default: ``app.serializers.loads_key``) as ``key_type``, with
        ``serializer`` or the schema's ``key_serializer``.

        Called with one positional argument it is detstream's :meth:`decode_key`.
        """
        if message is _NO_MESSAGE:
            return self.decode_key(data, **options)
        loads = loads or data.serializers.loads_key
        return loads(self.key_type, message.key, serializer=serializer or self.key_serializer)

    def loads_value(self, data: Any, message: Any = _NO_MESSAGE, /, *, loads: Any = None,
                    serializer: CodecArg = None, **options: Any) -> Any:
        """Faust's ``loads_value(app, message, *, loads=None, serializer=None)``; with one
        positional argument, detstream's :meth:`decode_value`."""
        if message is _NO_MESSAGE:
            return self.decode_value(data, **options)
        loads = loads or data.serializers.loads_value
        return loads(self.value_type, message.value,
                     serializer=serializer or self.value_serializer)

    def dumps_key(self, key_or_app: Any, key: Any = _NO_MESSAGE, /, *,
                  serializer: CodecArg = None, headers: Any = None,
                  default_serializer: CodecArg = None) -> Any:
        """Faust's ``dumps_key(app, key, *, serializer=None, headers)``: ``(bytes, headers)``,
        the headers as :meth:`on_dumps_key_prepare_headers` made them.

        Called with one positional argument it is detstream's :meth:`encode_key`.
        """
        if key is _NO_MESSAGE:
            return self.encode_key(key_or_app, default_serializer=default_serializer)
        payload = key_or_app.serializers.dumps_key(
            self.key_type, key, serializer=serializer or self.key_serializer)
        return payload, self.on_dumps_key_prepare_headers(key, headers)

    def dumps_value(self, value_or_app: Any, value: Any = _NO_MESSAGE, /, *,
                    serializer: CodecArg = None, headers: Any = None,
                    default_serializer: CodecArg = None) -> Any:
        """Faust's ``dumps_value(app, value, *, serializer=None, headers)``; with one positional
        argument, detstream's :meth:`encode_value`."""
        if value is _NO_MESSAGE:
            return self.encode_value(value_or_app, default_serializer=default_serializer)
        payload = value_or_app.serializers.dumps_value(
            self.value_type, value, serializer=serializer or self.value_serializer)
        return payload, self.on_dumps_value_prepare_headers(value, headers)

    def on_dumps_key_prepare_headers(self, key: Any, headers: Any) -> Any:
        """The headers of a record whose key is ``key`` (Faust's hook): unchanged here.

        Return the headers, or None after changing them in place (``merge_headers``).
        """
        return headers

    def on_dumps_value_prepare_headers(self, value: Any, headers: Any) -> Any:
        """As :meth:`on_dumps_key_prepare_headers`, for the value."""
        return headers

    def encode_faust(
        self, app: Any, key: Any, value: Any, headers: Any,
        key_serializer: CodecArg, value_serializer: CodecArg,
    ) -> tuple[bytes | None, bytes | None, Any]:
        """A send through a subclass's Faust methods: key and value bytes, and the headers.

        ``headers`` is a dict or a list of pairs the hooks may change; a hook returning
        None changed them in place.
        """
        key_bytes: Any = None
        if key is not None:
            key_bytes, returned = self.dumps_key(app, key, serializer=key_serializer,
                                                 headers=headers)
            headers = headers if returned is None else returned
        value_bytes, returned = self.dumps_value(app, value, serializer=value_serializer,
                                                 headers=headers)
        headers = headers if returned is None else returned
        return key_bytes, value_bytes, headers

    def loads_message(
        self, message: Any, key_serializer: CodecArg, value_serializer: CodecArg
    ) -> tuple[Any, Any]:
        """``loads_key`` and ``loads_value`` of a consumed message, as one step (the hot path).

        ``key_serializer``/``value_serializer`` are the app's defaults; a
        failure names the message's topic, partition and offset.
        """
        if self.faust_loads:
            return self._loads_faust(message)
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

    def _loads_faust(self, message: Any) -> tuple[Any, Any]:
        """A subclass's Faust ``loads_key``/``loads_value``, given the channel's app.

        Their errors that are not DecodeErrors are made ones, naming the message.
        """
        app = self._app
        if app is None:
            raise ImproperlyConfigured(
                f"{type(self).__name__} overrides Faust's loads_key/loads_value, which take the "
                "app: use the schema through app.topic(..., schema=...) or app.channel(...)"
            )
        where = (message.topic, message.partition, message.offset)
        try:
            key = self.loads_key(app, message)
        except DecodeError:
            raise
        except Exception as exc:
            raise KeyDecodeError(f"{type(self).__name__}.loads_key: {exc}", topic=where[0],
                                 partition=where[1], offset=where[2]) from exc
        if message.value is None and self.allow_empty:
            return key, None
        try:
            value = self.loads_value(app, message)
        except DecodeError:
            raise
        except Exception as exc:
            raise ValueDecodeError(f"{type(self).__name__}.loads_value: {exc}", topic=where[0],
                                   partition=where[1], offset=where[2]) from exc
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
    if typ is bytes:
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
    plan is made instead of per message: ``dumps`` is the codec's ``encoder()`` itself
    (one call for a str key under raw or a plain value under json, not four) unless raw
    numbers need their text first.
    """

    __slots__ = ("generation", "codec", "decode", "encode", "dumps", "raw_numbers",
                 "record_type")

    def __init__(self, typ: Any, explicit: CodecArg, default: _DefaultCodec) -> None:
        self.generation = codecs.codecs.generation
        self.codec = _codec_for(typ, explicit, default)
        self.decode = _decoder(typ, self.codec)
        #: ``codec.dumps``, as one quick callable (``Codec.encoder``).
        self.encode = self.codec.encoder()
        #: the declared Record class when its instances encode as ``_dumps_record`` would
        #: with this plan's codec (it keeps ``Record.dumps``): encoded in one step.
        self.record_type = typ if is_model_type(typ) and typ.dumps is Record.dumps else None
        #: raw carries int/float as their text, read back by _to_number.
        self.raw_numbers = typ in (int, float) and isinstance(self.codec, codecs.RawCodec)
        #: an object that is not of the declared Record class, encoded.
        self.dumps = self._dumps_number if self.raw_numbers else self.encode

    def _dumps_number(self, obj: Any) -> bytes:
        if _is_number(obj):
            obj = repr(obj)
        return self.encode(obj)


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
    if typ is str and not isinstance(codec, codecs.RawCodec):
        # Faust's rule, easy to miss: text written by a plain producer is not JSON.
        reason += (f"; a str {what} is read with the {what} serializer ({codec.name!r}), "
                   f"so if its producers write plain text, give the topic "
                   f"{what}_serializer='raw'")
    return error(reason, topic=topic, partition=partition, offset=offset)


def _decoder(typ: Any, codec: codecs.Codec) -> Callable[[bytes], Any]:
    """Bytes -> the declared type through ``codec``: the per-type steps chosen once.

    The steps after decoding call the codec's ``decoder_parts()`` inline (msgspec's
    method itself for plain JSON), rather than the one callable ``decoder()`` wraps
    them in: a call fewer per message.
    """
    loads = codec.decoder()
    if typ is None:
        return bytes if loads is bytes else _any_decoder(codec)  # raw: bytes are no Record
    if is_model_type(typ):
        return record_decoder(typ, codec)
    if typ is bytes and loads is bytes:
        return bytes
    if typ is str or typ is bytes:
        return _text_decoder(typ, codec)
    if typ is int or typ is float:
        return _number_decoder(typ, codec)
    return loads


def _any_decoder(codec: codecs.Codec) -> Callable[[bytes], Any]:
    """No declared type: the payload as decoded, or the Record it names (``_maybe_record``)."""
    not_mappings = _NOT_MAPPINGS
    first, refused, then = codec.decoder_parts()

    def decode(data: bytes) -> Any:
        try:
            obj = first(data)
        except refused:
            obj = then(data)
        cls = type(obj)
        if cls in not_mappings or (cls is dict and "__faust" not in obj):
            return obj  # the common payloads, without a call
        return _maybe_record(obj)

    return decode


def _number_decoder(typ: type, codec: codecs.Codec) -> Callable[[bytes], Any]:
    first, refused, then = codec.decoder_parts()

    def decode(data: bytes) -> Any:
        try:
            obj = first(data)
        except refused:
            obj = then(data)
        return _to_number(obj, typ)

    return decode


def _text_decoder(typ: type, codec: codecs.Codec) -> Callable[[bytes], Any]:
    first, refused, then = codec.decoder_parts()

    def decode(data: bytes) -> Any:
        try:
            obj = first(data)
        except refused:
            obj = then(data)
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
