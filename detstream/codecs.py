"""Codecs: turn Python objects into bytes and back, by name (Faust's ``faust.serializers.codecs``).

A codec is a pair of functions ``dumps(obj) -> bytes`` / ``loads(bytes) -> obj``. Codecs are
looked up by name (``'json'``, ``'raw'``, ``'binary'``, ``'pickle'``, ``'pickle_restricted'``,
``'pickle_fickling'``, ``'yaml'``) or composed with ``|`` (``'json|binary'``: JSON, then base64). Codecs of
installed packages are found through the ``faust.codecs`` (or ``detstream.codecs``) entry point
group, as Faust's codec extensions are. This module must not import ``detstream.models``:
Records are encoded through the ``__json__()`` protocol instead.

**Pickle is unsafe on topics others can write to**: unpickling runs code the payload chooses.
The ``pickle`` codec warns (:class:`~detstream.errors.SecurityWarning`) when a schema or an app
is configured with it and at every message it unpickles, as Faust does; ``pickle_restricted``
builds only allowlisted classes (:mod:`detstream.restricted_pickle`) and ``pickle_fickling``
has the optional Fickling scanner check each payload first (:mod:`detstream.fickling_check`).

Example::

    >>> from detstream import codecs
    >>> codecs.dumps('json|binary', {'x': 1})
    b'eyJ4IjoxfQ=='
    >>> codecs.loads('json|binary', b'eyJ4IjoxfQ==')
    {'x': 1}
"""

from __future__ import annotations

import base64
import datetime as _dt
import importlib
import json as _json
import json.encoder as _json_encoder
import logging
import os
import pickle as _pickle
import sys
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from detstream.errors import (
    CodecError,
    ImproperlyConfigured,
    InvalidArgument,
    SecurityWarning,
    UnpicklingRefused,
)
from detstream.fickling_check import fickling_loads, require_fickling
from detstream.restricted_pickle import RestrictedUnpickler, restricted_loads

logger = logging.getLogger(__name__)

__all__ = [
    "Codec",
    "Pipeline",
    "RawCodec",
    "JSONCodec",
    "PickleCodec",
    "RawPickleCodec",
    "RestrictedPickleCodec",
    "RawRestrictedPickleCodec",
    "FicklingPickleCodec",
    "RawFicklingPickleCodec",
    "BinaryCodec",
    "RestrictedUnpickler",
    "UNSAFE_PICKLE_WARNING",
    "raw",
    "json",
    "pickle",
    "raw_pickle",
    "pickle_restricted",
    "restricted_pickle",
    "pickle_fickling",
    "raw_fickling_pickle",
    "binary",
    "yaml",
    "YAMLCodec",
    "codecs",
    "register",
    "get_codec",
    "dumps",
    "loads",
    "load_extension_codecs",
    "uses_unsafe_pickle",
    "warn_if_unsafe_pickle",
    "to_json_ready",
]


#: ``Codec.decoder_parts()``: (first, refused, then), see there.
DecoderParts = tuple[Callable[[bytes], Any], type[Exception] | tuple[type[Exception], ...],
                     Callable[[bytes], Any]]


