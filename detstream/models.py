"""Records: typed message schemas that serialize themselves (Faust's ``faust.Record``).

A Record subclass declares fields as annotations. The class gets a :class:`FieldDescriptor`
per field (``Point.x``, used by ``stream.group_by(Point.x)``), a namespace in :data:`registry`
(so payloads carrying ``{"__faust": {"ns": ...}}`` decode to the right class), and
``dumps``/``loads`` through :mod:`detstream.codecs`. Imports only codecs, errors,
:mod:`detstream.tags` and :mod:`detstream._annotations` (what field annotations mean for values).

A field's name on the wire may differ from its attribute (Faust's ``input_name`` and
``output_name``: ``from_: str = StringField(input_name="from")`` reads and writes
``"from"``), a field may be left out of what is written (``exclude=True``), and a value
may be tagged (``Secret[str]``, :mod:`detstream.tags`): written as itself, kept out of
strings and logs in memory.

Example::

    class Point(Record, serializer='json'):
        x: int
        y: int = 0

    Point.loads(Point(1).dumps()) == Point(x=1, y=0)
"""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import keyword
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any, ClassVar, cast

from detstream import codecs
from detstream._annotations import (
    Converter,
    compile_converter,
    conversion_error,
    is_classvar,
    matches,
    model_in,
    resolve_types,
    short_repr,
    type_name,
)
from detstream.errors import InvalidArgument, ValidationError
from detstream.tags import check_tag, tag_of, untagged

__all__ = [
    "FieldDescriptor", "Model", "ModelOptions", "Record", "current_registry", "maybe_model",
    "registry", "reset_registry", "use_registry",
]

class _ModelRegistry(MutableMapping[str, "type[Record]"]):
    """Namespace -> Record class, for polymorphic decoding (Faust's ``registry``).

    Abstract records are not registered. The mapping is the running
    process's: the one ``use_registry`` set in this context, else the
    process-wide dict. A real worker is a process with one of each class;
    the simulator runs several worker incarnations in one interpreter, each
    importing the project afresh, and gives each its own registry, so a
    payload decodes to the class of the worker that reads it (with one
    shared registry, ``isinstance(value, Word)`` failed in every worker but
    the last one started, and Record keys of two incarnations never compared
    equal). Hot paths read ``current_registry()`` directly.
    """

    def __getitem__(self, namespace: str) -> type[Record]:
        return _registry_var.get()[namespace]

    def __setitem__(self, namespace: str, cls: type[Record]) -> None:
        _registry_var.get()[namespace] = cls

    def __delitem__(self, namespace: str) -> None:
        del _registry_var.get()[namespace]

    def __iter__(self) -> Iterator[str]:
        return iter(_registry_var.get())

    def __len__(self) -> int:
        return len(_registry_var.get())

    def __contains__(self, namespace: object) -> bool:
        return namespace in _registry_var.get()

    def __repr__(self) -> str:
        return f"<model registry {sorted(_registry_var.get())}>"


_process_registry: dict[str, type[Record]] = {}
_registry_var: contextvars.ContextVar[dict[str, type[Record]]] = contextvars.ContextVar(
    "detstream_model_registry", default=_process_registry
)

#: Namespace -> Record class of the running process (see ``_ModelRegistry``).
registry: MutableMapping[str, type[Record]] = _ModelRegistry()

#: ``current_registry()``: the dict behind ``registry`` in this context.
current_registry: Callable[[], dict[str, type[Record]]] = _registry_var.get


def use_registry(
    classes: dict[str, type[Record]],
) -> contextvars.Token[dict[str, type[Record]]]:
    """Make ``classes`` the registry of this context (a simulated process); reset with the token."""
    return _registry_var.set(classes)


def reset_registry(token: contextvars.Token[dict[str, type[Record]]]) -> None:
    _registry_var.reset(token)

#: Payload key carrying the namespace of the class that wrote it.
BLESSED_KEY = "__faust"

_MUTABLE_DEFAULTS = (list, dict, set, bytearray)

