"""``app.serializers``: keys and values to bytes and back by type and codec (Faust's ``Registry``).

Faust code reaches the app's codecs through it: a Faust ``Schema`` subclass
calls ``app.serializers.loads_key(key_type, message.key, serializer=...)``,
and models.rst's custom schemas do. Its bytes are those of
:class:`~detstream.serializers.Schema` (one per type and codec, kept), with
the app's ``key_serializer``/``value_serializer`` as the defaults; and, as
in Faust, a ``bytes`` key or value is sent as it is, whatever the codec.

Example::

    app.serializers.dumps_value(Point, Point(1, 2))       # b'{"x":1,"y":2,"__faust":...}'
    app.serializers.loads_value(Point, b'{"x":1,"y":2}')  # Point(x=1, y=2)
"""

from __future__ import annotations

from typing import Any

from detstream import codecs
from detstream.serializers import DEFAULT_KEY_SERIALIZER, DEFAULT_VALUE_SERIALIZER, Schema

__all__ = ["Registry"]

CodecArg = codecs.Codec | str | None


class Registry:
    """Serializes message keys and values (``faust.serializers.Registry``).

    Arguments:
        key_serializer: the codec of keys when none is given (Faust's default: None, raw).
        value_serializer: the codec of values when none is given (default: json).
    """

    def __init__(
        self,
        key_serializer: CodecArg = None,
        value_serializer: CodecArg = "json",
        *,
        warn: bool = True,
    ) -> None:
        self.key_serializer = key_serializer
        self.value_serializer = value_serializer
        #: (key_type, value_type, key codec, value codec) -> the Schema doing the work.
        self._schemas: dict[tuple[Any, Any, Any, Any], Schema] = {}
        if warn:  # as Faust's: a registry made with the unsafe pickle codec says so
            codecs.warn_if_unsafe_pickle(key_serializer, stacklevel=None)
            codecs.warn_if_unsafe_pickle(value_serializer, stacklevel=None)

    def _schema(self, key_type: Any = None, value_type: Any = None,
                key_serializer: CodecArg = None, value_serializer: CodecArg = None) -> Schema:
        signature = (key_type, value_type, key_serializer, value_serializer)
        schema = self._schemas.get(signature)
        if schema is None:
            schema = self._schemas[signature] = Schema(
                key_type=key_type, value_type=value_type,
                key_serializer=key_serializer, value_serializer=value_serializer,
            )
        return schema

    def loads_key(self, typ: Any, key: bytes | None, *, serializer: CodecArg = None) -> Any:
        """``key`` decoded as ``typ`` (a Record class, str, bytes, ... or None: as it comes)
        with ``serializer``, else :attr:`key_serializer`; raises KeyDecodeError."""
        return self._schema(key_type=typ, key_serializer=serializer).decode_key(
            key, default_serializer=self.key_serializer or DEFAULT_KEY_SERIALIZER)

    def loads_value(self, typ: Any, value: bytes | None, *, serializer: CodecArg = None) -> Any:
        """``value`` decoded as ``typ`` with ``serializer``, else :attr:`value_serializer`;
        raises ValueDecodeError."""
        return self._schema(value_type=typ, value_serializer=serializer).decode_value(
            value, default_serializer=self.value_serializer or DEFAULT_VALUE_SERIALIZER)

    def dumps_key(self, typ: Any, key: Any, *, serializer: CodecArg = None,
                  skip: tuple[type, ...] = (bytes,)) -> bytes | None:
        """``key`` as bytes: a Record with its own serializer option, else ``serializer``,
        else :attr:`key_serializer`; a ``skip`` instance (bytes) is sent as it is."""
        if isinstance(key, skip):
            return bytes(key)  # type: ignore[call-overload]  # (skip: bytes-like types)
        return self._schema(key_type=typ, key_serializer=serializer).encode_key(
            key, default_serializer=self.key_serializer or DEFAULT_KEY_SERIALIZER)

    def dumps_value(self, typ: Any, value: Any, *, serializer: CodecArg = None,
                    skip: tuple[type, ...] = (bytes,)) -> bytes | None:
        """``value`` as bytes, as :meth:`dumps_key` does keys."""
        if isinstance(value, skip):
            return bytes(value)  # type: ignore[call-overload]  # (skip: bytes-like types)
        return self._schema(value_type=typ, value_serializer=serializer).encode_value(
            value, default_serializer=self.value_serializer or DEFAULT_VALUE_SERIALIZER)

    def __repr__(self) -> str:
        return (f"<Registry: key_serializer={self.key_serializer!r} "
                f"value_serializer={self.value_serializer!r}>")
