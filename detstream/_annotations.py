"""Walking type annotations: introspection, conversion of values, and validation against them.

:mod:`detstream.models` declares Record fields as annotations; this module answers what those
annotations mean for a value: which Record a field holds (:func:`model_in`), how decoded data
becomes the annotated shape (:func:`convert`, or :func:`compile_converter` to decide that once
per field), and whether a value fits (:func:`matches`).
Only the few names :mod:`detstream.models` needs are public.

:mod:`detstream.models` imports this module at load time, so the way back (``Record`` and the
namespace registry) goes through :func:`_models`, which imports it on first use.
"""

from __future__ import annotations

import collections.abc as cabc
import datetime as _dt
import functools
import types
import typing
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID

from detstream.errors import InvalidArgument, ValidationError

if TYPE_CHECKING:
    from detstream.models import ModelOptions, Record

_NONE = type(None)
_UNIONS = (typing.Union, types.UnionType)
_SEQUENCES = {list, cabc.Sequence, cabc.MutableSequence, cabc.Iterable, cabc.Collection}
_SETS = {set: set, frozenset: frozenset, cabc.Set: set, cabc.MutableSet: set}
_MAPPINGS = {dict, cabc.Mapping, cabc.MutableMapping}
_BARE = (list, set, frozenset, tuple, dict)


@functools.cache
def _models() -> types.ModuleType:
    """:mod:`detstream.models`; it imports this module while loading, so not at top level."""
    from detstream import models

    return models


# -- introspection ----------------------------------------------------------------------------
def is_classvar(annotation: Any) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith(("ClassVar", "typing.ClassVar"))
    return annotation is ClassVar or typing.get_origin(annotation) is ClassVar


def resolve_types(cls: type[Record], *, strict: bool) -> bool:
    """Replace string annotations by types; forward references may wait until first use."""
    try:
        hints = typing.get_type_hints(cls, localns={cls.__name__: cls})
    except NameError as exc:
        if strict:
            raise InvalidArgument(
                f"{cls.__name__}: cannot resolve a field annotation ({exc}); "
                "define the referenced class at module level"
            ) from exc
        return False
    for name, descriptor in cls._fields.items():
        if name in hints:
            descriptor.annotate(hints[name])  # ``Secret[str]``: a str, tagged
    return True