#: ``FieldDescriptor(default=...)`` not given (None is a default like any other).
_NO_DEFAULT: Any = object()


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

    # -- the class's fields, as Faust indexes them (computed, not options) ----------------
    #: field name -> its type (annotation), in declaration order, bases first.
    fields: Mapping[str, Any] = dataclasses.field(default_factory=dict, init=False)
    #: the field names.
    fieldset: frozenset[str] = dataclasses.field(default=frozenset(), init=False)
    #: position -> field name, in declaration order.
    fieldpos: Mapping[int, str] = dataclasses.field(default_factory=dict, init=False)
    #: the fields that have a default.
    optionalset: frozenset[str] = dataclasses.field(default=frozenset(), init=False)
    #: field name -> default, for the fields that have one.
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict, init=False)
    #: field name -> its FieldDescriptor.
    descriptors: Mapping[str, Any] = dataclasses.field(default_factory=dict, init=False)

    # -- what the fields' tags make of the class (Faust's indices; computed, not options) --
    #: fields tagged (or holding Records with tagged fields) by kind of tag.
    secret_fields: frozenset[str] = dataclasses.field(default=frozenset(), init=False)
    sensitive_fields: frozenset[str] = dataclasses.field(default=frozenset(), init=False)
    personal_fields: frozenset[str] = dataclasses.field(default=frozenset(), init=False)
    tagged_fields: frozenset[str] = dataclasses.field(default=frozenset(), init=False)

    @property
    def has_secret_fields(self) -> bool:
        return bool(self.secret_fields)

    @property
    def has_sensitive_fields(self) -> bool:
        return bool(self.sensitive_fields)

    @property
    def has_personal_fields(self) -> bool:
        return bool(self.personal_fields)

    @property
    def has_tagged_fields(self) -> bool:
        return bool(self.tagged_fields)


_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(ModelOptions) if f.init)


