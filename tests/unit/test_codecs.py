"""Codecs: named lookup, composition, the builtin codecs' wire format and their errors."""

import datetime as dt
import os
import subprocess
import sys
from collections import Counter, deque
from decimal import Decimal
from enum import Enum
from uuid import UUID

import pytest

from detstream import codecs
from detstream.errors import CodecError, InvalidArgument


def test_raw_passes_bytes_and_encodes_str() -> None:
    assert codecs.dumps("raw", b"\x00\xff") == b"\x00\xff"
    assert codecs.dumps("raw", "héllo") == "héllo".encode()
    assert codecs.loads("raw", b"abc") == b"abc"


def test_raw_refuses_other_types_naming_type_and_codec() -> None:
    with pytest.raises(CodecError, match=r"codec 'raw' cannot encode int.*hint"):
        codecs.dumps("raw", 42)


def test_json_round_trips_plain_data() -> None:
    data = {"a": [1, 2.5, "x", None, True], "b": {"c": "é"}}
    encoded = codecs.dumps("json", data)
    assert encoded == b'{"a":[1,2.5,"x",null,true],"b":{"c":"\\u00e9"}}'  # ASCII, as Faust writes
    assert codecs.loads("json", encoded) == data


def test_json_encodes_extra_types() -> None:
    data = {
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
        "day": dt.date(2024, 5, 1),
        "price": Decimal("10.10"),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "tags": {"b", "a", "c"},
        "frozen": frozenset({3, 1, 2}),
        "blob": b"text",
    }
    assert codecs.loads("json", codecs.dumps("json", data)) == {
        "when": "2024-05-01T12:30:00Z",  # UTC written as Faust writes it
        "day": "2024-05-01",
        "price": "10.10",
        "id": "12345678-1234-5678-1234-567812345678",
        "tags": ["a", "b", "c"],
        "frozen": [1, 2, 3],
        "blob": "text",
    }


def test_json_uses_dunder_json_protocol() -> None:
    class Money:
        def __json__(self) -> dict:
            return {"amount": "1.00", "currency": "EUR"}

    assert codecs.dumps("json", [Money()]) == b'[{"amount":"1.00","currency":"EUR"}]'


def test_json_unknown_type_error_names_type_and_hints() -> None:
    class Opaque:
        pass

    with pytest.raises(CodecError, match=r"codec 'json' cannot encode .*Opaque.*__json__"):
        codecs.dumps("json", {"x": Opaque()})


def test_json_non_utf8_bytes_error_hints_binary() -> None:
    with pytest.raises(CodecError, match="not UTF-8.*binary"):
        codecs.dumps("json", b"\xff\xfe")


def test_json_decode_error_is_codec_error() -> None:
    with pytest.raises(CodecError, match=r"codec 'json' cannot decode 4 bytes b'\{bad'"):
        codecs.loads("json", b"{bad")


def test_json_mixed_type_set_is_ordered_stably() -> None:
    assert codecs.dumps("json", {1, "a"}) == codecs.dumps("json", {"a", 1}) == b'["a",1]'  # ordered by JSON text


def test_json_bytes_are_stable_across_hash_seeds() -> None:
    """Set ordering depends on PYTHONHASHSEED; the encoded bytes must not."""
    script = (
        "import sys; from detstream import codecs; "
        "sys.stdout.write(codecs.dumps('json', "
        "{'s': {'kiwi', 'apple', 'fig', 'banana', 'cherry'}, 'n': 1}).decode())"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, check=True)
        outputs.add(run.stdout)
    assert outputs == {'{"s":["apple","banana","cherry","fig","kiwi"],"n":1}'}


def test_binary_is_base64() -> None:
    assert codecs.dumps("binary", b"hello") == b"aGVsbG8="
    assert codecs.loads("binary", b"aGVsbG8=") == b"hello"


def test_binary_rejects_invalid_base64() -> None:
    with pytest.raises(CodecError, match="codec 'binary' cannot decode"):
        codecs.loads("binary", b"not base64!!")


