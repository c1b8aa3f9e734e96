"""Records: typed message schemas that serialize themselves (Faust's ``faust.Record``).

A Record subclass declares fields as annotations. The class gets a :class:`FieldDescriptor`
per field (``Point.x``, used by ``stream.group_by(Point.x)``), a namespace in :data:`registry`
(so payloads carrying ``{"__faust": {"ns": ...}}`` decode to the right class), and
``dumps``/``loads`` through :mod:`detstream.codecs`. Imports only codecs, errors and
:mod:`detstream._annotations` (what field annotations mean for values).

Example::

    class Point(Record, serializer='json'):
        x: int
        y: int = 0

    Point.loads(Point(1).dumps()) == Point(x=1, y=0)
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from detstream import codecs
from detstream._annotations import (
    convert_field,
    is_classvar,
    matches,
    model_in,
    resolve_types,
    short_repr,
    type_name,
)
from detstream.errors import InvalidArgument, ValidationError

__all__ = ["FieldDescriptor", "Model", "ModelOptions", "Record", "registry"]

#: Namespace -> Record class, for polymorphic decoding. Abstract records are not registered.
registry: dict[str, type[Record]] = {}

#: Payload key carrying the namespace of the class that wrote it.
BLESSED_KEY = "__faust"

_MUTABLE_DEFAULTS = (list, dict, set, bytearray)


@dataclasses.dataclass
class ModelOptions:
    """Per-class options, set as class keywords or in an inner ``class Options``.

    Subclasses inherit their base's options except ``namespace`` and ``abstract``.
    ``allow_blessed_key`` and ``lazy_creation`` are accepted for Faust compatibility: blessed
    keys are always honoured and unresolved forward references always resolve on first use.
    """

    serializer: codecs.Codec | str | None = None
    namespace: str | None = None
    include_metadata: bool = True
    isodates: bool = False
    decimals: bool = False
    coerce: bool = False
    coercions: Mapping[Any, Callable[[Any], Any]] = dataclasses.field(default_factory=dict)
    date_parser: Callable[[str], Any] | None = None
    validation: bool = False
    abstract: bool = False
    polymorphic_fields: bool = False
    allow_blessed_key: bool = False
    lazy_creation: bool = False


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(ModelOptions))


class FieldDescriptor:
    """A Record field, found as the class attribute (``Point.x``).

    On an instance the value lives in the instance ``__dict__`` (this is a non-data
    descriptor), so ``p.x`` is a plain attribute read. Nested fields chain:
    ``Order.customer.id.getattr(order)`` returns ``order.customer.id``.
    """

    def __init__(
        self,
        *,
        field: str,
        type: Any,
        model: type[Record],
        required: bool = True,
        default: Any = None,
        parent: FieldDescriptor | None = None,
    ) -> None:
        #: Attribute name on the model.
        self.field = field
        #: Annotated type (a string until a forward reference resolves).
        self.type = type
        #: The Record class that declares the field (for nested fields, the nested model).
        self.model = model
        #: False when the field has a default.
        self.required = required
        #: Default value (None when required).
        self.default = default
        #: The enclosing field for nested access (``Order.customer`` for ``Order.customer.id``).
        self.parent = parent

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        try:
            return instance.__dict__[self.field]
        except KeyError:
            raise AttributeError(self.field) from None

    def __getattr__(self, name: str) -> FieldDescriptor:
        # Only reached for names that are not descriptor attributes: nested field lookup.
        if name.startswith("_"):
            raise AttributeError(name)
        tp = self.__dict__.get("type")
        if isinstance(tp, str) and resolve_types(self.model, strict=False):
            tp = self.model._fields[self.field].type  # self may be a copy made for nesting
        nested = model_in(tp)
        child = nested._fields.get(name) if nested is not None else None
        if child is None:
            raise AttributeError(f"{self.ident} has no field {name!r}")
        return FieldDescriptor(
            field=child.field, type=child.type, model=child.model,
            required=child.required, default=child.default, parent=self,
        )

    def getattr(self, obj: Any) -> Any:
        """Return this field's value from ``obj``, following parents for nested fields."""
        for node in self._path():
            obj = getattr(obj, node.field)
        return obj

    @property
    def ident(self) -> str:
        """``Model.field`` (``Order.customer.id`` when nested); names repartition topics."""
        path = self._path()
        return f"{path[0].model.__name__}." + ".".join(node.field for node in path)

    def _path(self) -> list[FieldDescriptor]:
        nodes: list[FieldDescriptor] = []
        node: FieldDescriptor | None = self
        while node is not None:
            nodes.append(node)
            node = node.parent
        return nodes[::-1]

    def __repr__(self) -> str:
        default = "" if self.required else f" = {self.default!r}"
        return f"<FieldDescriptor: {self.ident}: {type_name(self.type)}{default}>"