class Codec:
    """Base class: subclasses implement ``_dumps``/``_loads``; users call ``dumps``/``loads``.

    The public methods wrap whatever the hooks raise in :class:`CodecError`, so callers
    (the Schema, ``Record.loads``) catch one exception type whatever the codec.
    """

    #: Name used in error messages and by :func:`register`.
    name: str = "codec"
    #: the keyword arguments the codec was made with (Faust's ``Codec.kwargs``).
    kwargs: dict[str, Any]

    def __init__(self, children: tuple[Codec, ...] | None = None, **kwargs: Any) -> None:
        """Keep ``kwargs`` (a subclass's options, as Faust's codecs do).

        Faust's ``children`` chain codecs; here ``a | b`` does (a :class:`Pipeline`).
        """
        if children:
            raise InvalidArgument(
                f"{type(self).__name__}(children=...): chain codecs with | instead "
                "(codec_a | codec_b)"
            )
        self.kwargs = kwargs

    def _dumps(self, obj: Any) -> bytes:
        raise NotImplementedError(f"{type(self).__name__} must implement _dumps")

    def _loads(self, data: bytes) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _loads")

    def dumps(self, obj: Any) -> bytes:
        """Encode ``obj`` to bytes; raises CodecError naming the codec and the object's type."""
        try:
            return self._dumps(obj)
        except CodecError:
            raise
        except Exception as exc:
            raise _cannot_encode(self, obj, exc) from exc

    def loads(self, data: bytes) -> Any:
        """Decode bytes produced by :meth:`dumps`; raises CodecError if they are malformed.

        A pickle codec's refusal is an :class:`~detstream.errors.UnpicklingRefused`, also a
        ``pickle.UnpicklingError``; a codec missing its package raises ImproperlyConfigured.
        """
        try:
            return self._loads(data)
        except (CodecError, ImproperlyConfigured):
            raise
        except _pickle.UnpicklingError as exc:
            raise UnpicklingRefused(
                f"codec {self.name!r} cannot decode {_describe(data)}: {exc}"
            ) from exc
        except Exception as exc:
            raise CodecError(
                f"codec {self.name!r} cannot decode {_describe(data)}: {exc}"
            ) from exc

    def check_usable(self) -> None:
        """Raise ImproperlyConfigured if this codec cannot work here (a package is missing).

        Called when a schema is configured with the codec, so that a topic fails at
        definition rather than at its first message.
        """

    def decoder(self) -> Callable[[bytes], Any]:
        """``loads`` as one callable, for a hot path that decodes with this codec per message.

        The same results and errors as ``loads``; a codec may return a quicker
        function than the bound method (``JSONCodec``: its C decoder first).
        """
        return self.loads

    def decoder_parts(self) -> DecoderParts:
        """``decoder()`` taken apart, for a hot path to inline: ``(first, refused, then)``.

        ``first(data)``, or ``then(data)`` when ``first`` raises one of ``refused``,
        decodes as ``decoder()(data)`` does. A caller writing ``try: first(data)
        except refused: then(data)`` saves the call to a wrapper where the decoder is
        one (``JSONCodec``: msgspec's method itself, then ``loads`` for what it refuses).
        Here: ``decoder()`` and nothing refused (``except ()`` catches nothing).
        """
        return self.decoder(), (), self.loads

    def encoder(self) -> Callable[[Any], bytes]:
        """``dumps`` as one callable, for a hot path that encodes with this codec per message.

        The same bytes and errors as ``dumps``; a codec may return a quicker function
        than the bound method (``JSONCodec``, ``RawCodec``: without the calls to
        ``_dumps`` and what it calls).
        """
        return self.dumps

    @property
    def stages(self) -> tuple[Codec, ...]:
        """The leaf codecs applied, in ``dumps`` order (one for a plain codec)."""
        return (self,)

    def __or__(self, other: Codec) -> Codec:
        """``a | b`` encodes with ``a`` then ``b``, and decodes in reverse."""
        if not isinstance(other, Codec):
            return NotImplemented
        return Pipeline(*self.stages, *other.stages)

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


class Pipeline(Codec):
    """Codecs chained with ``|``; built by ``a | b`` or ``get_codec('a|b')``."""

    def __init__(self, *stages: Codec) -> None:
        self._stages = stages
        self.name = "|".join(stage.name for stage in stages)
        self.kwargs = {}

    def check_usable(self) -> None:
        for stage in self._stages:
            stage.check_usable()

    @property
    def stages(self) -> tuple[Codec, ...]:
        return self._stages

    def dumps(self, obj: Any) -> bytes:
        for stage in self._stages:
            obj = stage.dumps(obj)
        return obj

    def loads(self, data: bytes) -> Any:
        for stage in reversed(self._stages):
            data = stage.loads(data)
        return data