class FieldDescriptor:
    """A Record field, found as the class attribute (``Point.x``).

    On an instance the value lives in the instance ``__dict__`` (this is a non-data
    descriptor), so ``p.x`` is a plain attribute read. Nested fields chain:
    ``Order.customer.id.getattr(order)`` returns ``order.customer.id``.
    """

    def __init__(
        self,
        *,
        field: str | None = None,
        type: Any = None,
        model: type[Record] | None = None,
        required: bool | None = None,
        default: Any = _NO_DEFAULT,
        parent: FieldDescriptor | None = None,
        coerce: bool | None = None,
        date_parser: Callable[[str], Any] | None = None,
        input_name: str | None = None,
        output_name: str | None = None,
        exclude: bool | None = None,
        tag: Any = None,
        **options: Any,
    ) -> None:
        where = f"field {field!r}" if field else self.__class__.__name__
        _check_wire_name(input_name, "input_name", where)
        _check_wire_name(output_name, "output_name", where)
        if exclude is not None and not isinstance(exclude, bool):
            raise InvalidArgument(f"{where}: exclude={exclude!r} must be True or False")
        if tag is not None:
            check_tag(tag, where=where)
        # Faust's usage ``name: str = StringField(max_length=10)`` builds a descriptor with no
        # field, type or model yet: the Record class fills them in when it collects its
        # fields (``clone``). A default makes the field optional unless ``required=True``.
        given_default = default is not _NO_DEFAULT
        # field and model are None only on a descriptor no Record has taken yet; every
        # field of a Record has both, which is what the rest of the code relies on.
        #: Attribute name on the model.
        self.field: str = cast(str, field)
        #: Annotated type (a string until a forward reference resolves).
        self.type = type
        #: The Record class that declares the field (for nested fields, the nested model).
        self.model: type[Record] = cast("type[Record]", model)
        #: False when the field has a default.
        self.required = (not given_default) if required is None else required
        #: Default value (None when required).
        self.default = default if given_default else None
        #: The enclosing field for nested access (``Order.customer`` for ``Order.customer.id``).
        self.parent = parent
        #: Coerce values to the field's type; None: the model's ``coerce`` option decides.
        self.coerce = coerce
        #: Parser of datetime strings (DatetimeField); None: the model's ``date_parser``.
        self.date_parser = date_parser
        self._input_name = input_name
        self._output_name = output_name
        #: Left out of ``asdict()``, ``to_representation()`` and ``dumps()``.
        self.exclude = bool(exclude)
        #: The value's tag class (``Secret``, ``Sensitive[str]``, ...), or None.
        self.tag = tag
        #: A field class's own keyword arguments (Faust's ``options``: ``choices=`` of a
        #: custom ``ChoiceField(FieldDescriptor[str])`` passed on to ``super().__init__``).
        self.options = options

    def __class_getitem__(cls, item: Any) -> type[FieldDescriptor]:
        """``FieldDescriptor[str]``, as Faust's generic field classes are written: the class."""
        return cls

    @property
    def input_name(self) -> str:
        """The key this field is read from in decoded data (default: the attribute name)."""
        return self._input_name or self.field

    @property
    def output_name(self) -> str:
        """The key this field is written under (default: ``input_name``)."""
        return self._output_name or self.input_name

    def annotate(self, annotation: Any) -> None:
        """Take the field's (resolved) annotation; ``Secret[str]`` means str, tagged Secret."""
        inner, tag = tag_of(annotation)
        self.type = inner
        if tag is not None:
            self.tag = tag

    def tagger(self) -> Converter | None:
        """A converter wrapping each value in the field's tag (None without a tag).

        None stays None, and a value already carrying this tag is kept (a tagged value
        copied from another Record, as ``derive`` does).
        """
        tag, name = self.tag, self.field
        if tag is None:
            return None
        kind = typing.get_origin(tag) or tag

        def wrap(value: Any) -> Any:
            if value is None or type(value) is kind:
                return value
            return tag(value, field=name)

        return wrap

    def clone(self, **changes: Any) -> FieldDescriptor:
        """A copy of this descriptor (same class and options) with ``changes`` applied.

        How a Record turns the descriptor written in its class body into its own field,
        and how nested access (``Order.customer.id``) chains a parent onto a field.
        """
        new = copy.copy(self)
        new.__dict__.update(changes)
        return new

    # -- what a field class adds (none of it for a plain field) --------------------------
    def validate(self, value: Any) -> Iterator[ValidationError]:
        """The ValidationErrors of ``value`` for this field's own options (none here).

        Called by ``Record.validate()`` for a value that already matches the annotation.
        """
        return iter(())

    def preparer(self, options: ModelOptions) -> Converter | None:
        """A converter applied to this field's value on every construction, or None.

        Field classes override it to coerce (``DecimalField``: Decimal) or trim; a plain
        field returns None, so a Record without field classes compiles no extra step.
        """
        return None

    def error(self, reason: str) -> ValidationError:
        """A ValidationError naming this field: ``Model.field: reason``."""
        owner = self.model.__name__ if self.model is not None else "?"
        return ValidationError(f"{owner}.{self.field}: {reason}", field=self.field)

    def validation_error(self, reason: str) -> ValidationError:
        """Faust's name: a ValidationError of ``reason`` (which names the field itself),
        for a field class's ``validate`` to yield."""
        return ValidationError(f"{reason} {self!r}", field=self.field)

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
        if isinstance(tp, str) and _resolve(self.model, strict=False):
            tp = self.model._fields[self.field].type  # self may be a copy made for nesting
        nested = model_in(tp)
        child = nested._fields.get(name) if nested is not None else None
        if child is None:
            raise AttributeError(f"{self.ident} has no field {name!r}")
        return child.clone(parent=self)

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
        if self.model is None:  # written in a class body, not yet a Record's field
            return f"<{type(self).__name__}{default}>"
        return f"<{type(self).__name__}: {self.ident}: {type_name(self.type)}{default}>"


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
    #: Construction compiled for this very class on first use (see :class:`_Plan`).
    _plan: ClassVar[_Plan | None] = None
    #: ``to_representation`` compiled for this very class on first use.
    _represent: ClassVar[Callable[[dict[str, Any]], dict[str, Any]] | None] = None
    #: (attribute, output name) of the fields written by ``asdict``, in order.
    _wire_out: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: input name -> attribute of the fields read under another name than their own.
    _wire_in: ClassVar[dict[str, str]] = {}
    #: the fields in the order positional arguments fill them: required ones first (Faust's).
    _positional: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__()
        cls._options = _build_options(cls, kwargs)
        cls._fields = _collect_fields(cls)
        for name, descriptor in cls._fields.items():
            setattr(cls, name, descriptor)
        cls._wire_out, cls._wire_in = _wire_names(cls)
        cls._positional = _positional_order(cls._fields)
        _index_fields(cls)
        cls._resolved = _resolve(cls, strict=False)
        cls._plan = None  # each class compiles its own, never its base's
        cls._represent = None
        if not cls._options.abstract:
            namespace = cls._options.namespace
            assert namespace is not None  # _build_options names every subclass
            current_registry()[namespace] = cls

    def __init__(self, *args: Any, __strict__: bool = True, **kwargs: Any) -> None:
        cls = type(self)
        plan = cls._plan or _Plan.of(cls)
        try:
            values = plan.bind(__strict__, *args, **kwargs)
        except TypeError:  # a wrong call: the generic binder words the error as Python would
            values = _bind(cls, args, kwargs, strict=__strict__)
        # ``_finish(self, plan, values, __strict__)``, inline (once per record constructed)
        converters = plan.strict if __strict__ else plan.loose
        if converters:
            _convert(cls, values, converters)
        self.__dict__.update(values)
        if plan.validation:
            self.validate_or_raise()
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    # -- representation -----------------------------------------------------------------
    def asdict(self) -> dict[str, Any]:
        """Output name -> value, shallow (nested Records stay Records), no metadata.

        As Faust: the keys are the fields' ``output_name`` (the attribute name unless
        renamed), and ``exclude=True`` fields are left out.
        """
        values = self.__dict__
        return {output: values[name] for name, output in self._wire_out}

    def _field_values(self) -> dict[str, Any]:
        """Attribute name -> value of every field (what the constructor takes)."""
        values = self.__dict__
        return {name: values[name] for name in self._fields}

    def to_representation(self) -> dict[str, Any]:
        """JSON-ready dict of the fields (nested Records converted), plus ``__faust.ns``."""
        cls = type(self)
        if cls.asdict is Record.asdict:  # the fields as stored: read them without asdict()
            payload = (cls._represent or _compile_represent(cls))(self.__dict__)
        else:
            payload = {name: codecs.to_json_ready(value) for name, value in self.asdict().items()}
        opts = self._options
        if opts.include_metadata:
            payload[BLESSED_KEY] = {"ns": opts.namespace}
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
        if type(data) is dict:  # decoded (the consumer's hot path): the plain case inline
            record = _plain_decode(cls, data, preferred_type)
            if record is not None:
                return record
        elif isinstance(data, Record):
            return data
        if type(data) is not dict and not isinstance(data, Mapping):
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
        """``cls(**fields, __strict__=False)`` for the fields in ``data``.

        Every decoded Record comes through here; when constructing ``cls`` involves nothing
        but Record's own ``__init__``, the record is built without the keyword dict and the
        calls in between.
        """
        if cls._wire_in:
            data = _from_wire_names(cls, data)
        if type(data) is dict and _constructs_plainly(cls):
            plan = cls._plan or _Plan.of(cls)
            try:
                values = plan.bind(False, **data)
            except TypeError:
                pass  # the generic call below raises it, worded by Python
            else:
                record = _object_new(cls)
                _finish(record, plan, values, False)
                return record
        fields = {k: v for k, v in data.items() if k != BLESSED_KEY}
        return cls(**fields, __strict__=False)

    def derive(self, *objects: Record | Mapping[str, Any], **fields: Any) -> Record:
        """Copy with changes: later objects and then ``fields`` override this one's values."""
        merged = self._field_values()
        for obj in objects:
            merged.update(obj._field_values() if isinstance(obj, Record) else obj)
        merged.update(fields)
        return type(self)(**merged)

    # -- validation ---------------------------------------------------------------------
    def validate(self) -> list[ValidationError]:
        """Every field whose value does not match its annotation or its field class's
        options (``StringField(max_length=10)``), as ValidationErrors."""
        cls = type(self)
        errors = []
        for name, descriptor in cls._fields.items():
            value = untagged(self.__dict__.get(name))
            if not matches(value, descriptor.type):
                reason = (
                    f"{cls.__name__}.{name}: expected {type_name(descriptor.type)}, "
                    f"got {type(value).__name__} ({short_repr(value)})"
                )
                errors.append(ValidationError(reason, field=name))
            elif value is not None:  # a field class's own checks, on a value of its type
                errors.extend(descriptor.validate(value))
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
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self).__qualname__, self._values()))

    def __repr__(self) -> str:
        # Faust's form: logs and traces of a migrated project read the same.
        body = ", ".join(f"{name}={value!r}" for name, value in self._field_values().items())
        return f"<{type(self).__name__}: {body}>"


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
        options.namespace = f"{_canonical_module(cls.__module__)}.{cls.__qualname__}"
    return options


