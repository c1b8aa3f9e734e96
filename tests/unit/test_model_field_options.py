"""Faust's field options: ``input_name``/``output_name``, ``exclude`` and value tags."""

from __future__ import annotations

import json
import logging

import pytest

from detstream import Record, codecs
from detstream.errors import InvalidArgument, SecurityError, ValidationError
from detstream.fields import FieldDescriptor, IntegerField, StringField
from detstream.tags import Personal, ProtectedValue, Secret, Sensitive, allow_protected_vars


def wire(record: Record) -> dict:
    """What ``dumps`` wrote, decoded with key order kept."""
    return json.loads(record.dumps())


# -- input_name / output_name ------------------------------------------------------------------
class Transfer(Record, namespace="test.options.Transfer"):
    from_: str = StringField(input_name="from")
    to: str
    amount: int = IntegerField(default=0, output_name="amount_cents")


class Reserved(Record, namespace="test.options.Reserved"):
    location: str = StringField(input_name="in")
    foo: str = StringField(required=False, default="BAR", input_name="bar", output_name="foobar")


def test_wire_names_are_written_and_read_as_faust_does() -> None:
    transfer = Transfer("alice", "bob", 5)
    # Faust's Record: asdict() and the payload use output_name (input_name when not given),
    # in field order, then the namespace
    assert transfer.asdict() == {"from": "alice", "to": "bob", "amount_cents": 5}
    assert list(wire(transfer)) == ["from", "to", "amount_cents", "__faust"]
    assert transfer.dumps() == codecs.get_codec("json").dumps(
        {"from": "alice", "to": "bob", "amount_cents": 5,
         "__faust": {"ns": "test.options.Transfer"}})
    # read back through the input names; output_name is only what is written
    back = Transfer.loads(b'{"from": "alice", "to": "bob", "amount": 7}')
    assert (back.from_, back.to, back.amount) == ("alice", "bob", 7)
    assert Transfer.loads(transfer.dumps()).amount == 0  # amount_cents is not an input name


def test_faust_reserved_keyword_example() -> None:
    """Faust's own test: ``input_name='in'`` and a renamed optional field."""
    with pytest.raises(TypeError):
        Reserved()
    assert Reserved("foo").location == "foo"
    assert Reserved(location="FOO").location == "FOO"
    record = Reserved.from_data({"in": "foo", "bar": "bar"})
    assert (record.location, record.foo) == ("foo", "bar")
    assert record.asdict() == {"in": "foo", "foobar": "bar"}
    assert Reserved.from_data({"in": "x"}).foo == "BAR"


def test_renamed_field_is_read_from_its_input_name_only() -> None:
    # the attribute name is not the field's key on the wire: ignored like an unknown key
    with pytest.raises(TypeError, match="from_"):
        Transfer.from_data({"from_": "alice", "to": "bob"})
    assert Transfer.from_data({"from": "a", "from_": "ignored", "to": "b"}).from_ == "a"


def test_descriptor_reports_its_names_and_constructor_keeps_attribute_names() -> None:
    assert (Transfer.from_.input_name, Transfer.from_.output_name) == ("from", "from")
    assert (Transfer.amount.input_name, Transfer.amount.output_name) == ("amount", "amount_cents")
    assert (Transfer.to.input_name, Transfer.to.output_name) == ("to", "to")
    with pytest.raises(TypeError):
        Transfer(**{"from": "a", "to": "b"})  # type: ignore[arg-type]


class Ledger(Record, namespace="test.options.Ledger"):
    transfers: list[Transfer]
    last: Transfer | None = None


def test_nested_records_use_their_own_wire_names() -> None:
    ledger = Ledger([Transfer("a", "b", 1)], last=Transfer("c", "d", 2))
    payload = wire(ledger)
    assert payload["transfers"][0]["from"] == "a"
    back = Ledger.loads(ledger.dumps())
    assert back.last is not None and back.last.from_ == "c"
    assert back.transfers[0].from_ == "a"


def test_repr_and_derive_use_attribute_names() -> None:
    transfer = Transfer("a", "b", 1)
    assert repr(transfer) == "<Transfer: from_='a', to='b', amount=1>"
    assert transfer.derive(amount=3) == Transfer("a", "b", 3)
    assert transfer.derive(Transfer("x", "y", 9)).from_ == "x"


# -- exclude -------------------------------------------------------------------------------------
class Session(Record, namespace="test.options.Session"):
    user: str
    token: str = StringField(exclude=True, default="")
    cache: dict = FieldDescriptor(exclude=True, default={})


def test_excluded_fields_are_not_written() -> None:
    session = Session("ann", token="t0k3n", cache={"k": 1})
    assert session.token == "t0k3n"
    assert session.asdict() == {"user": "ann"}
    assert "token" not in session.to_representation()
    assert wire(session) == {"user": "ann", "__faust": {"ns": "test.options.Session"}}
    back = Session.loads(session.dumps())
    assert (back.user, back.token, back.cache) == ("ann", "", {})
    assert Session.token.exclude and not Session.user.exclude


def test_faust_exclude_example_keeps_the_field_required() -> None:
    class X(Record):
        a: str
        b: str
        c: str = StringField(exclude=True)

    x = X("A", "B", "C")
    assert X.c.required and X.c.exclude
    assert x.asdict() == {"a": "A", "b": "B"}
    assert "c" not in x.to_representation()
    with pytest.raises(TypeError, match="'c'"):  # as in Faust: give excluded fields a default
        X.loads(x.dumps())