def test_pickle_round_trips_arbitrary_objects() -> None:
    value = {"t": (1, 2), "s": {3}, "d": Decimal("1.5")}
    encoded = codecs.dumps("pickle", value)
    assert encoded.isascii()  # base64 on the wire
    assert codecs.loads("pickle", encoded) == value


def test_pickle_documents_rce_warning() -> None:
    assert "arbitrary code" in (codecs.PickleCodec.__doc__ or "")


def test_pipeline_by_name_is_json_then_base64() -> None:
    encoded = codecs.dumps("json|binary", {"x": 1})
    assert encoded == b"eyJ4IjoxfQ=="  # base64 of b'{"x":1}'
    assert codecs.loads("json|binary", encoded) == {"x": 1}


def test_pipeline_by_operator_matches_name() -> None:
    composed = codecs.json() | codecs.binary()
    assert composed.name == "json|binary"
    assert composed.dumps([1]) == codecs.get_codec("json | binary").dumps([1])
    assert composed.loads(composed.dumps([1])) == [1]


def test_pipelines_flatten() -> None:
    nested = (codecs.json() | codecs.binary()) | codecs.binary()
    assert [stage.name for stage in nested.stages] == ["json", "binary", "binary"]
    assert nested.loads(nested.dumps({"k": "v"})) == {"k": "v"}


def test_get_codec_returns_instances_unchanged() -> None:
    codec = codecs.JSONCodec()
    assert codecs.get_codec(codec) is codec


def test_unknown_codec_error_names_it_and_lists_known() -> None:
    with pytest.raises(CodecError) as info:
        codecs.get_codec("jsn")
    message = str(info.value)
    assert "'jsn'" in message
    for name in ("binary", "json", "pickle", "raw"):
        assert name in message


def test_unknown_codec_inside_pipeline() -> None:
    with pytest.raises(CodecError, match="unknown codec 'nope'"):
        codecs.get_codec("json|nope")


def test_get_codec_rejects_non_codec() -> None:
    with pytest.raises(InvalidArgument):
        codecs.get_codec(42)  # type: ignore[arg-type]


def test_register_custom_codec_by_subclassing() -> None:
    class Reverse(codecs.Codec):
        def _dumps(self, obj: bytes) -> bytes:
            return bytes(obj)[::-1]

        def _loads(self, data: bytes) -> bytes:
            return bytes(data)[::-1]

    codecs.register("test-reverse", Reverse)
    try:
        assert codecs.dumps("raw|test-reverse", "abc") == b"cba"
        assert codecs.loads("raw|test-reverse", b"cba") == b"abc"
        assert codecs.get_codec("test-reverse").name == "test-reverse"
    finally:
        del codecs.codecs["test-reverse"]


def test_register_rejects_bad_names() -> None:
    with pytest.raises(InvalidArgument):
        codecs.register("a|b", codecs.RawCodec())


def test_none_codec_passes_through() -> None:
    assert codecs.dumps(None, {"x": 1}) == {"x": 1}
    assert codecs.loads(None, b"x") == b"x"


def test_to_json_ready_converts_nested_and_leaves_unknown() -> None:
    marker = object()
    ready = codecs.to_json_ready({"d": Decimal("2"), "l": ({1}, marker)})
    assert ready == {"d": "2", "l": [[1], marker]}


# -- the reused encoder/decoder and the lookup caches -------------------------------------------
WIRE_VALUES = [
    {"f": [1e16, 1e-7, 0.1, -0.0, 1.5e300, 2.0 ** 70, float("nan"), float("inf"), -float("inf")]},
    {"i": [2 ** 64, -(2 ** 80), True, False, None]},
    {"s": ["é", "日本", "\u2028\u2029", "\x00\x1f\x7f", '"\\/', "\U0001f600"]},
    {1: "int key", 2.5: "float key", False: "bool key", None: "none key"},
    {"nested": {"b": [{"x": 1}], "a": ()}, "order": "kept"},
    [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), Decimal("1.10"), UUID(int=5), {3, 1}, b"t"],
]