class Record:
    """Base class for message schemas; see the module docstring.

    Semantics chosen to match Faust: a field annotated ``Optional[X]`` without a default is
    still required; ``__eq__`` compares type and field values; ``__hash__`` hashes the field
    values, so it raises TypeError if one of them is unhashable (a list, say). Mutable
    defaults (list/dict/set) are copied per instance.
    """

    __is_model__: ClassVar[bool] = True
    _options: ClassVar[ModelOptions] = ModelOptions(abstract=True)
    _fields: ClassVar[dict[str, FieldDescriptor]] = {}
    _resolved: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__()
        cls._options = _build_options(cls, kwargs)
        cls._fields = _collect_fields(cls)
        for name, descriptor in cls._fields.items():
            setattr(cls, name, descriptor)
        cls._resolved = resolve_types(cls, strict=False)
        if not cls._options.abstract:
            registry[cls._options.namespace] = cls  # type: ignore[index]

    def __init__(self, *args: Any, __strict__: bool = True, **kwargs: Any) -> None:
        cls = type(self)
        if not cls._resolved:
            cls._resolved = resolve_types(cls, strict=True)
        values = _bind(cls, args, kwargs, strict=__strict__)
        opts = cls._options
        if opts.coerce or opts.isodates or opts.decimals or opts.coercions or not __strict__:
            values = {
                name: convert_field(cls, name, value, models=opts.coerce or not __strict__)
                for name, value in values.items()
            }
        self.__dict__.update(values)
        if opts.validation:
            self.validate_or_raise()
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    # -- representation -----------------------------------------------------------------
    def asdict(self) -> dict[str, Any]:
        """Field name -> value, shallow (nested Records stay Records), no metadata."""
        return {name: self.__dict__[name] for name in self._fields}

    def to_representation(self) -> dict[str, Any]:
        """JSON-ready dict of the fields (nested Records converted), plus ``__faust.ns``."""
        payload = {name: codecs.to_json_ready(value) for name, value in self.asdict().items()}
        if self._options.include_metadata:
            payload[BLESSED_KEY] = {"ns": self._options.namespace}
        return payload

    def __json__(self) -> dict[str, Any]:
        return self.to_representation()

    def dumps(self, *, serializer: codecs.Codec | str | None = None) -> bytes:
        """Encode with ``serializer``, else the model's ``serializer`` option, else json."""
        codec = serializer or self._options.serializer or "json"
        return codecs.get_codec(codec).dumps(self.to_representation())

    @classmethod
    def loads(
        cls,
        data: bytes,
        *,
        default_serializer: codecs.Codec | str | None = None,
        serializer: codecs.Codec | str | None = None,
    ) -> Record:
        """Decode bytes written by :meth:`dumps` (codec: serializer, option, default, json)."""
        codec = serializer or cls._options.serializer or default_serializer or "json"
        return cls.from_data(codecs.get_codec(codec).loads(data))

    @classmethod
    def from_data(cls, data: Any, *, preferred_type: type[Record] | None = None) -> Record:
        """Build a Record from decoded data, nested Records and containers included.

        The class is picked by the payload's ``__faust.ns`` when that names a registered
        model; otherwise ``preferred_type`` or ``cls`` (which must not be abstract). Unknown
        keys are ignored, so a consumer keeps working when producers add fields.
        """
        if isinstance(data, Record):
            return data
        if not isinstance(data, Mapping):
            raise InvalidArgument(
                f"{cls.__name__}.from_data() needs a mapping, got {type(data).__name__}"
            )
        target = _registered_model(data) or preferred_type or cls
        if target._options.abstract:
            raise InvalidArgument(
                f"cannot build abstract {target.__name__} from data without a known "
                f"{BLESSED_KEY}.ns; pass preferred_type= or include the namespace"
            )
        return target._from_mapping(data)

    @classmethod
    def _from_mapping(cls, data: Mapping[str, Any]) -> Record:
        fields = {k: v for k, v in data.items() if k != BLESSED_KEY}
        return cls(**fields, __strict__=False)

    def derive(self, *objects: Record | Mapping[str, Any], **fields: Any) -> Record:
        """Copy with changes: later objects and then ``fields`` override this one's values."""
        merged = self.asdict()
        for obj in objects:
            merged.update(obj.asdict() if isinstance(obj, Record) else obj)
        merged.update(fields)
        return type(self)(**merged)

    # -- validation ---------------------------------------------------------------------
    def validate(self) -> list[ValidationError]:
        """Every field whose value does not match its annotation, as ValidationErrors."""
        cls = type(self)
        errors = []
        for name, descriptor in cls._fields.items():
            value = self.__dict__.get(name)
            if not matches(value, descriptor.type):
                reason = (
                    f"{cls.__name__}.{name}: expected {type_name(descriptor.type)}, "
                    f"got {type(value).__name__} ({short_repr(value)})"
                )
                errors.append(ValidationError(reason, field=name))
        return errors

    def is_valid(self) -> bool:
        return not self.validate()

    def validate_or_raise(self) -> None:
        """Raise the first ValidationError, if any."""
        errors = self.validate()
        if errors:
            raise errors[0]

    # -- dunder -------------------------------------------------------------------------
    def _values(self) -> tuple[Any, ...]:
        return tuple(self.__dict__.get(name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self._values()))

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={value!r}" for name, value in self.asdict().items())
        return f"{type(self).__name__}({body})"


