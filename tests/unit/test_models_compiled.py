"""The compiled Record paths give what the generic ones give: same values, same objects, same errors.

``Record.__init__``, ``from_data`` and ``to_representation`` run code compiled per class
(a binder with the fields as parameters, per-field converters, a representer). The generic
functions they replaced (``_bind``, ``convert``/``convert_field``, ``to_json_ready``) stay
in the code base as the reference; every case here runs both and compares.
"""

import datetime as dt
import typing
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal, Optional, Union
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detstream import codecs
from detstream._annotations import compile_converter, convert, convert_field
from detstream.errors import ValidationError
from detstream.models import ModelOptions, Record, _bind, _Plan, record_decoder


class Pt(Record):
    x: int
    y: int = 0


class Pet(Record, abstract=True):
    name: str


class Dog(Pet):
    barks: bool = True


class Cat(Pet, namespace="test.compiled.Cat"):
    lives: int = 9


CAT = {"name": "tom", "lives": 3, "__faust": {"ns": "test.compiled.Cat"}}

ANNOTATIONS: list[Any] = [
    int, str, float, bool, bytes, Any, type(None), "Fwd", Optional[int], Union[int, str],  # noqa: UP007, UP045
    int | None | str, Pt, Pt | None, Pet, Dog | Cat, list[int], list[Pt], typing.List, list,  # noqa: UP006
    set[str], frozenset[int], tuple[int, str], tuple[int, ...], tuple[Pt, ...], tuple,
    Sequence[Pt], Mapping[str, Pt], dict[str, int], dict[int, Pt], dict, dict[str, list[Pt]],
    list[dict[str, Pt]], set[Pt], dt.datetime, dt.date, Decimal, UUID, dt.datetime | None,
    list[dt.datetime], dict[str, Decimal], Literal["a"], typing.Dict[str, typing.Tuple[int, ...]],  # noqa: UP006
]

OPTIONS = [
    ModelOptions(),
    ModelOptions(coerce=True),
    ModelOptions(isodates=True),
    ModelOptions(decimals=True),
    ModelOptions(isodates=True, decimals=True, polymorphic_fields=True),
    ModelOptions(coerce=True, polymorphic_fields=True),
    ModelOptions(coercions={int: lambda v: int(v) * 10}),
    ModelOptions(isodates=True, date_parser=lambda text: ("parsed", text)),
]

VALUES: list[Any] = [
    None, 1, 0, "1", "x", "2024-01-01T00:00:00Z", "2024-01-02", "1.25", 1.5, True, b"x",
    [1, "2"], ["2024-01-01T00:00:00"], [None, 3], ("a", 1), {1, 2}, frozenset({"a"}),
    {"x": 1}, {"x": "2"}, CAT, [{"x": 1}, CAT], {"a": {"x": 1}, "b": None}, {"a": [{"x": 2}]},
    {1: {"x": 1}}, Decimal("1.5"), dt.datetime(2024, 1, 1), UUID(int=1), Pt(1),
    "12345678-1234-5678-1234-567812345678", [], {}, (), {"y": 1},
]


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:  # compared by type and wording
        return "raised", (type(exc), str(exc))


def _same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down (a set of Records equal to a list would not do)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Record):
        return a == b and all(_same(a.__dict__[k], b.__dict__[k]) for k in a._fields)
    return a == b


@pytest.mark.parametrize("options", OPTIONS, ids=range(len(OPTIONS)))
@pytest.mark.parametrize("models", [False, True])
@pytest.mark.parametrize("tp", ANNOTATIONS, ids=repr)
def test_compiled_converter_matches_convert(tp: Any, models: bool, options: ModelOptions) -> None:
    conv = compile_converter(tp, options, models=models)
    for value in VALUES:
        expected = _outcome(lambda v=value: convert(v, tp, options, models=models))
        got = _outcome(lambda v=value: v if conv is None else conv(v))
        assert got[0] == expected[0], (value, got, expected)
        if expected[0] == "raised":
            assert got[1] == expected[1], value
            continue
        assert (got[1] is value) == (expected[1] is value), ("identity", value)
        assert _same(got[1], expected[1]), (value, got[1], expected[1])


# -- construction -------------------------------------------------------------------------
class Loose(Record, coerce=True):
    n: int
    at: dt.datetime
    p: Pt
    f: float = 0.0


class Dated(Record, isodates=True, decimals=True):
    at: dt.datetime
    amount: Decimal
    when: list[dt.date] = []


class Defaults(Record):
    a: int
    items: list[int] = []
    index: dict[str, int] = {}
    tags: set[str] = set()
    buf: bytearray = bytearray(b"x")
    label: str = "l"