def _origin_args(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    origin = typing.get_origin(tp)
    if origin is None and tp in _BARE:
        return tp, ()
    return origin, typing.get_args(tp)


def is_model_type(tp: Any) -> bool:
    """True for a Record subclass (not an instance, not a typing construct).

    Asked per field and per schema, so it avoids ``typing.get_origin``: the classes that
    have an origin are parametrised builtins (``list[int]``), GenericAlias instances that
    before Python 3.11 also pass ``isinstance(tp, type)``, and ``typing.Generic``, which is
    no Record anyway.
    """
    if not isinstance(tp, type) or isinstance(tp, types.GenericAlias):
        return False
    return issubclass(tp, _models().Record)


def model_in(tp: Any) -> type[Record] | None:
    """The Record class of a field typed ``M`` or ``Optional[M]``, else None."""
    if is_model_type(tp):
        return tp
    origin, args = _origin_args(tp)
    members = [a for a in args if a is not _NONE] if origin in _UNIONS else []
    return members[0] if len(members) == 1 and is_model_type(members[0]) else None


def type_name(tp: Any) -> str:
    """Readable annotation for messages: ``int``, ``Optional[int]``, ``List[Point]``."""
    if tp is _NONE:
        return "None"
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return tp.__name__
    origin, args = _origin_args(tp)
    if origin in _UNIONS:
        members = [a for a in args if a is not _NONE]
        if len(members) == 1:
            return f"Optional[{type_name(members[0])}]"
        return " | ".join(type_name(a) for a in args)
    if origin is not None and args:
        base = getattr(tp, "_name", None) or getattr(origin, "__name__", str(origin))
        inner = ", ".join("..." if a is Ellipsis else type_name(a) for a in args)
        return f"{base}[{inner}]"
    return str(tp).replace("typing.", "")


def short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- conversion of decoded data ---------------------------------------------------------------
def convert_field(cls: type[Record], name: str, value: Any, *, models: bool) -> Any:
    try:
        return convert(value, cls._fields[name].type, cls._options, models=models)
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise conversion_error(cls, name, value, exc) from exc


def conversion_error(cls: type[Record], name: str, value: Any, exc: Exception) -> ValidationError:
    """The ValidationError of a field that failed to convert; built only on failure."""
    return ValidationError(
        f"{cls.__name__}.{name}: cannot convert {short_repr(value)} to "
        f"{type_name(cls._fields[name].type)}: {exc}",
        field=name,
    )


def convert(value: Any, tp: Any, opts: ModelOptions, *, models: bool) -> Any:
    """Shape ``value`` after annotation ``tp``.

    ``models`` (decoding, or ``coerce=True``) rebuilds nested Records from dicts and turns
    JSON lists back into sets/tuples; datetimes, Decimals and scalars convert only when the
    model's options ask for it, as in Faust.
    """
    if value is None or tp is Any or isinstance(tp, str):
        return value
    custom = opts.coercions.get(tp) if opts.coercions else None
    if custom is not None and not (isinstance(tp, type) and isinstance(value, tp)):
        return custom(value)
    origin, args = _origin_args(tp)
    if origin in _UNIONS:
        return _convert_union(value, args, opts, models)
    if is_model_type(tp):
        if models and isinstance(value, Mapping):
            return _nested_model(tp, value, opts.polymorphic_fields)
        return value
    if origin in _SEQUENCES or origin in _SETS or origin is tuple:
        return _convert_collection(value, origin, args, opts, models)
    if origin in _MAPPINGS and isinstance(value, Mapping):
        return _convert_mapping(value, args, opts, models)
    return _convert_scalar(value, tp, opts)


def _nested_model(declared: type[Record], data: Mapping[str, Any], polymorphic: bool) -> Record:
    """Build a nested field's Record: the payload's class if it fits the declared one."""
    named = _models()._registered_model(data)
    if named is not None and (polymorphic or issubclass(named, declared)):
        return named._from_mapping(data)
    return declared._from_mapping(data)


def _convert_union(value: Any, args: tuple[Any, ...], opts: ModelOptions, models: bool) -> Any:
    members = [a for a in args if a is not _NONE]
    if len(members) == 1:
        return convert(value, members[0], opts, models=models)
    named = _models()._registered_model(value) if models and isinstance(value, Mapping) else None
    if named is not None and any(is_model_type(m) and issubclass(named, m) for m in members):
        return named._from_mapping(value)
    return value


def _convert_collection(
    value: Any, origin: Any, args: tuple[Any, ...], opts: ModelOptions, models: bool
) -> Any:
    if not isinstance(value, (list, tuple, set, frozenset)):
        return value
    items = list(value)
    if origin is tuple and args and args[-1] is not Ellipsis:
        converted = [convert(v, t, opts, models=models) for v, t in zip(items, args, strict=False)]
        converted += items[len(args):]
    else:
        elem = args[0] if args else Any
        converted = [convert(v, elem, opts, models=models) for v in items]
    if not models:  # keep the caller's container unless an element changed
        unchanged = all(a is b for a, b in zip(converted, items, strict=True))
        return value if unchanged or type(value) not in _BARE else type(value)(converted)
    kind = tuple if origin is tuple else _SETS.get(origin, list)
    return kind(converted)


def _convert_mapping(
    value: Mapping[Any, Any], args: tuple[Any, ...], opts: ModelOptions, models: bool
) -> Any:
    kt, vt = args or (Any, Any)
    pairs = [(convert(k, kt, opts, models=models), convert(v, vt, opts, models=models))
             for k, v in value.items()]
    old = value.items()
    if not models and all(a is k and b is v for (a, b), (k, v) in zip(pairs, old, strict=True)):
        return value  # keep the caller's mapping when nothing changed
    return dict(pairs)


def _is_datetime(tp: Any) -> bool:
    """``tp`` is ``datetime``, also across the simulator's sandbox: it swaps ``datetime.datetime``
    for a subclass while it runs, so an annotation resolved on one side of it is the other class."""
    return isinstance(tp, type) and issubclass(tp, _dt.datetime)


def _is_date(tp: Any) -> bool:
    """``tp`` is ``date`` (not ``datetime``), across the sandbox as ``_is_datetime``."""
    return isinstance(tp, type) and issubclass(tp, _dt.date) and not _is_datetime(tp)


def _convert_scalar(value: Any, tp: Any, opts: ModelOptions) -> Any:
    if _is_datetime(tp) and isinstance(value, str) and (opts.isodates or opts.coerce):
        return (opts.date_parser or _parse_datetime)(value)
    if _is_date(tp) and isinstance(value, str) and (opts.isodates or opts.coerce):
        return _dt.date.fromisoformat(value)
    if tp is Decimal and (opts.decimals or opts.coerce) and isinstance(value, (str, int, float)):
        return value if isinstance(value, bool) else Decimal(str(value))
    if not opts.coerce or type(value) is tp:
        return value
    if tp in (int, float, str) or (tp is UUID and isinstance(value, str)):
        return tp(value)
    return value


def _parse_datetime(text: str) -> _dt.datetime:
    # fromisoformat() before 3.11 does not accept the "Z" suffix.
    return _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)