#: Faust exposes the abstract base as ``Model``; here it is Record itself.
Model = Record


def _build_options(cls: type[Record], kwargs: dict[str, Any]) -> ModelOptions:
    inner = getattr(cls, "Options", None)
    given = {}
    if isinstance(inner, type) and "Options" in cls.__dict__:
        given.update({k: v for k, v in vars(inner).items() if not k.startswith("_")})
    given.update(kwargs)
    unknown = sorted(set(given) - _OPTION_NAMES)
    if unknown:
        raise InvalidArgument(
            f"{cls.__name__}: unknown Record option(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_OPTION_NAMES))}"
        )
    base = next(k._options for k in cls.__mro__[1:] if issubclass(k, Record))
    options = dataclasses.replace(base, **{"namespace": None, "abstract": False, **given})
    if options.namespace is None:
        options.namespace = f"{cls.__module__}.{cls.__qualname__}"
    return options


def _collect_fields(cls: type[Record]) -> dict[str, FieldDescriptor]:
    """Fields in declaration order, bases first; a subclass may override type or default."""
    fields: dict[str, FieldDescriptor] = {}
    for klass in reversed(cls.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, Record)) or klass is Record:
            continue
        for name, annotation in klass.__dict__.get("__annotations__", {}).items():
            if name.startswith("_") or is_classvar(annotation):
                continue
            if hasattr(Record, name):
                raise InvalidArgument(
                    f"{cls.__name__}.{name}: field name clashes with Record.{name}; rename it"
                )
            required, default = _default_of(klass, name)
            fields[name] = FieldDescriptor(
                field=name, type=annotation, model=cls, required=required, default=default
            )
    _check_field_order(cls, fields)
    return fields


def _default_of(klass: type, name: str) -> tuple[bool, Any]:
    if name not in klass.__dict__:
        return True, None
    value = klass.__dict__[name]
    if isinstance(value, FieldDescriptor):
        return value.required, value.default
    return False, value


def _check_field_order(cls: type, fields: dict[str, FieldDescriptor]) -> None:
    # Positional construction needs required fields first (as dataclasses and Faust).
    seen_default = None
    for name, descriptor in fields.items():
        if not descriptor.required:
            seen_default = name
        elif seen_default is not None:
            raise InvalidArgument(
                f"{cls.__name__}: required field {name!r} follows field {seen_default!r} "
                "that has a default; give it a default or move it up"
            )


def _bind(
    cls: type[Record], args: tuple[Any, ...], kwargs: dict[str, Any], *, strict: bool
) -> dict[str, Any]:
    """Map constructor arguments onto fields, with Python's own TypeError wording."""
    fields = cls._fields
    if len(args) > len(fields):
        raise TypeError(
            f"{cls.__name__}() takes {len(fields)} positional arguments but {len(args)} were given"
        )
    values = dict(zip(fields, args, strict=False))
    for key, value in kwargs.items():
        if key == BLESSED_KEY:
            continue
        if key not in fields:
            if strict:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {key!r}")
            continue
        if key in values:
            raise TypeError(f"{cls.__name__}() got multiple values for argument {key!r}")
        values[key] = value
    missing = [name for name, d in fields.items() if d.required and name not in values]
    if missing:
        names = ", ".join(repr(name) for name in missing)
        raise TypeError(f"{cls.__name__}() missing required field(s): {names}")
    return {name: _value_or_default(values, name, fields[name]) for name in fields}


def _value_or_default(values: dict[str, Any], name: str, descriptor: FieldDescriptor) -> Any:
    if name in values:
        return values[name]
    default = descriptor.default
    return copy.copy(default) if isinstance(default, _MUTABLE_DEFAULTS) else default


def _registered_model(data: Mapping[str, Any]) -> type[Record] | None:
    meta = data.get(BLESSED_KEY)
    ns = meta.get("ns") if isinstance(meta, Mapping) else None
    return registry.get(ns) if isinstance(ns, str) else None