class Nested(Record):
    pts: list[Pt]
    by: dict[str, Pt] = {}
    pair: tuple[int, str] = (0, "")
    tags: frozenset[str] = frozenset()
    best: Pt | None = None
    any_pet: Dog | Cat | None = None


class Keywordish(Record):
    match: int
    type: str = "t"
    case: int = 0


def _reference_values(cls: type[Record], args: tuple, kwargs: dict, strict: bool) -> dict:
    """The Record.__init__ this package had before construction was compiled (minus post-init)."""
    values = _bind(cls, args, kwargs, strict=strict)
    opts = cls._options
    if opts.coerce or opts.isodates or opts.decimals or opts.coercions or not strict:
        values = {name: convert_field(cls, name, value, models=opts.coerce or not strict)
                  for name, value in values.items()}
    return values


CALLS: list[tuple[type[Record], tuple, dict]] = [
    (Pt, (1,), {}), (Pt, (1, 2), {}), (Pt, (), {"x": 1, "y": 2}), (Pt, (), {}), (Pt, (1, 2, 3), {}),
    (Pt, (1,), {"x": 2}), (Pt, (1,), {"w": 3}), (Pt, (), {"y": 1}), (Pt, (1,), {"__faust": {}}),
    (Pt, (), {"x": 1, "_strict": 1}), (Pt, (), {"x": 1, "_extra": 1}), (Pt, (), {"x": 1, "a-b": 2}),
    (Loose, ("5", "2024-01-01T00:00:00", {"x": 2}), {}), (Loose, ("n", "2024", {"x": 1}), {}),
    (Loose, (1, dt.datetime(2024, 1, 1), Pt(1)), {"f": "2.5"}), (Loose, ("1", "x", {}), {}),
    (Dated, ("2024-05-01T12:00:00Z", "1.10"), {"when": ["2024-05-02"]}),
    (Dated, ("yesterday", "1"), {}), (Dated, (dt.datetime(2024, 1, 1), 3), {}),
    (Defaults, (1,), {}), (Defaults, (1, [2]), {"label": "m"}), (Defaults, (), {"a": 1, "tags": {"t"}}),
    (Nested, ([{"x": 1}, Pt(2)],), {"by": {"a": {"x": 3}}, "pair": [1, "one"], "tags": ["b", "a"]}),
    (Nested, ([],), {"best": {"x": 4}, "any_pet": CAT}), (Nested, ([{"y": 1}],), {}),
    (Keywordish, (1,), {"type": "u", "case": 2}), (Keywordish, (), {"match": 1, "case": 3}),
]


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(("cls", "args", "kwargs"), CALLS)
def test_construction_matches_the_generic_path(
    cls: type[Record], args: tuple, kwargs: dict, strict: bool
) -> None:
    expected = _outcome(lambda: _reference_values(cls, args, dict(kwargs), strict))
    got = _outcome(lambda: cls(*args, __strict__=strict, **kwargs).__dict__)
    assert got[0] == expected[0], (got, expected)
    if expected[0] == "raised":
        assert got[1] == expected[1]
    else:
        assert _same(got[1], expected[1]), (got[1], expected[1])


@pytest.mark.parametrize(("cls", "args", "kwargs"), CALLS)
def test_from_data_matches_keyword_construction(cls: type[Record], args: tuple, kwargs: dict) -> None:
    data = {**dict(zip(cls._fields, args, strict=False)), **kwargs}
    fields = {k: v for k, v in data.items() if k != "__faust"}
    expected = _outcome(lambda: cls(**fields, __strict__=False).__dict__)
    got = _outcome(lambda: cls._from_mapping(data).__dict__)
    assert got[0] == expected[0], (got, expected)
    if expected[0] == "raised":
        assert got[1] == expected[1]
    else:
        assert _same(got[1], expected[1])


@pytest.mark.parametrize("data", [
    {"x": 1, "__strict__": True},  # cls(**data, __strict__=False) refuses it: so must the fast path
    {1: 2, "x": 1},
    {"y": 2},
])
def test_from_data_refuses_what_keyword_construction_refuses(data: dict) -> None:
    fields = {k: v for k, v in data.items() if k != "__faust"}
    with pytest.raises(TypeError) as generic:
        Pt(**fields, __strict__=False)
    with pytest.raises(TypeError) as fast:
        Pt.from_data(data)
    assert str(fast.value) == str(generic.value)


def test_mutable_defaults_are_fresh_copies_on_every_path() -> None:
    first, second = Defaults(1), Defaults.from_data({"a": 2})
    for record in (first, second):
        assert record.items == [] and record.items is not Defaults.items.default
        assert record.buf == bytearray(b"x") and record.buf is not Defaults.buf.default
    first.items.append(1)
    first.tags.add("x")
    assert Defaults(3).items == [] and Defaults(3).tags == set()