# -- compiled conversion ----------------------------------------------------------------------
#: A compiled :func:`convert` for one annotation: value -> converted value.
Converter = cabc.Callable[[Any], Any]


def compile_converter(tp: Any, opts: ModelOptions, *, models: bool) -> Converter | None:
    """:func:`convert` for annotation ``tp`` decided once, or None where it keeps every value.

    Records convert each field on every construction, so what the annotation and the
    options imply is worked out here, once per class. Shapes that are not worth a
    specialisation fall back to calling :func:`convert` itself, so every compiled
    converter returns exactly what :func:`convert` returns (the same object where
    :func:`convert` keeps it) and raises what it raises.
    """
    try:
        return _compile(tp, opts, models)
    except Exception:  # an annotation too odd to specialise: let convert() judge at run time
        return _generic(tp, opts, models)


def _generic(tp: Any, opts: ModelOptions, models: bool) -> Converter:
    def run(value: Any) -> Any:
        return convert(value, tp, opts, models=models)

    return run


def _compile(tp: Any, opts: ModelOptions, models: bool) -> Converter | None:
    # Every converter returned passes None through, as convert() does at each level.
    if tp is Any or isinstance(tp, str):
        return None
    if opts.coercions:  # a custom coercion may apply at any depth: no shortcuts
        return _generic(tp, opts, models)
    origin, args = _origin_args(tp)
    if origin in _UNIONS:
        return _compile_union(tp, args, opts, models)
    if is_model_type(tp):
        return _compile_model(tp, opts.polymorphic_fields) if models else None
    if origin in _SEQUENCES or origin in _SETS or origin is tuple:
        return _compile_collection(tp, origin, args, opts, models)
    if origin in _MAPPINGS:
        return _compile_mapping(tp, args, opts, models)
    return _compile_scalar(tp, opts)


def _compile_union(tp: Any, args: tuple[Any, ...], opts: ModelOptions, models: bool) -> Converter | None:
    members = [a for a in args if a is not _NONE]
    if len(members) == 1:
        return _compile(members[0], opts, models)  # None passes through every converter
    return _generic(tp, opts, models) if models else None  # only payloads naming a model change


def _compile_model(declared: type[Record], polymorphic: bool) -> Converter:
    def nested(value: Any) -> Any:
        return _nested_model(declared, value, polymorphic) if isinstance(value, Mapping) else value

    return nested