class RawCodec(Codec):
    """Bytes pass through unchanged; ``str`` is encoded as UTF-8. Decodes to ``bytes``."""

    name = "raw"

    def _dumps(self, obj: Any) -> bytes:
        return _want_bytes(obj, self.name)

    def _loads(self, data: bytes) -> bytes:
        return bytes(data)

    def decoder(self) -> Callable[[bytes], Any]:
        """``bytes`` itself when this is the plain raw codec (no subclass): what ``loads``
        returns, and ``bytes`` of the bytes a consumer hands it never fails (no wrapper)."""
        if type(self).loads is not Codec.loads or type(self)._loads is not RawCodec._loads:
            return self.loads
        return bytes

    def encoder(self) -> Callable[[Any], bytes]:
        """``dumps`` without its two calls for a str or bytes, when this is the plain raw
        codec (no subclass): what ``_want_bytes`` does for them, inline. The rest (other
        types, a str UTF-8 cannot carry) goes through ``dumps``, which words the error."""
        dumps = self.dumps
        if type(self).dumps is not Codec.dumps or type(self)._dumps is not RawCodec._dumps:
            return dumps

        def encode(obj: Any) -> bytes:
            cls = type(obj)
            if cls is str:
                try:
                    return obj.encode("utf-8")
                except UnicodeEncodeError:  # a lone surrogate: encoding it again fails alike
                    return dumps(obj)
            if cls is bytes:
                return obj  # what bytes(obj) returns for exactly bytes
            return dumps(obj)

        return encode


class JSONCodec(Codec):
    """JSON with Faust's bytes: dict order as given, compact separators, non-ASCII escaped.

    faust-streaming 0.15 (without orjson) writes ``json.dumps(obj, separators=(",", ":"))``
    with its encoder's defaults: ASCII output (``"\\u00e9"``), datetimes and times in
    ISO 8601 with a UTC offset written ``Z``, Enums as their value. The same bytes matter:
    a JSON key's bytes decide its partition and its identity in a compacted topic, so a
    detstream worker and a Faust producer must agree on them.

    Beyond plain JSON types it encodes datetime/date/time (ISO 8601), Decimal (as a string,
    to keep precision), UUID (str), Enum (its value), set/frozenset (a sorted list, where
    Faust's order follows the set), tuple/deque (list), bytes (UTF-8 text, where Faust
    writes ``"b'...'"``) and any object with a ``__json__()`` method (Records).
    """

    name = "json"

    def _dumps(self, obj: Any) -> bytes:
        return _ENCODE(obj).encode("utf-8")

    def encoder(self) -> Callable[[Any], bytes]:
        """``dumps`` in one call when this is the plain JSON codec (no subclass): the C
        encoder's chunks joined here, not three calls down (``dumps``, ``_dumps``, ``_ENCODE``).

        The same bytes; an error is the CodecError ``dumps`` raises: one of ours
        (``_json_default``'s) as it is, the rest (a cycle, as ``_ENCODE`` words it)
        wrapped by :func:`_cannot_encode`, as ``dumps`` wraps them.
        """
        chunks = _CHUNKS
        if (chunks is None or type(self).dumps is not Codec.dumps
                or type(self)._dumps is not JSONCodec._dumps):
            return self.dumps
        join = "".join

        def encode(obj: Any) -> bytes:
            try:
                return join(chunks(obj, 0)).encode("utf-8")
            except CodecError:
                raise
            except RecursionError:
                error = ValueError(_CIRCULAR)
                raise _cannot_encode(self, obj, error) from error
            except Exception as exc:
                raise _cannot_encode(self, obj, exc) from exc

        return encode

    def decoder(self) -> Callable[[bytes], Any]:
        """msgspec's decoder called directly when this is the plain JSON codec (no subclass).

        What msgspec refuses goes through ``loads``, which decides as
        ``json.loads`` does and words the error: two calls fewer per message.
        """
        fast, refused, loads = self._msgspec_parts()
        if not refused:
            return loads

        def decode(data: bytes) -> Any:
            try:
                return fast(data)
            except refused:
                return loads(data)

        return decode

    def decoder_parts(self) -> DecoderParts:
        """msgspec's ``Decoder.decode`` itself, its DecodeError and ``loads``: what ``decoder()``
        wraps in a closure, for a caller to inline (one call fewer per message still)."""
        if type(self).decoder is not JSONCodec.decoder:  # a subclass's own decoder() decides
            return super().decoder_parts()
        return self._msgspec_parts()

    def _msgspec_parts(self) -> DecoderParts:
        """(msgspec's decode, what it refuses, ``loads``) for the plain JSON codec with msgspec
        installed; else ``(loads, (), loads)``: a subclass's ``loads``/``_loads`` decide."""
        fast, refused, loads = _FAST_DECODE, _FAST_DECODE_ERRORS, self.loads
        if fast is None or type(self).loads is not Codec.loads or type(self)._loads is not JSONCodec._loads:
            return loads, (), loads
        return fast, refused, loads

    def _loads(self, data: bytes) -> Any:
        if _FAST_DECODE is not None:
            try:
                return _FAST_DECODE(data)
            except _FAST_DECODE_ERRORS:
                pass  # NaN, 1e400, lone surrogates, a BOM, malformed input: the stdlib decides
        text = bytes(data).decode("utf-8")
        if text.startswith("\ufeff"):  # json.loads refuses a BOM; let it say so
            return _json.loads(text)
        return _DECODER.decode(text)