@pytest.mark.parametrize("value", WIRE_VALUES, ids=range(len(WIRE_VALUES)))
def test_json_bytes_are_those_of_json_dumps_with_the_codec_settings(value: object) -> None:
    """Faust's wire bytes: the reused encoder must write exactly what json.dumps wrote."""
    import json

    expected = json.dumps(value, default=codecs._json_default, separators=(",", ":")).encode()
    assert codecs.dumps("json", value) == expected


def test_json_encode_failures_keep_their_messages() -> None:
    assert codecs.dumps("json", "\ud800") == b'"\\ud800"'  # ASCII output escapes even a lone surrogate
    with pytest.raises(CodecError, match="Circular reference"):
        looped: list = []
        looped.append(looped)
        codecs.dumps("json", looped)
    assert codecs.dumps("json", [1]) == b"[1]"  # a failed call leaves the encoder usable


def test_json_decode_of_a_bom_fails_as_json_loads_does() -> None:
    with pytest.raises(CodecError, match="Unexpected UTF-8 BOM"):
        codecs.loads("json", "\ufeff{}".encode())
    assert codecs.loads("json", bytearray(b'{"a":1}')) == {"a": 1}


def test_pipeline_lookups_are_reused_until_the_registry_changes() -> None:
    first = codecs.get_codec("json|binary")
    assert codecs.get_codec("json|binary") is first
    before = codecs.codecs.generation
    codecs.register("test-cache", codecs.RawCodec())
    try:
        assert codecs.codecs.generation > before
        assert codecs.get_codec("json|binary") is not first
        assert codecs.get_codec("json|test-cache").stages[1] is codecs.codecs["test-cache"]
    finally:
        del codecs.codecs["test-cache"]
    with pytest.raises(CodecError, match="unknown codec 'test-cache'"):
        codecs.get_codec("json|test-cache")


def test_every_registry_change_bumps_its_generation() -> None:
    registry = codecs.codecs
    raw = codecs.RawCodec()
    changes = [
        lambda: registry.__setitem__("test-gen", raw),
        lambda: registry.pop("test-gen"),
        lambda: registry.setdefault("test-gen", raw),
        lambda: registry.__delitem__("test-gen"),
        lambda: registry.update({"test-gen": raw}),
        lambda: registry.__ior__({"test-gen2": raw}),
        lambda: (registry.pop("test-gen"), registry.pop("test-gen2")),
    ]
    for change in changes:
        before = registry.generation
        change()
        assert registry.generation > before
    assert "test-gen" not in registry and "test-gen2" not in registry


def test_get_codec_accepts_str_subclasses() -> None:
    class Name(str):
        pass

    assert codecs.get_codec(Name("json")) is codecs.codecs["json"]
    assert codecs.get_codec(Name("json|binary")).name == "json|binary"


class _Color(Enum):
    RED = "red"


def test_json_writes_the_bytes_faust_streaming_writes() -> None:
    """Bytes recorded from faust-streaming 0.15.3 (``faust.serializers.codecs.dumps``).

    A JSON key's bytes decide its partition and its identity in a compacted
    topic: a detstream worker and a Faust producer must write the same ones.
    """
    value = {
        "a": [1, 2], "e": _Color.RED, "dec": Decimal("1.10"), "u": UUID(int=5),
        "t": dt.time(1, 2), "at": dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone.utc),
        "n": dt.datetime(2024, 1, 1), "s": "é\u2028x", "q": deque([1, 2]), "c": Counter("ab"),
    }
    assert codecs.dumps("json", value) == (
        b'{"a":[1,2],"e":"red","dec":"1.10","u":"00000000-0000-0000-0000-000000000005",'
        b'"t":"01:02:00","at":"2024-01-01T12:00:00Z","n":"2024-01-01T00:00:00",'
        b'"s":"\\u00e9\\u2028x","q":[1,2],"c":{"a":1,"b":1}}'
    )
    assert codecs.loads("json", codecs.dumps("json", {"s": "é"})) == {"s": "é"}


