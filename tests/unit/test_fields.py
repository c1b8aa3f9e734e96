"""Field classes (``faust.models.fields``): constraints, coercion, required/default, round trips."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

import detstream
from detstream import Record
from detstream.errors import ValidationError
from detstream.fields import (
    BooleanField,
    BytesField,
    CharField,
    DatetimeField,
    DecimalField,
    FloatField,
    IntegerField,
    StringField,
)


def reasons(record: Record) -> list[tuple[str | None, str]]:
    return [(e.field, e.reason) for e in record.validate()]


class Named(Record):
    name: str = StringField(max_length=5, min_length=2)


def test_string_field_lengths_and_blank() -> None:
    assert reasons(Named("abc")) == []
    assert reasons(Named("abcdef")) == [("name", "Named.name: length 6 is more than max_length 5")]
    assert reasons(Named("a")) == [("name", "Named.name: length 1 is less than min_length 2")]
    assert [field for field, _ in reasons(Named("  "))] == ["name"]
    assert "blank" in reasons(Named("  "))[0][1]


def test_allow_blank_and_trim_whitespace() -> None:
    class Note(Record):
        text: str = StringField(allow_blank=True, trim_whitespace=True)

    assert Note("  hi \n").text == "hi"
    assert Note("").is_valid()
    assert CharField is StringField


def test_validation_option_raises_on_construction() -> None:
    class Strict(Record, validation=True):
        name: str = StringField(max_length=3)

    with pytest.raises(ValidationError) as info:
        Strict("toolong")
    assert info.value.field == "name"
    assert "max_length 3" in info.value.reason
    assert Strict("ok").name == "ok"


def test_without_validation_option_construction_accepts_and_validate_reports() -> None:
    record = Named("much too long")
    assert not record.is_valid()
    with pytest.raises(ValidationError, match="max_length"):
        record.validate_or_raise()


def test_number_fields_bounds() -> None:
    class Sample(Record):
        count: int = IntegerField(min_value=0, max_value=10)
        ratio: float = FloatField(max_value=1.0, default=0.0)

    assert Sample(10, 1.0).is_valid()
    assert reasons(Sample(-1)) == [("count", "Sample.count: -1 is less than min_value 0")]
    assert reasons(Sample(3, 1.5)) == [("ratio", "Sample.ratio: 1.5 is greater than max_value 1.0")]


def test_number_fields_cast_only_under_coercion() -> None:
    class Loose(Record):
        count: int = IntegerField()

    class Cast(Record):
        count: int = IntegerField(coerce=True)
        ratio: float = FloatField(default=0.0)

    class ModelCoerce(Record, coerce=True):
        ratio: float = FloatField()

    assert Loose("3").count == "3"
    assert not Loose("3").is_valid()  # the annotation's own check
    assert Cast("3").count == 3
    assert Cast(3, 1).ratio == 1 and type(Cast(3, 1).ratio) is int  # the field did not ask
    assert type(ModelCoerce(1).ratio) is float


def test_decimal_field_coerces_and_checks_digits() -> None:
    class Price(Record):
        amount: Decimal = DecimalField(max_digits=5, max_decimal_places=2, min_value=0)

    assert Price("12.50").amount == Decimal("12.50")
    assert Price(0.1).amount == Decimal("0.1")
    assert Price(3).amount == Decimal(3)
    assert Price("123.45").is_valid()
    assert reasons(Price("1.234")) == [
        ("amount", "Price.amount: 1.234 has 3 decimal places, more than max_decimal_places 2")
    ]
    assert reasons(Price("12345.6")) == [
        ("amount", "Price.amount: 12345.6 has 6 digits, more than max_digits 5")
    ]
    assert reasons(Price("-1")) == [("amount", "Price.amount: Decimal('-1') is less than min_value 0")]
    assert "finite" in reasons(Price("NaN"))[0][1]


def test_boolean_field() -> None:
    class Flag(Record):
        on: bool = BooleanField(default=False)

    class Cast(Record):
        on: bool = BooleanField(coerce=True)

    assert Flag().on is False
    assert Cast(1).on is True
    assert Cast(0).on is False
    assert Flag(True).is_valid()


def test_datetime_field_parses_strings() -> None:
    class Event(Record):
        at: dt.datetime = DatetimeField()
        seen: dt.datetime = DatetimeField(date_parser=lambda s: dt.datetime(2000, 1, 1), default=None)

    event = Event("2024-05-01T12:30:00Z", "anything")
    assert event.at == dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc)
    assert event.seen == dt.datetime(2000, 1, 1)
    assert Event(dt.datetime(2020, 1, 1)).seen is None


def test_bytes_field_encodes_and_checks_length() -> None:
    class Blob(Record):
        data: bytes = BytesField(max_length=4, encoding="latin-1")

    assert Blob("ab\xe9").data == b"ab\xe9"
    assert Blob(b"xy").is_valid()
    assert reasons(Blob(b"12345")) == [("data", "Blob.data: length 5 is more than max_length 4")]


def test_required_and_default() -> None:
    class Person(Record):
        name: str = StringField()
        nick: str = StringField(default="anon")
        email: str | None = StringField(required=False)

    with pytest.raises(TypeError, match="name"):
        Person()
    person = Person("Ann")
    assert (person.nick, person.email) == ("anon", None)
    assert person.is_valid()  # None is not checked against the field's options
    assert Person._fields["name"].required and not Person._fields["nick"].required

    class Forced(Record):
        name: str = StringField(required=True, default="x")

    with pytest.raises(TypeError, match="name"):
        Forced()


def test_field_class_is_the_class_attribute_and_groups() -> None:
    class Account(Record):
        owner: str = StringField(max_length=10)

    assert isinstance(Account.owner, StringField)
    assert Account.owner.ident == "Account.owner"
    assert Account.owner.max_length == 10
    assert Account.owner.getattr(Account("bo")) == "bo"


def test_subclass_keeps_base_field_class() -> None:
    class Base(Record, abstract=True):
        name: str = StringField(max_length=2)

    class Child(Base):
        extra: int = 0

    assert isinstance(Child._fields["name"], StringField)
    assert Child._fields["name"].model is Child
    assert not Child("abc").is_valid()


class Withdrawal(Record, serializer="json", validation=True):
    """A Faust-style record: every kind of field class, defaults, coercion on decode."""

    account_id: str = StringField(max_length=16, trim_whitespace=True)
    amount: Decimal = DecimalField(max_decimal_places=2, min_value=0)
    country: str = StringField(min_length=2, max_length=2, default="NO")
    attempts: int = IntegerField(min_value=0, max_value=3, default=0)
    approved: bool = BooleanField(default=False)
    at: dt.datetime = DatetimeField(default=None)
    memo: bytes = BytesField(default=b"")


def test_faust_style_record_round_trip() -> None:
    original = Withdrawal(
        " acct-1 ", Decimal("10.25"), attempts=2, approved=True,
        at=dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc), memo=b"rent",
    )
    assert original.account_id == "acct-1"
    copy = Withdrawal.loads(original.dumps())
    assert copy == original
    assert type(copy.amount) is Decimal and type(copy.at) is dt.datetime and copy.memo == b"rent"


def test_decoding_validates_too() -> None:
    bad = b'{"account_id": "a", "amount": "1.005"}'
    with pytest.raises(ValidationError, match="max_decimal_places"):
        Withdrawal.loads(bad)


def test_exported_and_faust_alias() -> None:
    assert detstream.StringField is StringField
    assert detstream.DecimalField is DecimalField
    from detstream.faust_compat import faust_alias

    with faust_alias():
        from faust.models.fields import (  # type: ignore[import-not-found]
            FieldDescriptor,
        )
        from faust.models.fields import (
            IntegerField as FaustIntegerField,
        )
    assert FaustIntegerField is IntegerField
    assert FieldDescriptor is detstream.FieldDescriptor


def test_field_for_type_picks_faust_s_field_classes_and_unwraps_tags() -> None:
    import datetime as _datetime
    from decimal import Decimal as _Decimal

    from detstream.fields import FieldDescriptor, field_for_type
    from detstream.tags import Secret

    class Flag(int):
        pass

    assert field_for_type(str) == (StringField, None)
    assert field_for_type(bool)[0] is BooleanField
    assert field_for_type(_Decimal)[0] is DecimalField
    assert field_for_type(_datetime.datetime)[0] is DatetimeField
    assert field_for_type(Flag)[0] is IntegerField  # a subclass: its base's field class
    assert field_for_type(Secret[str]) == (StringField, Secret[str])
    assert field_for_type(list[int])[0] is FieldDescriptor