class BinaryCodec(Codec):
    """Base64 (standard alphabet). Accepts bytes or str; decodes to bytes."""

    name = "binary"

    def _dumps(self, obj: Any) -> bytes:
        return base64.b64encode(_want_bytes(obj, self.name))

    def _loads(self, data: bytes) -> bytes:
        return base64.b64decode(bytes(data), validate=True)


#: What a yaml codec without PyYAML says (Faust's words, with the package's name).
MISSING_YAML = "Missing yaml: pip install PyYAML (the 'yaml' codec needs it)"


class YAMLCodec(Codec):
    """YAML through PyYAML's safe loader and dumper (Faust's ``yaml`` codec).

    Needs ``pip install PyYAML`` (the ``detstream[yaml]`` extra); without it,
    configuring a topic or Record with the codec raises ImproperlyConfigured
    saying so, instead of the first message failing.
    """

    name = "yaml"

    def check_usable(self) -> None:
        _yaml_module()

    def _dumps(self, obj: Any) -> bytes:
        return _yaml_module().safe_dump(obj).encode("utf-8")

    def _loads(self, data: bytes) -> Any:
        return _yaml_module().safe_load(bytes(data).decode("utf-8"))


def _yaml_module() -> Any:
    try:
        return importlib.import_module("yaml")
    except ImportError as exc:
        raise ImproperlyConfigured(MISSING_YAML) from exc


#: The warning of the unrestricted pickle codec: when configured, and at every unpickling.
UNSAFE_PICKLE_WARNING = (
    "The pickle codec calls pickle.loads() on message data, which can execute arbitrary "
    "code if the data does not come from a trusted producer. Only use "
    "value_serializer/key_serializer='pickle' on topics where every producer is trusted. "
    "If that cannot be guaranteed, use the 'pickle_restricted' codec instead, which limits "
    "unpickling to a safe allowlist of classes."
)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _warn_unsafe_pickle() -> None:
    """The SecurityWarning, attributed to the first caller outside detstream (the user's
    ``app.topic(...)`` line, or the agent reading the stream)."""
    frame = sys._getframe(1)
    level = 2
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(UNSAFE_PICKLE_WARNING, SecurityWarning, stacklevel=level)


class RawPickleCodec(Codec):
    """Pickle without base64 (Faust's ``raw_pickle``); unsafe, see :class:`PickleCodec`."""

    name = "raw_pickle"
    #: Fixed protocol so the bytes do not change with the Python version's default (4 is
    #: Faust's, which pickles with the default of the Pythons it supports).
    protocol = 4

    def _dumps(self, obj: Any) -> bytes:
        return _pickle.dumps(obj, protocol=self.protocol)

    def _loads(self, data: bytes) -> Any:
        _warn_unsafe_pickle()
        return _pickle.loads(bytes(data))  # noqa: S301 - the codec the user chose, warned


class PickleCodec(RawPickleCodec):
    """Pickle, then base64 (as Faust's ``pickle`` codec).

    Warning: unpickling runs arbitrary code chosen by whoever wrote the bytes. Only use this
    codec on topics that nobody untrusted can produce to; prefer ``json``, or
    ``pickle_restricted``. A :class:`~detstream.errors.SecurityWarning` says so when a
    schema or app is configured with it and at every message it unpickles (as Faust).
    """

    name = "pickle"

    def _dumps(self, obj: Any) -> bytes:
        return base64.b64encode(super()._dumps(obj))

    def _loads(self, data: bytes) -> Any:
        _warn_unsafe_pickle()
        return _pickle.loads(base64.b64decode(bytes(data), validate=True))  # noqa: S301