def test_user_init_new_and_metaclass_are_honoured_by_from_data() -> None:
    seen: list[str] = []

    class OwnInit(Record):
        a: int

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append("init")
            super().__init__(*args, **kwargs)

    class OwnNew(Record):
        a: int

        def __new__(cls, *args: Any, **kwargs: Any) -> "OwnNew":
            seen.append("new")
            return super().__new__(cls)

    class Meta(type):
        def __call__(cls, *args: Any, **kwargs: Any) -> Any:
            seen.append("meta")
            return super().__call__(*args, **kwargs)

    class WithMeta(Record, metaclass=Meta):
        a: int

    for cls in (OwnInit, OwnNew, WithMeta):
        assert cls.from_data({"a": 1, "b": 2}).a == 1
    assert seen == ["init", "new", "meta"]


def test_subclass_init_calling_super_binds_the_subclass_fields() -> None:
    class Base(Record):
        a: int

    class Child(Base):
        b: int = 5

        def __init__(self, a: int, **kwargs: Any) -> None:
            super().__init__(a, **kwargs)

    assert Base(1).asdict() == {"a": 1}
    assert Child(1).asdict() == {"a": 1, "b": 5}
    assert Child(1, b=2).asdict() == {"a": 1, "b": 2}
    with pytest.raises(TypeError, match="unexpected keyword argument 'c'"):
        Child(1, c=3)


def test_post_init_and_validation_run_on_the_decode_path() -> None:
    class Area(Record, validation=True):
        w: int
        h: int

        def __post_init__(self) -> None:
            self.area = self.w * self.h

    assert Area.from_data({"w": 2, "h": 3}).area == 6
    with pytest.raises(ValidationError, match="Area.w: expected int, got str"):
        Area.from_data({"w": "2", "h": 3})


def test_forward_reference_unresolvable_still_fails_at_first_use() -> None:
    class Later(Record):
        other: "Undefined"  # noqa: F821

    from detstream.errors import InvalidArgument

    for build in (lambda: Later(1), lambda: Later.from_data({"other": 1})):
        with pytest.raises(InvalidArgument, match="cannot resolve"):
            build()


def test_conversion_error_names_field_only_on_failure() -> None:
    with pytest.raises(ValidationError, match=r"Loose\.n: cannot convert 'n' to int") as info:
        Loose("n", dt.datetime(2024, 1, 1), Pt(1))
    assert info.value.field == "n"
    assert isinstance(info.value.__cause__, ValueError)


# -- representation ----------------------------------------------------------------------------
class Mixed(Record):
    s: str
    n: int
    f: float
    b: bool
    none: int | None
    when: dt.datetime
    amount: Decimal
    pts: list[Pt]
    tags: set[str]
    raw: bytes
    flag: Any = None


def _reference_representation(record: Record) -> dict:
    payload = {name: codecs.to_json_ready(value) for name, value in record.asdict().items()}
    if record._options.include_metadata:
        payload["__faust"] = {"ns": record._options.namespace}
    return payload


def test_representation_matches_to_json_ready() -> None:
    class Str(str):
        pass

    record = Mixed(Str("s"), 1, 1.5, True, None, dt.datetime(2024, 1, 1), Decimal("1.10"),
                   [Pt(1)], {"b", "a"}, b"raw", flag=Pt(2))
    assert _same(record.to_representation(), _reference_representation(record))
    assert record.dumps() == codecs.dumps("json", _reference_representation(record))


def test_overridden_asdict_is_used() -> None:
    class Renamed(Record):
        a: int

        def asdict(self) -> dict[str, Any]:
            return {"renamed": self.a}

    assert Renamed(1).to_representation() == {"renamed": 1, "__faust": {"ns": Renamed._options.namespace}}


def test_representation_of_a_record_built_without_init() -> None:
    record = object.__new__(Pt)
    record.__dict__.update(x=1, y=2)
    assert record.to_representation()["x"] == 1
    with pytest.raises(KeyError):
        object.__new__(Pt).to_representation()


@given(n=st.integers(), s=st.text(), f=st.floats(allow_nan=False), loose=st.booleans())
def test_random_scalars_round_trip_like_the_generic_path(n: int, s: str, f: float, loose: bool) -> None:
    class Scalars(Record, namespace="test.compiled.Scalars"):
        n: int
        s: str
        f: float

    args = (n, s, f)
    assert _same(Scalars(*args, __strict__=not loose).__dict__,
                 _reference_values(Scalars, args, {}, not loose))
    decoded = Scalars.loads(Scalars(*args).dumps())
    assert _same(decoded.__dict__, {"n": n, "s": s, "f": f})


