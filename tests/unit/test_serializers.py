"""Schema: which codec applies to keys and values, tombstones, and decode/encode errors."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detstream import codecs
from detstream.errors import (
    CodecError,
    DecodeError,
    InvalidArgument,
    KeyDecodeError,
    ValueDecodeError,
)
from detstream.models import Record
from detstream.serializers import Schema


class Account(Record):
    id: str
    balance: float = 0.0


class Wrapped(Record, serializer="json|binary"):
    n: int


class Shape(Record, abstract=True):
    name: str


class Square(Shape):
    side: int = 1


class Circle(Shape):
    radius: int = 1


class Drawing(Record):
    shapes: list[Shape]
    index: dict[str, Account] = {}
    owner: Account | None = None


class Checked(Record, validation=True):
    count: int


WHERE = {"topic": "orders", "partition": 3, "offset": 42}


# -- Record values -------------------------------------------------------------------------
def test_record_value_round_trip_with_default_json() -> None:
    schema = Schema(value_type=Account)
    data = schema.dumps_value(Account("a", 1.5), default_serializer="json")
    assert data == Account("a", 1.5).dumps()
    assert schema.loads_value(data, default_serializer="json") == Account("a", 1.5)


def test_record_serializer_option_beats_default() -> None:
    schema = Schema(value_type=Wrapped)
    data = schema.dumps_value(Wrapped(1), default_serializer="json")
    assert codecs.loads("json|binary", data)["n"] == 1
    assert schema.loads_value(data, default_serializer="json") == Wrapped(1)


def test_explicit_serializer_beats_record_option() -> None:
    schema = Schema(value_type=Wrapped, value_serializer="json")
    data = schema.dumps_value(Wrapped(2), default_serializer="raw")
    assert codecs.loads("json", data)["n"] == 2
    assert schema.loads_value(data) == Wrapped(2)


def test_plain_data_for_record_type_is_encoded_and_decoded_to_record() -> None:
    schema = Schema(value_type=Account)
    data = schema.dumps_value({"id": "x"}, default_serializer="json")
    assert schema.loads_value(data, default_serializer="json") == Account("x")


def test_polymorphic_value_by_namespace() -> None:
    schema = Schema(value_type=Shape)
    decoded = schema.loads_value(schema.dumps_value(Circle("c", 2)))
    assert decoded == Circle("c", 2)


def test_nested_lists_and_dicts_of_records() -> None:
    schema = Schema(value_type=Drawing)
    drawing = Drawing([Square("s"), Circle("c")], {"a": Account("a")}, Account("o"))
    assert schema.loads_value(schema.dumps_value(drawing)) == drawing


def test_untyped_value_with_namespace_decodes_to_record() -> None:
    schema = Schema()
    assert schema.loads_value(schema.dumps_value(Account("z"))) == Account("z")
    assert schema.loads_value(b'{"plain": 1}') == {"plain": 1}


def test_record_key_uses_its_serializer_not_raw_default() -> None:
    schema = Schema(key_type=Account)
    data = schema.dumps_key(Account("k"), default_serializer="raw")
    assert schema.loads_key(data, default_serializer="raw") == Account("k")


# -- bytes, str and numbers ------------------------------------------------------------------
def test_bytes_type_is_raw_passthrough_whatever_the_default() -> None:
    schema = Schema(key_type=bytes, value_type=bytes)
    assert schema.dumps_key(b"\x00k", default_serializer="json") == b"\x00k"
    assert schema.loads_value(b"\xffv", default_serializer="json") == b"\xffv"


def test_str_type_without_a_serializer_takes_the_default_codec_as_faust() -> None:
    # Faust's Registry falls back to raw for str only when no serializer is set at all;
    # the app defaults (key raw, value json) are set, so a str value is JSON text.
    schema = Schema(key_type=str, value_type=str)
    assert schema.dumps_key("ключ") == "ключ".encode()
    assert schema.loads_key("ключ".encode()) == "ключ"
    assert schema.dumps_value("ключ") == json.dumps("ключ").encode()
    assert schema.dumps_value("v") == b'"v"'
    assert schema.loads_value(b'"v"') == "v"
    assert schema.dumps_key("k", default_serializer="json") == b'"k"'
    assert schema.loads_key(b'"k"', default_serializer="json") == "k"
    with pytest.raises(ValueDecodeError, match="as str with codec 'json'"):
        schema.loads_value(b"v", **WHERE)


def test_str_type_with_the_raw_serializer_is_utf8() -> None:
    schema = Schema(key_type=str, value_type=str, key_serializer="raw", value_serializer="raw")
    assert schema.dumps_value("ключ", default_serializer="json") == "ключ".encode()
    assert schema.loads_value("ключ".encode(), default_serializer="json") == "ключ"
    assert schema.dumps_key("k", default_serializer="json") == b"k"
    assert schema.loads_key(b"k", default_serializer="json") == "k"


def test_str_type_rejects_non_utf8_with_location() -> None:
    with pytest.raises(KeyDecodeError) as info:
        Schema(key_type=str).loads_key(b"\xff", **WHERE)
    error = info.value
    assert (error.topic, error.partition, error.offset) == ("orders", 3, 42)
    assert "topic='orders' partition=3 offset=42" in str(error)
    assert "as str" in error.reason


def test_explicit_codec_for_str_checks_decoded_type() -> None:
    schema = Schema(key_type=str, key_serializer="json")
    assert schema.loads_key(schema.dumps_key("a")) == "a"
    with pytest.raises(KeyDecodeError, match="expected str, got int"):
        schema.loads_key(b"5", **WHERE)


@pytest.mark.parametrize("default", ["raw", "json"])
def test_int_and_float_keys_use_default_codec_then_convert(default: str) -> None:
    ints, floats = Schema(key_type=int), Schema(key_type=float)
    assert ints.loads_key(ints.dumps_key(42, default_serializer=default),
                          default_serializer=default) == 42
    assert floats.loads_key(floats.dumps_key(2.5, default_serializer=default),
                            default_serializer=default) == 2.5


def test_int_raw_wire_format_is_text() -> None:
    assert Schema(key_type=int).dumps_key(7, default_serializer="raw") == b"7"


def test_int_decode_failure_raises_key_decode_error() -> None:
    with pytest.raises(KeyDecodeError, match="as int"):
        Schema(key_type=int).loads_key(b"seven", default_serializer="raw", **WHERE)


# -- defaults and tombstones ----------------------------------------------------------------
def test_untyped_defaults_are_raw_keys_and_json_values() -> None:
    schema = Schema()
    assert schema.dumps_key("k") == b"k"
    assert schema.loads_key(b"k") == b"k"
    assert schema.dumps_value({"a": 1}) == b'{"a":1}'
    assert schema.loads_value(b'{"a":1}') == {"a": 1}


def test_none_is_a_tombstone_both_ways() -> None:
    schema = Schema(key_type=Account, value_type=Account)
    assert schema.dumps_key(None) is None
    assert schema.dumps_value(None) is None
    assert schema.loads_key(None) is None
    assert schema.loads_value(None) is None


def test_allow_empty_is_kept() -> None:
    assert Schema(allow_empty=True).allow_empty is True
    assert Schema().allow_empty is False


# -- decode errors --------------------------------------------------------------------------
def test_bad_json_raises_value_decode_error_with_location() -> None:
    with pytest.raises(ValueDecodeError) as info:
        Schema(value_type=Account).loads_value(b"{not json", **WHERE)
    error = info.value
    assert isinstance(error, DecodeError)
    assert (error.topic, error.partition, error.offset) == ("orders", 3, 42)
    assert "codec 'json'" in error.reason and "Account" in error.reason
    assert isinstance(error.__cause__, CodecError)


def test_wrong_shape_names_missing_field() -> None:
    with pytest.raises(ValueDecodeError, match="missing required field.*'id'.*offset=42"):
        Schema(value_type=Account).loads_value(b'{"balance": 1}', **WHERE)


def test_non_mapping_for_record_is_decode_error() -> None:
    with pytest.raises(ValueDecodeError, match="needs a mapping, got list"):
        Schema(value_type=Account).loads_value(b"[1, 2]", **WHERE)


def test_validation_failure_is_decode_error() -> None:
    with pytest.raises(ValueDecodeError, match=r"Checked\.count: expected int, got str"):
        Schema(value_type=Checked).loads_value(b'{"count": "x"}', **WHERE)


def test_decode_error_without_location_has_plain_message() -> None:
    with pytest.raises(ValueDecodeError) as info:
        Schema(value_type=Account).loads_value(b"{")
    assert "topic=" not in str(info.value)


# -- encode errors and construction -------------------------------------------------------------
def test_unencodable_value_names_type_and_codec() -> None:
    class Opaque:
        pass

    with pytest.raises(CodecError, match=r"codec 'json' cannot encode .*Opaque.*hint"):
        Schema().dumps_value({"x": Opaque()})


def test_wrong_type_for_str_key_names_raw_codec() -> None:
    with pytest.raises(CodecError, match="codec 'raw' cannot encode dict"):
        Schema(key_type=str).dumps_key({"a": 1})


def test_unknown_serializer_fails_at_construction() -> None:
    with pytest.raises(CodecError, match="unknown codec 'jsno'"):
        Schema(value_serializer="jsno")


def test_serializer_name_passed_as_type_is_rejected_with_hint() -> None:
    with pytest.raises(InvalidArgument, match="did you mean value_serializer='json'"):
        Schema(value_type="json")


def test_repr_mentions_types() -> None:
    assert "value_type=Account" in repr(Schema(value_type=Account))


# -- property --------------------------------------------------------------------------------------
@given(
    account=st.builds(Account, id=st.text(), balance=st.floats(allow_nan=False)),
    serializer=st.sampled_from(["json", "json|binary", "pickle"]),
)
def test_schema_round_trip_property(account: Account, serializer: str) -> None:
    schema = Schema(key_type=str, value_type=Account, value_serializer=serializer)
    assert schema.loads_key(schema.dumps_key(account.id)) == account.id
    assert schema.loads_value(schema.dumps_value(account)) == account


# -- compiled plans ------------------------------------------------------------------------------
def test_plans_follow_attribute_changes() -> None:
    schema = Schema(value_type=int)
    assert schema.loads_value(b"7", default_serializer="json") == 7
    schema.value_type = bytes
    assert schema.loads_value(b"7", default_serializer="json") == b"7"
    schema.value_serializer = "json"
    with pytest.raises(ValueDecodeError, match="as bytes.*expected bytes, got int"):
        schema.loads_value(b"7", default_serializer="json")


def test_plans_follow_the_codec_registry() -> None:
    class Upper(codecs.RawCodec):
        def _loads(self, data: bytes) -> bytes:
            return bytes(data).upper()

    schema = Schema()  # no type: the default codec decodes
    codecs.register("test-plan", codecs.RawCodec())
    try:
        assert schema.loads_value(b"ab", default_serializer="test-plan") == b"ab"
        codecs.register("test-plan", Upper())
        assert schema.loads_value(b"ab", default_serializer="test-plan") == b"AB"
    finally:
        del codecs.codecs["test-plan"]
    with pytest.raises(CodecError, match="unknown codec 'test-plan'"):
        schema.loads_value(b"ab", default_serializer="test-plan")


def test_codec_resolution_happens_where_it_did() -> None:
    schema = Schema(value_type=Account, value_serializer="json")
    # decoding resolves the codec before looking at the data, even for a tombstone
    with pytest.raises(CodecError, match="unknown codec 'nope'"):
        Schema().loads_value(None, default_serializer="nope")
    # encoding a tombstone, or a Record under an explicit serializer, does not need the default
    assert Schema().dumps_value(None, default_serializer="nope") is None
    assert schema.dumps_value(Account("a"), default_serializer="nope") == Account("a").dumps()


def test_codec_object_defaults_are_not_cached() -> None:
    schema = Schema()
    for _ in range(3):
        assert schema.loads_value(b"{}", default_serializer=codecs.JSONCodec()) == {}
    assert schema._value_plans == {}
    schema.loads_value(b"{}", default_serializer="json")
    assert list(schema._value_plans) == ["json"]


def test_copies_and_pickles_make_their_own_plans() -> None:
    import copy
    import pickle

    schema = Schema(key_type=str, value_type=Account)
    data = schema.dumps_value(Account("a"))
    schema.loads_value(data)
    for clone in (copy.copy(schema), copy.deepcopy(schema), pickle.loads(pickle.dumps(schema))):
        assert clone._value_plans == {}
        assert clone.loads_value(data) == Account("a")
        assert clone.loads_key(b"k") == "k"


def test_raw_number_keys_keep_their_text_form() -> None:
    schema = Schema(key_type=float)
    assert schema.dumps_key(2.5, default_serializer="raw") == b"2.5"
    with pytest.raises(CodecError, match="codec 'raw' cannot encode bool"):  # not a number here
        schema.dumps_key(True, default_serializer="raw")
    assert schema.dumps_key("3", default_serializer="raw") == b"3"


class Stamped(Record):
    """Encodes itself its own way: ``dumps`` overridden."""

    n: int

    def dumps(self, *, serializer=None) -> bytes:
        return b"stamped:%d" % self.n


class Tagged(Account, serializer="json|binary"):
    """A subclass of a declared type with a serializer of its own."""


class Counted(Record):
    n: int
    decoded = 0

    @classmethod
    def from_data(cls, data, *, preferred_type=None):
        cls.decoded += 1
        return super().from_data(data, preferred_type=preferred_type)


def test_a_record_of_the_declared_type_encodes_as_the_generic_path_does() -> None:
    """The declared Record class takes the plan's codec in one step; a subclass with its own
    serializer, or a class that overrides ``dumps``, still encodes its own way."""
    schema = Schema(key_type=Account, value_type=Account)
    account = Account(id="a", balance=2.5)
    expected = json.dumps({"id": "a", "balance": 2.5, "__faust": {"ns": Account._options.namespace}},
                          separators=(",", ":")).encode()
    assert schema.encode_key(account) == schema.encode_value(account) == expected
    tagged = Tagged(id="t")
    assert schema.encode_value(tagged) == codecs.get_codec("json|binary").dumps(tagged.to_representation())
    assert Schema(value_type=Stamped).encode_value(Stamped(n=3)) == b"stamped:3"
    assert Schema(key_type=Stamped).encode_key(Stamped(n=4)) == b"stamped:4"


def test_a_record_class_overriding_from_data_decodes_through_it() -> None:
    schema = Schema(value_type=Counted)
    before = Counted.decoded
    assert schema.decode_value(schema.encode_value(Counted(n=5))) == Counted(n=5)
    assert Counted.decoded == before + 1


def test_raw_keys_and_bytes_values_decode_to_the_bytes_themselves() -> None:
    message = type("M", (), {"key": b"word", "value": b"\x00v", "topic": "t", "partition": 0,
                             "offset": 0})()
    assert Schema().loads_message(message, "raw", "raw") == (b"word", b"\x00v")
    assert Schema(value_type=bytes).loads_message(message, "raw", "json") == (b"word", b"\x00v")


class _Opaque:
    pass


def _result(fn: object) -> tuple:
    try:
        return "ok", fn()
    except Exception as exc:  # compared by type and wording
        return "raised", type(exc), str(exc)


@pytest.mark.parametrize(("schema", "side", "obj", "codec"), [
    (Schema(key_type=str), "key", "w\xf6rd", "raw"),
    (Schema(key_type=str), "key", "\ud800", "raw"),
    (Schema(key_type=str), "key", {"a": 1}, "raw"),
    (Schema(), "key", bytearray(b"k"), "raw"),
    (Schema(key_type=int), "key", 5, "raw"),
    (Schema(), "value", {"a": [1, "\xe9"]}, "json"),
    (Schema(), "value", {"o": _Opaque()}, "json"),
    (Schema(value_type=int), "value", 7, "json"),
    (Schema(value_type=str, value_serializer="raw"), "value", "t", "raw"),
    (Schema(value_type=Account), "value", Account(id="a", balance=_Opaque()), "json"),
    (Schema(key_type=Account), "key", Account(id="\u2028"), "json"),
    (Schema(value_type=Wrapped), "value", Wrapped(n=1), "json|binary"),
])
def test_a_schema_encodes_as_its_codecs_dumps_does(schema: Schema, side: str, obj: object,
                                                     codec: str) -> None:
    """A plan encodes with its codec's ``encoder()`` (one call for a str under raw, a value
    under json, a Record of the declared type after its representation): the bytes and the
    CodecError of ``dumps`` (raw numbers as their text, Records as ``Record.dumps``)."""
    encode = schema.encode_key if side == "key" else schema.encode_value
    if isinstance(obj, Record):
        expected = _result(lambda: obj.dumps(serializer=codec))
    elif isinstance(obj, int):
        expected = _result(lambda: codecs.dumps(codec, repr(obj) if codec == "raw" else obj))
    else:
        expected = _result(lambda: codecs.dumps(codec, obj))
    assert _result(lambda: encode(obj)) == expected