def _canonical_module(module: str) -> str:
    """``module``, with ``__main__`` named as its file would be imported (Faust's ``canoname``).

    A script run as ``python proj.py worker`` writes ``{"__faust": {"ns": "proj.Point"}}``
    as Faust does, so a worker that imports ``proj`` reads it as its own ``Point``. Within
    packages (``__init__.py`` beside it) the package names lead: ``pkg.proj.Point``.
    """
    if module != "__main__":
        return module
    filename = getattr(sys.modules.get("__main__"), "__file__", None)
    if not filename or filename.startswith("<"):  # python -c, python -, a REPL
        return module
    path = Path(filename).absolute()
    parts = [path.stem]
    node = path.parent
    while (node / "__init__.py").exists() and node != node.parent:
        parts.insert(0, node.name)
        node = node.parent
    return ".".join(parts)


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
            declared = klass.__dict__.get(name)
            if isinstance(declared, FieldDescriptor):  # a field class, or a base's field
                fields[name] = declared.clone(field=name, type=annotation, model=cls)
            else:
                required, default = _default_of(klass, name)
                fields[name] = FieldDescriptor(
                    field=name, type=annotation, model=cls, required=required, default=default
                )
    _take_overridden_defaults(cls, fields)
    _check_field_order(cls)
    return fields