class RawRestrictedPickleCodec(Codec):
    """Pickle without base64, loaded by :class:`RestrictedUnpickler` (Faust's ``restricted_pickle``).

    Protocol 5, as Faust's: it has an opcode for ``bytearray`` values, which would
    otherwise need the ``bytearray`` global the allowlist leaves out.
    """

    name = "restricted_pickle"
    protocol = 5

    def _dumps(self, obj: Any) -> bytes:
        return _pickle.dumps(obj, protocol=self.protocol)

    def _loads(self, data: bytes) -> Any:
        return restricted_loads(bytes(data))


class RestrictedPickleCodec(RawRestrictedPickleCodec):
    """Pickle and base64, unpickling only allowlisted classes (Faust's ``pickle_restricted``).

    A payload naming any other class or function raises :class:`pickle.UnpicklingError`
    (an :class:`~detstream.errors.UnpicklingRefused`); extend
    ``RestrictedUnpickler.ALLOWED_CLASSES`` with the types your producers send.
    """

    name = "pickle_restricted"

    def _dumps(self, obj: Any) -> bytes:
        return base64.b64encode(super()._dumps(obj))

    def _loads(self, data: bytes) -> Any:
        return restricted_loads(base64.b64decode(bytes(data), validate=True))


class RawFicklingPickleCodec(Codec):
    """Pickle without base64, checked by Fickling before it loads (Faust's ``raw_fickling_pickle``).

    Needs ``pip install fickling``; without it, configuring a topic with the codec
    raises ImproperlyConfigured saying so. ``max_acceptable_severity`` is one of
    ``fickling.loader.Severity``'s values (None: Fickling's default, ``LIKELY_SAFE``).
    """

    name = "raw_fickling_pickle"
    protocol = 5

    def __init__(
        self, children: tuple[Codec, ...] | None = None, *, max_acceptable_severity: Any = None,
        **kwargs: Any,
    ) -> None:
        if max_acceptable_severity is not None:
            kwargs["max_acceptable_severity"] = max_acceptable_severity
        super().__init__(children, **kwargs)
        self.max_acceptable_severity = max_acceptable_severity

    def check_usable(self) -> None:
        require_fickling()

    def _dumps(self, obj: Any) -> bytes:
        return _pickle.dumps(obj, protocol=self.protocol)

    def _loads(self, data: bytes) -> Any:
        return fickling_loads(bytes(data), max_acceptable_severity=self.max_acceptable_severity)


class FicklingPickleCodec(RawFicklingPickleCodec):
    """Pickle and base64, checked by Fickling before it loads (Faust's ``pickle_fickling``).

    ``pickle_fickling(max_acceptable_severity=Severity.SUSPICIOUS)`` makes one with
    another tolerance, to pass as a serializer or to :func:`register`.
    """

    name = "pickle_fickling"

    def _dumps(self, obj: Any) -> bytes:
        return base64.b64encode(super()._dumps(obj))

    def _loads(self, data: bytes) -> Any:
        return super()._loads(base64.b64decode(bytes(data), validate=True))


#: Faust spells the codec classes in lower case (``json() | binary()``); calling one makes a
#: codec, as Faust's factories do (``pickle_fickling(max_acceptable_severity=...)``).
raw = RawCodec
json = JSONCodec
pickle = PickleCodec
raw_pickle = RawPickleCodec
pickle_restricted = RestrictedPickleCodec
restricted_pickle = RawRestrictedPickleCodec
pickle_fickling = FicklingPickleCodec
raw_fickling_pickle = RawFicklingPickleCodec
binary = BinaryCodec
yaml = YAMLCodec


def uses_unsafe_pickle(codec: Any) -> bool:
    """Whether ``codec`` (a name, ``'a|b'`` names, or a Codec) unpickles without restriction."""
    if isinstance(codec, str):
        return any(part.strip() in ("pickle", "raw_pickle") for part in codec.split("|"))
    if isinstance(codec, Codec):
        return any(isinstance(stage, RawPickleCodec) for stage in codec.stages)
    return False


