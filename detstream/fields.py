"""Field classes for Records: a field's own constraints and coercion (``faust.models.fields``).

A plain annotation says what type a field holds; a field class, written as the field's
default, says more about its values::

    class Account(Record, validation=True):
        name: str = StringField(max_length=20, trim_whitespace=True)
        balance: Decimal = DecimalField(max_decimal_places=2, default=Decimal(0))
        opened: datetime = DatetimeField()

Two things come of it. **Validation**: ``Record.validate()`` (and every construction when
the Record's ``validation`` option is on) reports each broken constraint as a
``ValidationError`` naming the field and the reason. **Coercion**, on every construction:
``DecimalField`` makes a ``Decimal`` of a str, int or float, ``DatetimeField`` parses an ISO
8601 string, ``BytesField`` encodes a str; so all three survive a JSON round trip, which
writes those values as strings. ``IntegerField``, ``FloatField``, ``StringField`` and
``BooleanField`` cast only when coercion is on (``coerce=True`` on the field, else the
Record's ``coerce`` option), as a plain annotation does. ``trim_whitespace`` always trims:
the option asks for it.

Every field class (and a plain ``FieldDescriptor``) also takes Faust's ``input_name`` and
``output_name`` (the field's key on the wire, when not its attribute name), ``exclude``
(leave it out of what is written) and ``tag`` (``Secret``, ``Sensitive``, ... of
:mod:`detstream.tags`); see :mod:`detstream.models`.

A field class with no ``default`` is required; ``default=`` makes it optional unless
``required=True`` is passed too. The constraints are checked on values of the annotated
type only (a value of another type is already reported as such), and never on None.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from detstream._annotations import Converter, _parse_datetime, _to_decimal
from detstream.models import FieldDescriptor, ModelOptions
from detstream.models import _chain as _then
from detstream.tags import Tag

__all__ = [
    "BooleanField", "BytesField", "CharField", "DatetimeField", "DecimalField",
    "FieldDescriptor", "FloatField", "IntegerField", "NumberField", "StringField",
    "TYPE_TO_FIELD", "field_for_type",
]


class BooleanField(FieldDescriptor):
    """A bool; under coercion any value becomes its truth value."""

    def validate(self, value: Any) -> Iterator[Any]:
        if not isinstance(value, bool):
            yield self.error(f"must be True or False, got {value!r}")

    def preparer(self, options: ModelOptions) -> Converter | None:
        return _truth if _coerces(self, options) else None


class NumberField(FieldDescriptor):
    """A number within ``min_value`` and ``max_value`` (both inclusive, each optional)."""

    #: The type coercion casts to (None: keep the value).
    cast: Callable[[Any], Any] | None = None

    def __init__(
        self, *, max_value: Any = None, min_value: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.max_value = max_value
        self.min_value = min_value

    def validate(self, value: Any) -> Iterator[Any]:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return  # not a number: the annotation's check reports it, if it is wrong
        if self.min_value is not None and value < self.min_value:
            yield self.error(f"{value!r} is less than min_value {self.min_value!r}")
        if self.max_value is not None and value > self.max_value:
            yield self.error(f"{value!r} is greater than max_value {self.max_value!r}")

    def preparer(self, options: ModelOptions) -> Converter | None:
        cast = type(self).cast
        return _caster(cast) if cast is not None and _coerces(self, options) else None


class IntegerField(NumberField):
    """An int within bounds; coercion casts with ``int()``."""

    cast = int


class FloatField(NumberField):
    """A float within bounds; coercion casts with ``float()``."""

    cast = float


class DecimalField(NumberField):
    """A Decimal within bounds, with at most ``max_digits`` digits and ``max_decimal_places``.

    Always coerced: a str, int or float becomes ``Decimal(str(value))`` (so ``0.1`` stays
    0.1), which is how the value comes back from JSON.
    """

    def __init__(
        self, *, max_digits: int | None = None, max_decimal_places: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_digits = max_digits
        self.max_decimal_places = max_decimal_places

    def validate(self, value: Any) -> Iterator[Any]:
        if isinstance(value, Decimal) and not value.is_finite():
            yield self.error(f"{value!r} is not a finite number")
            return
        yield from super().validate(value)
        if not isinstance(value, Decimal):
            return
        exponent = value.as_tuple().exponent
        assert isinstance(exponent, int)  # finite, checked above
        places = max(0, -exponent)
        digits = max(len(value.as_tuple().digits), places)
        if self.max_digits is not None and digits > self.max_digits:
            yield self.error(f"{value} has {digits} digits, more than max_digits {self.max_digits}")
        if self.max_decimal_places is not None and places > self.max_decimal_places:
            yield self.error(
                f"{value} has {places} decimal places, more than max_decimal_places "
                f"{self.max_decimal_places}"
            )

    def preparer(self, options: ModelOptions) -> Converter | None:
        return _to_decimal


class CharField(FieldDescriptor):
    """A str of ``min_length``..``max_length`` characters, blank only with ``allow_blank``.

    Blank means empty or only whitespace. ``trim_whitespace`` strips both ends on
    construction, before the checks.
    """

    def __init__(
        self,
        *,
        max_length: int | None = None,
        min_length: int | None = None,
        trim_whitespace: bool = False,
        allow_blank: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.max_length = max_length
        self.min_length = min_length
        self.trim_whitespace = trim_whitespace
        self.allow_blank = allow_blank

    def validate(self, value: Any) -> Iterator[Any]:
        if not isinstance(value, (str, bytes)):
            return
        if not self.allow_blank and not value.strip():
            yield self.error("must not be blank")
        if self.min_length is not None and len(value) < self.min_length:
            yield self.error(f"length {len(value)} is less than min_length {self.min_length}")
        if self.max_length is not None and len(value) > self.max_length:
            yield self.error(f"length {len(value)} is more than max_length {self.max_length}")

    def preparer(self, options: ModelOptions) -> Converter | None:
        cast = _caster(str) if _coerces(self, options) else None
        trim = _trim if self.trim_whitespace else None
        return _then(cast, trim)


#: Faust's two names for the same field class.
StringField = CharField


class BytesField(CharField):
    """Bytes with CharField's checks; a str is encoded with ``encoding`` and ``errors``.

    Always coerced, since JSON brings bytes back as a str.
    """

    def __init__(self, *, encoding: str = "utf-8", errors: str = "strict", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.encoding = encoding
        self.errors = errors

    def preparer(self, options: ModelOptions) -> Converter | None:
        encoding, errors = self.encoding, self.errors

        def encode(value: Any) -> Any:
            return value.encode(encoding, errors) if isinstance(value, str) else value

        return _then(encode, _trim if self.trim_whitespace else None)


class DatetimeField(FieldDescriptor):
    """A datetime; a str is parsed with ``date_parser`` (else the Record's, else ISO 8601).

    Always coerced, since JSON brings a datetime back as its ISO string.
    """

    def preparer(self, options: ModelOptions) -> Converter | None:
        parse = self.date_parser or options.date_parser or _parse_datetime

        def parse_text(value: Any) -> Any:
            return parse(value) if isinstance(value, str) else value

        return parse_text


def _coerces(field: FieldDescriptor, options: ModelOptions) -> bool:
    return options.coerce if field.coerce is None else field.coerce


def _caster(cast: Callable[[Any], Any]) -> Converter:
    def run(value: Any) -> Any:
        return value if value is None or type(value) is cast else cast(value)

    return run


def _truth(value: Any) -> Any:
    return value if value is None else bool(value)


def _trim(value: Any) -> Any:
    return value.strip() if isinstance(value, (str, bytes)) else value


#: the field class Faust picks for an annotation of each type (``faust.models.fields``).
TYPE_TO_FIELD: dict[type, type[FieldDescriptor]] = {
    bool: BooleanField,
    int: IntegerField,
    float: FloatField,
    Decimal: DecimalField,
    str: StringField,
    bytes: BytesField,
    datetime: DatetimeField,
}


@functools.lru_cache(maxsize=2048)
def field_for_type(typ: Any) -> tuple[type[FieldDescriptor], type[Tag] | None]:
    """The field class for annotation ``typ``, and its tag: Faust's ``field_for_type``.

    ``Secret[str]`` gives ``(StringField, Secret[str])``; a subclass of a known type
    gets that type's field class (``bool`` before ``int``, as Faust looks); anything
    else the plain ``FieldDescriptor``.
    """
    known = TYPE_TO_FIELD.get(typ)
    if known is not None:
        return known, None
    origin = typing.get_origin(typ)
    if isinstance(origin, type) and issubclass(origin, Tag):
        return field_for_type(typing.get_args(typ)[0])[0], typ
    if isinstance(typ, type):
        for base, field_class in TYPE_TO_FIELD.items():
            if issubclass(typ, base):
                return field_class, None
    return FieldDescriptor, None