def _take_overridden_defaults(cls: type[Record], fields: dict[str, FieldDescriptor]) -> None:
    """A subclass setting a base's field without annotating it gives it a default (Faust's).

    ``class ImageAsset(Asset): type = 'image'`` makes Asset's ``type`` default to 'image'.
    """
    own = cls.__dict__.get("__annotations__", {})
    for name, descriptor in fields.items():
        if name in own or name not in cls.__dict__:
            continue
        value = cls.__dict__[name]
        if isinstance(value, FieldDescriptor):
            fields[name] = value.clone(field=name, type=descriptor.type, model=cls)
        elif not isinstance(value, _NOT_DEFAULTS):
            fields[name] = descriptor.clone(required=False, default=value)


#: class attributes that are not a field's default: the class's methods and properties.
_NOT_DEFAULTS = (types.FunctionType, property, classmethod, staticmethod)


def _positional_order(fields: dict[str, FieldDescriptor]) -> tuple[str, ...]:
    """Required fields then optional ones, each in declaration order (Faust's ``__init__``)."""
    return (tuple(name for name, d in fields.items() if d.required)
            + tuple(name for name, d in fields.items() if not d.required))


def _index_fields(cls: type[Record]) -> None:
    """Faust's per-class indices in ``_options`` (``fields``, ``fieldpos``, ``defaults``...);
    made again once forward references resolve."""
    fields = cls._fields
    opts = cls._options
    opts.fields = {name: d.type for name, d in fields.items()}
    opts.fieldset = frozenset(fields)
    opts.fieldpos = dict(enumerate(fields))
    opts.defaults = {name: d.default for name, d in fields.items() if not d.required}
    opts.optionalset = frozenset(opts.defaults)
    opts.descriptors = dict(fields)


def _check_wire_name(name: Any, option: str, where: str) -> None:
    if name is None:
        return
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"{where}: {option}={name!r} must be a non-empty str")
    if name == BLESSED_KEY:
        raise InvalidArgument(
            f"{where}: {option}={name!r} is the key Records write their namespace under; "
            "choose another name"
        )


def _wire_names(cls: type[Record]) -> tuple[tuple[tuple[str, str], ...], dict[str, str]]:
    """(attribute, output name) of the written fields, and input name -> attribute of the
    renamed ones; two fields may not share an input name, nor two written fields an output
    name (one of them would be lost on the wire)."""
    fields = cls._fields
    _unique_names(cls, "input_name", [(d.input_name, n) for n, d in fields.items()])
    written = [(d.output_name, n) for n, d in fields.items() if not d.exclude]
    _unique_names(cls, "output_name", written)
    wire_out = tuple((name, output) for output, name in written)
    wire_in = {d.input_name: n for n, d in fields.items() if d.input_name != n}
    return wire_out, wire_in


def _unique_names(cls: type, option: str, pairs: list[tuple[str, str]]) -> None:
    seen: dict[str, str] = {}
    for wire, name in pairs:
        if wire in seen:
            raise InvalidArgument(
                f"{cls.__name__}: fields {seen[wire]!r} and {name!r} both have {option} "
                f"{wire!r}; give one of them another {option}"
            )
        seen[wire] = name