def warn_if_unsafe_pickle(codec: Any, *, stacklevel: int | None = 2) -> None:
    """A SecurityWarning if ``codec`` is the unrestricted pickle codec (Faust's, same text).

    ``stacklevel`` as ``warnings.warn``'s, counted from the caller of this function;
    None: the first caller outside detstream.
    """
    if not uses_unsafe_pickle(codec):
        return
    if stacklevel is None:
        _warn_unsafe_pickle()
    else:
        warnings.warn(UNSAFE_PICKLE_WARNING, SecurityWarning, stacklevel=stacklevel + 1)

class _Registry(dict[str, Codec]):
    """A dict that counts its changes, so whoever caches a lookup knows when to redo it.

    Schemas resolve their codecs once and reuse them while ``generation`` is unchanged;
    any change (``register``, ``del codecs['x']``, ``update``...) bumps it.
    """

    generation = 0

    def _changed(self) -> None:
        self.generation += 1
        _pipelines.clear()

    def __setitem__(self, name: str, codec: Codec) -> None:
        super().__setitem__(name, codec)
        self._changed()

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self._changed()

    # typeshed's own dict.__ior__ carries ``type: ignore[misc]``: mypy cannot reconcile an
    # in-place operator with dict's generic ``__or__`` overloads, whatever the signature.
    def __ior__(self, other: Any, /) -> _Registry:  # type: ignore[override, misc]
        self.update(other)
        return self

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, name: str, codec: Codec) -> Codec:
        try:
            return super().setdefault(name, codec)
        finally:
            self._changed()

    def pop(self, *args: Any) -> Any:
        try:
            return super().pop(*args)
        finally:
            self._changed()

    def popitem(self) -> tuple[str, Codec]:
        try:
            return super().popitem()
        finally:
            self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()


#: ``'a|b'`` names already resolved to a Pipeline; emptied whenever the registry changes.
_pipelines: dict[str, Codec] = {}

#: Registry of named codecs; extend it with :func:`register`.
codecs: _Registry = _Registry({
    "raw": RawCodec(),
    "json": JSONCodec(),
    "pickle": PickleCodec(),
    "pickle_restricted": RestrictedPickleCodec(),
    "pickle_fickling": FicklingPickleCodec(),
    "binary": BinaryCodec(),
    "yaml": YAMLCodec(),
})

#: the entry point groups codec extensions are found in: Faust's, then detstream's.
EXTENSION_GROUPS = ("faust.codecs", "detstream.codecs")
_extensions_loaded = False


def register(name: str, codec: Codec | type[Codec]) -> None:
    """Make ``codec`` available as ``name`` to :func:`get_codec`, topics and Records.

    Raises:
        InvalidArgument: the name is empty or contains ``|``, or codec is not a Codec.
    """
    if not name or "|" in name:
        raise InvalidArgument(f"codec name must be non-empty and contain no '|', got {name!r}")
    if isinstance(codec, type) and issubclass(codec, Codec):
        codec = codec()
    if not isinstance(codec, Codec):
        raise InvalidArgument(f"register({name!r}, ...) needs a Codec, got {type(codec).__name__}")
    if codec.name == Codec.name or isinstance(codec, Pipeline):  # unnamed: named by its key
        codec.name = name
    codecs[name] = codec


def get_codec(name_or_codec: Codec | str) -> Codec:
    """Resolve a codec name, a ``'a|b'`` pipeline or a Codec instance to a Codec.

    Raises:
        CodecError: a name is not registered (the message lists the known names).
        InvalidArgument: the argument is neither a str nor a Codec.
    """
    if type(name_or_codec) is str:  # the hot path: a plain registered name, no parsing
        codec = codecs.get(name_or_codec)
        if codec is None:
            codec = _pipelines.get(name_or_codec)
        if codec is not None:
            return codec
    elif isinstance(name_or_codec, Codec):
        return name_or_codec
    elif not isinstance(name_or_codec, str):
        raise InvalidArgument(
            f"codec must be a name like 'json' or a Codec, got {type(name_or_codec).__name__}"
        )
    return _parse(name_or_codec)