@pytest.mark.parametrize(("cls", "data"), [
    (Pt, {"x": 1}),
    (Pt, {"x": 1, "y": 2, "unknown": 9}),
    (Cat, {"name": "c"}),
    (Dog, {"name": "d", "barks": False}),
    (Defaults, {"a": 1}),
])
def test_a_second_decode_of_a_dict_gives_what_the_first_gave(cls: type[Record], data: dict) -> None:
    """The first decode compiles the class's plan; later ones bind on the plain path."""
    first, second = cls.from_data(dict(data)), cls.from_data(dict(data))
    assert type(first) is type(second) is cls
    assert _same(first.__dict__, second.__dict__)
    assert _same(second.__dict__, cls(**data, __strict__=False).__dict__)


def test_the_plain_path_decodes_to_the_model_the_payload_names() -> None:
    payload = Cat(name="c", lives=3).to_representation()
    for _ in range(2):
        decoded = Pet.from_data(dict(payload))
        assert type(decoded) is Cat and decoded.lives == 3
    unknown = {"x": 1, "__faust": {"ns": "no.such.Model"}}
    assert [type(Pt.from_data(dict(unknown))) for _ in range(2)] == [Pt, Pt]
    assert type(Pt.from_data({"name": "c"}, preferred_type=Cat)) is Cat


DECODED: list[tuple[type[Record], Any]] = [
    (Pt, {"x": 1, "__faust": {"ns": Pt._options.namespace}}), (Pt, {"x": 1}), (Pt, {"y": 2}),
    (Pt, {"x": 1, "y": 2, "z": 3}), (Pt, {"x": 1, "__strict__": True}), (Pt, {"x": 1, "_strict": 0}),
    (Pt, {"x": 1, "_extra": 0}), (Pt, {"x": 1, "__faust": None}), (Pt, {"x": 1, "__faust": []}),
    (Pt, {"x": 1, "__faust": {"ns": 5}}), (Pt, {"x": 1, "__faust": {}}), (Pt, CAT),
    (Pt, {"x": 1, "__faust": {"ns": "no.such.Model"}}), (Pt, [1]), (Pt, "x"), (Pt, None),
    (Pet, CAT), (Pet, {"name": "p"}), (Pet, {"name": "d", "__faust": {"ns": Dog._options.namespace}}),
    (Dog, {"name": "d", "barks": False}), (Cat, {"name": "c", "__faust": {"ns": "test.compiled.Cat"}}),
    (Loose, {"n": "5", "at": "2024-01-01T00:00:00", "p": {"x": 2}}), (Defaults, {"a": 1}),
    (Dated, {"at": "2024-05-01T12:00:00Z", "amount": "1.10"}), (Keywordish, {"match": 1, "case": 2}),
]


@pytest.mark.parametrize(("cls", "data"), DECODED, ids=repr)
def test_the_record_decoder_decodes_as_from_data(cls: type[Record], data: Any) -> None:
    """A consumer's ``record_decoder`` (``_plain_decode`` and the JSON decoder inline) gives
    what ``from_data`` of the decoded payload gives: the same class and values, the same
    errors; a second time (the plans compiled by then), and through a codec pipeline."""
    for name in ("json", "json", "json|binary"):
        codec = codecs.get_codec(name)
        payload = codec.dumps(data)
        expected = _outcome(lambda: cls.from_data(codec.loads(payload)))  # noqa: B023
        got = _outcome(lambda: record_decoder(cls, codec)(payload))  # noqa: B023
        assert got[0] == expected[0], (got, expected)
        if got[0] == "raised":
            assert got[1] == expected[1]
        else:
            assert type(got[1]) is type(expected[1]) and _same(got[1], expected[1])


def test_the_binder_takes_the_blessed_key_as_a_keyword_only_parameter() -> None:
    """``__faust`` binds without the call to ``_check_extra`` (a payload's usual extra key),
    ignored as ``_bind`` ignores it; it is no positional parameter, and the refusals stay."""
    bind = (Pt._plan or _Plan.of(Pt)).bind
    assert bind(True, 1, __faust={"ns": "x"}) == {"x": 1, "y": 0}
    assert bind(False, **{"x": 1, "__faust": None}) == {"x": 1, "y": 0}
    for args, kwargs in [((True, 1, 2, 3), {}), ((True, 1), {"z": 1}),
                         ((False, 1), {"__strict__": False})]:
        with pytest.raises(TypeError):
            bind(*args, **kwargs)
    assert bind(False, 1, z=1) == {"x": 1, "y": 0}