def _from_wire_names(cls: type[Record], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with renamed fields under their attribute names (Faust's input translation).

    A renamed field is read from its ``input_name`` only: a key equal to its attribute
    name is not its value on the wire, and is ignored like any unknown key.
    """
    wire_in = cls._wire_in
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = wire_in.get(key)
        if name is not None:
            out[name] = value
        elif key not in cls._fields or cls._fields[key].input_name == key:
            out[key] = value
    return out


def _resolve(cls: type[Record], *, strict: bool) -> bool:
    """Resolve ``cls``'s annotations (tags unwrapped), then index its tagged fields."""
    resolved = resolve_types(cls, strict=strict)
    if resolved:
        _index_tags(cls)
        _index_fields(cls)
    return resolved


def _index_tags(cls: type[Record]) -> None:
    """Which fields are secret, sensitive, personal or tagged at all (Faust's ``_options``
    indices); a field holding a Record with such fields counts as one too."""
    kinds: dict[str, set[str]] = {"secret": set(), "sensitive": set(), "personal": set(),
                                  "tagged": set()}
    for name, descriptor in cls._fields.items():
        tag = typing.get_origin(descriptor.tag) or descriptor.tag
        if tag is not None:
            kinds["tagged"].add(name)
            for kind in ("secret", "sensitive", "personal"):
                if getattr(tag, f"is_{kind}", False):
                    kinds[kind].add(name)
        for related in _models_in(descriptor.type):
            if related is cls:
                continue
            for kind, names in kinds.items():
                if getattr(related._options, f"{kind}_fields"):
                    names.add(name)
    opts = cls._options
    opts.secret_fields = frozenset(kinds["secret"])
    opts.sensitive_fields = frozenset(kinds["sensitive"])
    opts.personal_fields = frozenset(kinds["personal"])
    opts.tagged_fields = frozenset(kinds["tagged"])


def _models_in(tp: Any) -> list[type[Record]]:
    """The Record classes an annotation mentions (``List[Bar]``, ``Optional[Foo]``, ...)."""
    if isinstance(tp, type) and issubclass(tp, Record):
        return [tp]
    return [model for arg in typing.get_args(tp) for model in _models_in(arg)]


def _default_of(klass: type, name: str) -> tuple[bool, Any]:
    if name not in klass.__dict__:
        return True, None
    return False, klass.__dict__[name]


def _check_field_order(cls: type) -> None:
    """In one class body, a required field may not follow one with a default (as dataclasses
    and Faust). A subclass may add required fields after a base's defaults: positional
    arguments fill the required fields first (``_positional_order``), as in Faust."""
    seen_default = None
    for name, annotation in cls.__dict__.get("__annotations__", {}).items():
        if name.startswith("_") or is_classvar(annotation):
            continue
        declared = cls.__dict__.get(name, _NO_DEFAULT)
        has_default = (declared is not _NO_DEFAULT and not (
            isinstance(declared, FieldDescriptor) and declared.required))
        if has_default:
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
    values = dict(zip(cls._positional, args, strict=False))
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
    ns = meta.get("ns") if type(meta) is dict or isinstance(meta, Mapping) else None
    return current_registry().get(ns) if isinstance(ns, str) else None


def maybe_model(value: Any) -> Any:
    """``value`` as the Record it was, if it is a payload naming a registered model (Faust's).

    A field typed ``Any`` keeps a nested record as its decoded dict; this
    builds the Record back when the dict's ``__faust`` namespace is known,
    and returns anything else unchanged.
    """
    if isinstance(value, Mapping):
        model = _registered_model(value)
        if model is not None:
            return model._from_mapping(value)
    return value


# -- compiled construction --------------------------------------------------------------------
# Records are built for every event, so what a class's fields and options imply is worked out
# once, on the first construction (forward references resolved by then): a binder with the
# fields as real parameters, the conversions the options ask for, nothing for the rest.
# The generic code above stays the reference: every wrong call goes through it for its error.

_MISSING = object()
_object_new = object.__new__


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """How one Record class is constructed, compiled from its fields and options."""

    #: ``bind(strict, *args, **kwargs) -> values``; raises TypeError (without the message the
    #: user should see) for any call :func:`_bind` would refuse.
    bind: Callable[..., dict[str, Any]]
    #: (field, converter) applied by a strict construction; empty unless options ask for it.
    strict: tuple[tuple[str, Converter], ...]
    #: (field, converter) applied when decoding (``__strict__=False``).
    loose: tuple[tuple[str, Converter], ...]
    validation: bool
    #: decoding a dict is binding it and storing the values: nothing to convert, validate or
    #: post-initialise, no wire names, no abstract class, no constructor of the user's.
    plain_decode: bool

    @classmethod
    def of(cls, model: type[Record]) -> _Plan:
        """Compile (once) the plan of ``model``; resolves forward references first.

        An abstract model has no plan: constructing one raises NotImplementedError, as Faust.
        """
        if model._options.abstract:
            raise NotImplementedError(
                f"cannot instantiate abstract model {model.__name__}: subclass it. (Used as "
                "the type of a field holding its subclasses? Give the model with that field "
                "polymorphic_fields=True and send records of the subclasses.)"
            )
        if not model._resolved:
            model._resolved = _resolve(model, strict=True)
        opts = model._options
        converts = opts.coerce or opts.isodates or opts.decimals or bool(opts.coercions)
        loose = _converters(model, models=True, annotations=True)
        plan = cls(
            bind=_compile_binder(model),
            strict=_converters(model, models=opts.coerce, annotations=converts),
            loose=loose,
            validation=opts.validation,
            plain_decode=not (loose or opts.validation or model._wire_in
                              or hasattr(model, "__post_init__")) and _constructs_plainly(model),
        )
        model._plan = plan
        return plan


def _converters(
    model: type[Record], *, models: bool, annotations: bool
) -> tuple[tuple[str, Converter], ...]:
    """Per field: what the annotation implies (when ``annotations``), then the field class's own
    preparation (``DecimalField``: Decimal), whichever of them there is."""
    opts = model._options
    pairs = []
    for name, d in model._fields.items():
        # a DatetimeField(date_parser=...) parses with its own parser, also under coercion
        field_opts = opts if d.date_parser is None else dataclasses.replace(
            opts, date_parser=d.date_parser)
        conv = compile_converter(d.type, field_opts, models=models) if annotations else None
        pairs.append((name, _chain(_chain(conv, d.preparer(opts)), d.tagger())))
    return tuple((name, conv) for name, conv in pairs if conv is not None)


def _chain(first: Converter | None, then: Converter | None) -> Converter | None:
    if first is None or then is None:
        return first or then

    def both(value: Any) -> Any:
        return then(first(value))

    return both


def record_decoder(cls: type[Record], codec: codecs.Codec) -> Callable[[bytes], Record]:
    """``lambda data: cls.from_data(codec.decoder()(data))``, in one call per record (a
    consumer's hot path: once per record of a topic of Records).

    The codec's decoder is taken apart inline (``Codec.decoder_parts``: msgspec's method
    itself for plain JSON), and so is :func:`_plain_decode` (``from_data``'s plain case,
    ``preferred_type`` None): the payload's class bound by its compiled binder, whose
    ``__faust`` parameter takes the namespace. What is not plain goes to ``from_data``,
    which decides and words errors as always. ``test_models_compiled`` pins that both
    give the same records and errors. A class overriding ``from_data`` gets its own,
    called as it is.
    """
    from_data = cls.from_data
    if getattr(from_data, "__func__", None) is not getattr(Record.from_data, "__func__", None):
        loads = codec.decoder()
        return lambda data: from_data(loads(data))
    first, refused, then = codec.decoder_parts()
    registry = current_registry

    def decode(data: bytes) -> Record:
        try:
            obj = first(data)
        except refused:
            obj = then(data)
        if type(obj) is not dict:
            return from_data(obj)
        meta = obj.get(BLESSED_KEY)
        if meta is None:
            target = cls
        elif type(meta) is dict:
            ns = meta.get("ns")
            target = (registry().get(ns) if type(ns) is str else None) or cls
        else:
            return from_data(obj)
        plan = target._plan
        if plan is not None and plan.plain_decode:
            try:
                values = plan.bind(False, **obj)
            except TypeError:
                pass  # from_data raises it, worded by Python
            else:
                record = _object_new(target)
                record.__dict__.update(values)
                return record
        return from_data(obj)

    return decode


def _plain_decode(
    cls: type[Record], data: dict[str, Any], preferred_type: type[Record] | None
) -> Record | None:
    """``from_data(data)`` when its class decodes plainly (``_Plan.plain_decode``); else None.

    The same class as ``from_data`` picks (the registered model of the payload's namespace,
    else ``preferred_type`` or ``cls``), the same binding as ``_from_mapping``; without the
    calls between them, once per consumed record. ``record_decoder`` repeats it inline
    (``preferred_type`` None): a change here goes there too.
    """
    meta = data.get(BLESSED_KEY)
    if meta is None:
        target = preferred_type or cls
    elif type(meta) is dict:
        ns = meta.get("ns")
        target = (current_registry().get(ns) if type(ns) is str else None) or preferred_type or cls
    else:
        return None
    plan = target._plan
    if plan is None or not plan.plain_decode:
        return None
    try:
        values = plan.bind(False, **data)
    except TypeError:
        return None  # the generic path raises it, worded by Python
    record = _object_new(target)
    record.__dict__.update(values)
    return record


def _finish(record: Record, plan: _Plan, values: dict[str, Any], strict: bool) -> None:
    """The rest of ``__init__`` once arguments are bound: convert, store, validate, post-init.

    ``Record.__init__`` repeats it inline (once per record constructed): a change here
    goes there too.
    """
    converters = plan.strict if strict else plan.loose
    if converters:
        _convert(type(record), values, converters)
    record.__dict__.update(values)
    if plan.validation:
        record.validate_or_raise()
    post_init = getattr(record, "__post_init__", None)
    if post_init is not None:
        post_init()


def _convert(
    cls: type[Record], values: dict[str, Any], converters: tuple[tuple[str, Converter], ...]
) -> None:
    for name, conv in converters:
        value = values[name]
        try:
            values[name] = conv(value)
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise conversion_error(cls, name, value, exc) from exc


def _constructs_plainly(cls: type[Record]) -> bool:
    """True when ``cls(...)`` is object.__new__ then Record.__init__, nothing of the user's."""
    return (cls.__init__ is Record.__init__ and cls.__new__ is _object_new
            and type(cls).__call__ is type.__call__)


def _compile_binder(cls: type[Record]) -> Callable[..., dict[str, Any]]:
    """``def bind(strict, /, x, y=0, *, __faust=None, **extra)`` for fields ``x: int; y: int = 0``.

    Python binds the arguments; a mutable default is copied when it is used; unknown
    keywords are checked as :func:`_bind` does. Falls back to a binder that always
    defers to :func:`_bind` when a field name cannot be a parameter.

    The blessed key (``__faust``, which every Record payload carries and every binding
    ignores) is a keyword-only parameter of its own, so that a payload of the fields and
    the namespace binds with ``extra`` empty, without the call to :func:`_check_extra`.
    The name is legal because the source is executed at module level: only inside a class
    body would Python mangle it (to ``_Record__faust``). Keyword-only, so that a surplus
    positional argument still fails as one.
    """
    fields = cls._fields
    if not all(name.isidentifier() and not keyword.iskeyword(name) for name in fields):
        return _defer
    namespace: dict[str, Any] = {"_check_extra": _check_extra, "_copy": copy.copy,
                                 "_MISSING": _MISSING}
    params, copies = [], []
    for i, name in enumerate(cls._positional):
        descriptor = fields[name]
        namespace[f"_default{i}"] = descriptor.default
        if descriptor.required:
            params.append(name)
        elif isinstance(descriptor.default, _MUTABLE_DEFAULTS):
            params.append(f"{name}=_MISSING")
            copies.append(f"    if {name} is _MISSING:\n        {name} = _copy(_default{i})\n")
        else:
            params.append(f"{name}=_default{i}")
    result = ", ".join(f"{name!r}: {name}" for name in fields)
    source = (
        f"def bind(_strict, /, {''.join(p + ', ' for p in params)}*, {BLESSED_KEY}=None, "
        "**_extra):\n"
        "    if _extra:\n"
        "        _check_extra(_strict, _extra)\n"
        f"{''.join(copies)}"
        f"    return {{{result}}}\n"
    )
    exec(source, namespace)  # the source holds only field names checked to be identifiers
    return namespace["bind"]


def _defer(*args: Any, **kwargs: Any) -> dict[str, Any]:
    raise TypeError("bound by _bind")


def _check_extra(strict: bool, extra: dict[str, Any]) -> None:
    """Refuse (TypeError) what :func:`_bind` or ``cls(**data, __strict__=False)`` would refuse."""
    if "__strict__" in extra or (strict and any(key != BLESSED_KEY for key in extra)):
        raise TypeError("refused by _bind")


_PLAIN_JSON = frozenset({str, int, float, bool, type(None)})


def _compile_represent(cls: type[Record]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The field part of ``to_representation`` for ``cls``: read every field, then convert.

    Each written field goes under its ``output_name``; excluded fields are not read; a
    tagged value is written as itself. Values of plain JSON types are kept without a
    call to ``to_json_ready`` (which keeps them too); the rest go through it.
    """
    fields = cls._fields
    written = cls._wire_out
    reads = "".join(
        f"    _v{i} = {'_untag(' if fields[name].tag is not None else '('}_d[{name!r}])\n"
        for i, (name, _) in enumerate(written)
    )
    items = ", ".join(
        f"{output!r}: _v{i} if _type(_v{i}) in _PLAIN else _ready(_v{i})"
        for i, (_, output) in enumerate(written)
    )
    namespace: dict[str, Any] = {"_type": type, "_PLAIN": _PLAIN_JSON,
                                 "_ready": codecs.to_json_ready, "_untag": untagged}
    exec(f"def represent(_d):\n{reads}    return {{{items}}}\n", namespace)  # names as repr()
    represent = namespace["represent"]
    cls._represent = represent
    return represent