def _parse(name: str) -> Codec:
    """A name that is not registered as it stands: ``'a | b'``, ``' json '``, or unknown."""
    parts = [part.strip() for part in name.split("|")]
    resolved = [_lookup(part) for part in parts]
    if len(resolved) == 1:
        return resolved[0]
    pipeline = Pipeline(*(stage for codec in resolved for stage in codec.stages))
    _pipelines[name] = pipeline
    return pipeline


def dumps(codec: Codec | str | None, obj: Any) -> Any:
    """Encode ``obj`` with ``codec``; with ``codec=None`` return ``obj`` unchanged (as Faust)."""
    return get_codec(codec).dumps(obj) if codec else obj


def loads(codec: Codec | str | None, data: Any) -> Any:
    """Decode ``data`` with ``codec``; with ``codec=None`` return ``data`` unchanged (as Faust)."""
    return get_codec(codec).loads(data) if codec else data


def to_json_ready(obj: Any) -> Any:
    """Convert ``obj`` recursively into plain JSON types (dict, list, str, int, float, bool, None).

    Used by ``Record.to_representation``. Objects it does not know (and non-UTF-8 bytes) are
    left as they are, so a non-JSON codec such as pickle can still encode them and the json
    codec reports them with a hint.
    """
    if obj is None or isinstance(obj, (str, int, float)):
        return obj
    if isinstance(obj, Mapping):
        return {_json_key(k): to_json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json_ready(v) for v in obj]
    converted = _convert_known(obj)
    return obj if converted is _UNKNOWN else to_json_ready(converted)


def load_extension_codecs() -> list[str]:
    """Register the codecs installed packages declare as entry points; the names added.

    Faust's codec extensions work unchanged: ``entry_points={'faust.codecs':
    ['msgpack = faust_msgpack:msgpack']}`` names a callable (a Codec class or a
    function) that returns the codec. Done once, at the first lookup of a name that
    is not registered (so an extension never replaces a codec registered by name
    before it, the built-in ones included). An entry point that fails to load is
    logged and skipped.
    """
    global _extensions_loaded
    _extensions_loaded = True
    from importlib.metadata import entry_points

    added = []
    for group in EXTENSION_GROUPS:
        for point in sorted(entry_points(group=group), key=lambda p: (p.name, p.value)):
            if point.name in codecs:
                continue
            try:
                made = point.load()()
                register(point.name, made)
            except Exception:
                logger.warning("codec entry point %s = %s (group %s) did not load; skipped",
                               point.name, point.value, group, exc_info=True)
                continue
            added.append(point.name)
    return added


def _lookup(name: str) -> Codec:
    codec = codecs.get(name)
    if codec is None and not _extensions_loaded:
        load_extension_codecs()
        codec = codecs.get(name)
    if codec is None:
        known = ", ".join(sorted(codecs))
        raise CodecError(f"unknown codec {name!r}; known codecs: {known}") from None
    return codec


_UNKNOWN = object()


def _json_default(obj: Any) -> Any:
    """``json.dumps`` hook for non-JSON types; raises CodecError with a hint for unknown ones."""
    converted = _convert_known(obj)
    if converted is not _UNKNOWN:
        return converted
    if isinstance(obj, (bytes, bytearray, memoryview)):
        raise CodecError(
            "codec 'json' cannot encode bytes that are not UTF-8; "
            "hint: base64 them first, or use the 'raw' or 'binary' codec"
        )
    raise CodecError(
        f"codec 'json' cannot encode {type(obj).__qualname__}; hint: use a Record, "
        "give the class a __json__() method returning JSON data, or choose another codec "
        "(e.g. serializer='pickle')"
    )