# -- tags ----------------------------------------------------------------------------------------
class Account(Record, namespace="test.options.Account"):
    name: str
    password: Secret[str]
    phone: Sensitive[str]
    email: Personal[str] | None = None


class Holder(Record, namespace="test.options.Holder"):
    alias: str
    accounts: list[Account]


def test_secret_is_masked_in_text_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    account = Account("ann", "hunter2", "555-0100")
    assert isinstance(account.password, Secret)
    assert str(account.password) == Secret.mask
    assert f"pw={account.password}" == f"pw={Secret.mask}"
    assert account.password.get_value() == "hunter2"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test.tags").info("login %s", account.password)
    assert Secret.mask in caplog.text and "hunter2" not in caplog.text
    assert "hunter2" not in repr(account)


def test_sensitive_never_becomes_text() -> None:
    account = Account("ann", "hunter2", "555-0100")
    with pytest.raises(SecurityError):
        str(account.phone)
    with pytest.raises(SecurityError):
        f"{account.phone}"  # noqa: B018
    value = account.phone.get_value()
    assert isinstance(value, ProtectedValue)
    assert value.upper() == "555-0100"  # read where it was asked for

    def upper(text: str) -> str:
        return text.upper()

    with pytest.raises(SecurityError):  # handed on to other code: refused there
        upper(account.phone.get_value())
    with allow_protected_vars():
        assert upper(account.phone.get_value()) == "555-0100"


def test_personal_is_plain_inside_allow_protected_vars() -> None:
    account = Account("ann", "pw", "1", email="ann@example.com")
    with pytest.raises(SecurityError):
        str(account.email)
    assert isinstance(account.email, Personal)
    with allow_protected_vars():
        assert account.email.get_value() == "ann@example.com"
    assert Account("ann", "pw", "1").email is None  # None stays None


def test_tagged_values_are_written_as_themselves_and_read_back_tagged() -> None:
    account = Account("ann", "hunter2", "555-0100", email="a@x")
    assert wire(account) == {"name": "ann", "password": "hunter2", "phone": "555-0100",
                             "email": "a@x", "__faust": {"ns": "test.options.Account"}}
    back = Account.loads(account.dumps())
    assert isinstance(back.password, Secret) and isinstance(back.phone, Sensitive)
    assert back == account
    assert hash(back) == hash(account)
    copy = account.derive(name="bob")  # a tagged value is kept, not wrapped twice
    assert copy.password is account.password


def test_tag_option_on_a_field_class() -> None:
    class Login(Record):
        user: str
        pin: int = IntegerField(tag=Secret, min_value=1000)

    login = Login("ann", 1234)
    assert isinstance(login.pin, Secret) and login.pin.get_value() == 1234
    assert login.is_valid()  # constraints and types are checked on the value itself
    assert [e.field for e in Login("ann", 12).validate()] == ["pin"]
    assert wire(login)["pin"] == 1234


def test_tag_indices_include_records_holding_tagged_fields() -> None:
    opts = Account._options
    assert opts.has_secret_fields and opts.secret_fields == {"password"}
    assert opts.sensitive_fields == {"phone"} and opts.personal_fields == {"email"}
    assert opts.tagged_fields == {"password", "phone", "email"}
    holder = Holder._options
    assert holder.secret_fields == {"accounts"} and holder.sensitive_fields == {"accounts"}
    assert not Transfer._options.has_tagged_fields


def test_sensitive_and_personal_tag_only_text() -> None:
    with pytest.raises(TypeError, match="str or bytes"):
        Sensitive[int]
    with pytest.raises(TypeError, match="str or bytes"):
        Personal[float]
    assert Secret[int] is not None


def test_a_value_cannot_be_tagged_twice() -> None:
    with pytest.raises(SecurityError, match="already tagged"):
        Secret(Secret("x"))


def test_validation_option_checks_the_tagged_value() -> None:
    class Strict(Record, validation=True):
        code: Secret[str] = StringField(max_length=3)

    assert Strict("abc").code.get_value() == "abc"
    with pytest.raises(ValidationError, match="max_length"):
        Strict("abcd")


# -- bad options ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("options", "message"), [
    ({"input_name": ""}, "input_name='' must be a non-empty str"),
    ({"output_name": 3}, "output_name=3 must be a non-empty str"),
    ({"input_name": "__faust"}, "namespace"),
    ({"exclude": "yes"}, "exclude='yes' must be True or False"),
    ({"tag": str}, "not a field tag"),
])
def test_bad_options_are_refused_naming_the_option(options: dict, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        StringField(**options)


def test_two_fields_with_one_wire_name_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="'a' and 'b' both have input_name 'b'"):
        class Clash(Record):
            a: str = StringField(input_name="b")
            b: str

    with pytest.raises(InvalidArgument, match="both have output_name 'x'"):
        class OutClash(Record):
            a: str = StringField(output_name="x")
            b: str = StringField(output_name="x")

    class ExcludedMayShare(Record):  # an excluded field writes nothing
        a: str = StringField(output_name="x")
        b: str = StringField(output_name="x", exclude=True)

    assert ExcludedMayShare("1", "2").asdict() == {"x": "1"}


def test_faust_models_tags_resolves_under_the_alias() -> None:
    from detstream import faust_compat

    with faust_compat.faust_alias():
        from faust.models.tags import Secret as FaustSecret  # type: ignore[import-not-found]
        from faust.models.tags import allow_protected_vars as faust_allow

    assert FaustSecret is Secret and faust_allow is allow_protected_vars