def test_the_raw_codecs_decoder_is_bytes_itself_unless_a_subclass_decodes() -> None:
    """A consumer decodes raw keys and values with ``bytes``: what ``loads`` returns for
    every bytes-like it may be handed; a subclass's own ``_loads`` is kept."""
    raw = codecs.get_codec("raw")
    decode = raw.decoder()
    assert decode is bytes
    for data in (b"k\x00", bytearray(b"k\x00"), memoryview(b"k\x00")):
        assert decode(data) == raw.loads(data) == b"k\x00" and type(decode(data)) is bytes

    class Upper(codecs.RawCodec):
        def _loads(self, data: bytes) -> bytes:
            return bytes(data).upper()

    assert Upper().decoder()(b"k") == b"K"


class _Opaque:
    pass


class _Jsonable:
    def __json__(self) -> dict:
        return {"j": [1, {2}]}


def _cycle() -> list:
    looped: list = []
    looped.append(looped)
    return looped


ENCODER_CASES = [
    b"\x00\xff", bytearray(b"ba"), memoryview(b"mv"), "h\xe9llo", "\ud800", "", 0, 2.5, True, None,
    {"a": [1, 2.5, None]}, ["\u2028", float("nan")], {1: "x"}, Decimal("1.10"), UUID(int=3),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), {"s": {3, 1}}, _Jsonable(), _Opaque(),
    {"o": _Opaque()}, b"\xff\xfe", {"b": b"\xff"}, _cycle(), type("Str", (str,), {})("sub"),
]


def _encoded(fn: object, obj: object) -> tuple:
    try:
        return "ok", fn(obj)
    except Exception as exc:  # compared by type and wording
        return "raised", type(exc), str(exc)


@pytest.mark.parametrize("name", ["json", "raw"])
@pytest.mark.parametrize("obj", ENCODER_CASES, ids=repr)
def test_the_encoder_gives_what_dumps_gives(name: str, obj: object) -> None:
    """``encoder()`` is ``dumps`` in fewer calls (the one topics send with): the same bytes,
    the same CodecError for what the codec cannot encode, whatever the object."""
    codec = codecs.get_codec(name)
    assert codec.encoder() is not codec.dumps  # the quick one, or this pins nothing
    got, expected = _encoded(codec.encoder(), obj), _encoded(codec.dumps, obj)
    assert got == expected
    if got[0] == "raised":
        assert got[1] is CodecError


def test_a_codec_subclass_encodes_with_its_own_dumps() -> None:
    class Loud(codecs.JSONCodec):
        def _dumps(self, obj: object) -> bytes:
            return super()._dumps(obj).upper()

    class Tagged(codecs.RawCodec):
        def dumps(self, obj: object) -> bytes:
            return b"t:" + super().dumps(obj)

    assert Loud().encoder()({"a": "b"}) == b'{"A":"B"}'
    assert Tagged().encoder()("x") == b"t:x"
    assert codecs.get_codec("json|binary").encoder()({"a": 1}) == b"eyJhIjoxfQ=="


@pytest.mark.parametrize("name", ["json", "raw", "json|binary"])
@pytest.mark.parametrize("data", [
    b'{"a":[1,2.5,null]}', b"NaN", b"1e400", b'"\\ud800"', b"\xef\xbb\xbf{}", b"{", b"", b"[1,]",
    b"18446744073709551616", b'"\xff"', b"eyJhIjoxfQ==",
])
def test_the_decoder_parts_decode_as_the_decoder_does(name: str, data: bytes) -> None:
    """``decoder_parts()`` inline (as the record, number and text decoders use them) is
    ``decoder()``: the same values (NaN by its repr), the same errors."""
    codec = codecs.get_codec(name)
    first, refused, then = codec.decoder_parts()

    def inline(data: bytes) -> object:
        try:
            return first(data)
        except refused:
            return then(data)

    assert repr(_encoded(inline, data)) == repr(_encoded(codec.decoder(), data))
    if name == "json" and codecs._FAST_DECODE is not None:
        assert first is codecs._FAST_DECODE  # msgspec's method itself: no wrapper to call