def _convert_known(obj: Any) -> Any:
    """One step towards JSON for the extra types we support; sets sorted so bytes never vary."""
    if hasattr(obj, "__json__"):
        return obj.__json__()
    if isinstance(obj, (_dt.datetime, _dt.time)):
        text = obj.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text  # as Faust writes UTC
    if isinstance(obj, _dt.date):
        return obj.isoformat()
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (Decimal, UUID)):
        return str(obj)
    if isinstance(obj, (set, frozenset)):
        return _sorted_stably(obj)
    if isinstance(obj, deque):
        return list(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        try:
            return bytes(obj).decode("utf-8")
        except UnicodeDecodeError:
            return _UNKNOWN
    return _UNKNOWN


def _json_key(key: Any) -> Any:
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    converted = _convert_known(key)
    return converted if isinstance(converted, str) else key


def _sorted_stably(items: Any) -> list[Any]:
    try:
        return sorted(items)
    except TypeError:
        # Mixed or unorderable elements: order by their canonical JSON text instead.
        return sorted(items, key=lambda v: _json.dumps(to_json_ready(v), sort_keys=True))


def _cannot_encode(codec: Codec, obj: Any, exc: Exception) -> CodecError:
    """What ``Codec.dumps`` raises when encoding ``obj`` failed with ``exc``."""
    return CodecError(f"codec {codec.name!r} cannot encode {type(obj).__qualname__}: {exc}")


def _want_bytes(obj: Any, codec_name: str) -> bytes:
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    if isinstance(obj, str):
        return obj.encode("utf-8")
    raise CodecError(
        f"codec {codec_name!r} cannot encode {type(obj).__qualname__}: it takes bytes or str; "
        "hint: use the 'json' codec, or convert the value to bytes first"
    )


def _describe(data: Any) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        head = bytes(data[:32])
        more = "..." if len(data) > 32 else ""
        return f"{len(data)} bytes {head!r}{more}"
    return f"a {type(data).__qualname__}"


#: One encoder and decoder for every call: ``json.dumps`` with options builds a new
#: JSONEncoder per call. Same settings, so the same bytes as
#: ``json.dumps(obj, default=_json_default, separators=(",", ":"))`` (Faust's call).
_ENCODER = _json.JSONEncoder(default=_json_default, separators=(",", ":"))


def _c_encoder() -> Callable[[Any, int], Any] | None:
    """``_ENCODER``'s C encoder, made once instead of at every call (None without the C
    accelerator, on other Pythons): ``"".join(chunks(obj, 0))`` is ``_ENCODER.encode(obj)``.

    ``JSONEncoder.encode`` builds a C encoder per call, with a fresh dict of
    the containers it is inside of to detect cycles; that is half its cost on
    a small record. This one is made once without the dict: a cycle then
    recurses until Python's recursion limit, reported as the same error
    (``_CIRCULAR``, by ``_ENCODE`` and ``JSONCodec.encoder()``).
    """
    make = getattr(_json_encoder, "c_make_encoder", None)
    if make is None:
        return None
    chunks: Callable[[Any, int], Any] = make(
        None, _json_default, _json_encoder.encode_basestring_ascii, None, ":", ",",
        False, False, True)
    return chunks


_CHUNKS = _c_encoder()
#: What a cycle (or too deep a nesting) is reported as when the C encoder recursed too far.
_CIRCULAR = "Circular reference detected (or nesting deeper than the recursion limit)"


def _compiled_encode() -> Callable[[Any], str]:
    """``_ENCODER.encode`` through ``_CHUNKS`` (``_ENCODER.encode`` itself without them)."""
    chunks = _CHUNKS
    if chunks is None:
        return _ENCODER.encode

    def encode(obj: Any) -> str:
        try:
            return "".join(chunks(obj, 0))
        except RecursionError:
            raise ValueError(_CIRCULAR) from None

    return encode


_ENCODE = _compiled_encode()
_DECODER = _json.JSONDecoder()


def _fast_decoder() -> tuple[Callable[[bytes], Any] | None, type[Exception] | tuple[()]]:
    """msgspec's JSON decoder when it is installed (``pip install detstream[speedups]``).

    Five times faster than the stdlib's on a small record, and wherever it
    decodes a document it returns what ``json.loads`` returns (integers of
    any size included; tests/test_codecs_fast_json.py holds it to that).
    What it refuses (``NaN``, ``1e400``, lone surrogate escapes, a BOM,
    malformed input) goes to the stdlib decoder, which accepts the first
    three as ``json.loads`` does and words the errors. The encoder stays the
    stdlib's: msgspec writes floats, sets and datetimes as other bytes.
    """
    try:
        import msgspec.json
    except ImportError:
        return None, ()
    return msgspec.json.Decoder().decode, msgspec.DecodeError


_FAST_DECODE, _FAST_DECODE_ERRORS = _fast_decoder()