def _compile_collection(
    tp: Any, origin: Any, args: tuple[Any, ...], opts: ModelOptions, models: bool
) -> Converter | None:
    fixed = origin is tuple and args and args[-1] is not Ellipsis
    elems = args if fixed else (args[0] if args else Any,)
    inner = [_compile(t, opts, models) for t in elems]
    if all(conv is None for conv in inner):
        return _rebuild(tuple if origin is tuple else _SETS.get(origin, list)) if models else None
    if not models or fixed:
        return _generic(tp, opts, models)
    element = inner[0]
    assert element is not None  # not fixed: one element type, and not every converter is None
    return _each(tuple if origin is tuple else _SETS.get(origin, list), element)


def _rebuild(kind: type) -> Converter:
    """Decoded containers become the annotated kind (a new object, as convert() returns)."""

    def rebuild(value: Any) -> Any:
        if not isinstance(value, (list, tuple, set, frozenset)):
            return value
        return kind(value if type(value) is list else list(value))

    return rebuild


def _each(kind: type, elem: Converter) -> Converter:
    def each(value: Any) -> Any:
        if not isinstance(value, (list, tuple, set, frozenset)):
            return value
        return kind([elem(v) for v in value])

    return each


def _compile_mapping(tp: Any, args: tuple[Any, ...], opts: ModelOptions, models: bool) -> Converter | None:
    kt, vt = args or (Any, Any)
    key, val = _compile(kt, opts, models), _compile(vt, opts, models)
    if not models:
        return None if key is None and val is None else _generic(tp, opts, models)
    if key is not None:
        return _generic(tp, opts, models)

    def mapping(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        if val is None:
            return dict(value.items())
        return {k: val(v) for k, v in value.items()}

    return mapping


def _compile_scalar(tp: Any, opts: ModelOptions) -> Converter | None:
    """What :func:`_convert_scalar` does for ``tp`` under these options."""
    if _is_datetime(tp) and (opts.isodates or opts.coerce):
        return _when_str(opts.date_parser or _parse_datetime)
    if _is_date(tp) and (opts.isodates or opts.coerce):
        return _when_str(_dt.date.fromisoformat)
    if tp is Decimal and (opts.decimals or opts.coerce):
        return _to_decimal
    if not opts.coerce:
        return None
    if tp in (int, float, str):
        return _cast(tp)
    return _uuid if tp is UUID else None


def _when_str(parse: Converter) -> Converter:
    def parse_text(value: Any) -> Any:
        return parse(value) if isinstance(value, str) else value

    return parse_text


def _to_decimal(value: Any) -> Any:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _cast(tp: type) -> Converter:
    def cast(value: Any) -> Any:
        return value if value is None or type(value) is tp else tp(value)

    return cast


def _uuid(value: Any) -> Any:
    return UUID(value) if isinstance(value, str) else value


# -- validation -------------------------------------------------------------------------------
def matches(value: Any, tp: Any) -> bool:
    """True if ``value`` fits annotation ``tp``; unknown typing constructs are accepted."""
    if tp is Any or tp is object or isinstance(tp, (str, typing.TypeVar)):
        return True
    origin, args = _origin_args(tp)
    if origin in _UNIONS:
        return any(matches(value, a) for a in args)
    if tp is _NONE:
        return value is None
    if tp is int or tp is float:
        number = int if tp is int else (int, float)
        return isinstance(value, number) and not isinstance(value, bool)
    if origin is typing.Literal:
        return value in args
    if origin in _SEQUENCES or origin in _SETS:
        kind = (origin if origin in (list, set, frozenset)
                else (set, frozenset) if origin in _SETS else (list, tuple))
        return isinstance(value, kind) and all(matches(v, args[0]) for v in value if args)
    if origin is tuple:
        return isinstance(value, tuple) and _tuple_matches(value, args)
    if origin in _MAPPINGS:
        kt, vt = args or (Any, Any)
        return isinstance(value, Mapping) and all(
            matches(k, kt) and matches(v, vt) for k, v in value.items())
    return isinstance(value, tp) if isinstance(tp, type) else True


def _tuple_matches(value: tuple[Any, ...], args: tuple[Any, ...]) -> bool:
    if not args:
        return True
    if args[-1] is Ellipsis:
        return all(matches(v, args[0]) for v in value)
    return len(value) == len(args) and all(matches(v, t) for v, t in zip(value, args, strict=True))
