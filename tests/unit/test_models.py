"""Records: fields, construction, (de)serialization, polymorphism, coercion and validation."""

import datetime as dt
import typing
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detstream import codecs
from detstream.errors import CodecError, InvalidArgument, ValidationError
from detstream.models import FieldDescriptor, Model, Record, registry


class Point(Record):
    x: int
    y: int = 0


class Point3(Point):
    z: int = 0


class Customer(Record):
    id: str
    name: str | None = None


class Order(Record):
    customer: Customer
    lines: list[Point] = []
    by_name: dict[str, Point] = {}
    tags: set[str] = set()
    pair: tuple[int, str] = (0, "")
    extra: Point | None = None


class Animal(Record, abstract=True):
    name: str


class Dog(Animal):
    barks: bool = True


class Cat(Animal, namespace="test.models.Cat"):
    lives: int = 9


class Zoo(Record):
    animals: list[Animal]


class Event(Record, isodates=True, decimals=True):
    at: dt.datetime
    amount: Decimal
    day: dt.date | None = None


class Strict(Record, validation=True):
    count: int
    ratio: float = 0.0
    label: str | None = None
    flag: bool = False
    blob: bytes = b""
    points: list[Point] = []
    scores: dict[str, int] = {}


class Node(Record):
    value: int
    children: "list[Node]" = []


# -- fields and construction ----------------------------------------------------------------
def test_positional_and_keyword_construction() -> None:
    assert Point(1, 2) == Point(x=1, y=2) == Point(1, y=2)
    assert Point(1).y == 0


def test_missing_required_field_names_it() -> None:
    with pytest.raises(TypeError, match="missing required field.*'x'"):
        Point()


def test_optional_without_default_is_still_required() -> None:
    class Maybe(Record):
        value: int | None

    with pytest.raises(TypeError, match="'value'"):
        Maybe()
    assert Maybe(None).value is None


def test_unknown_keyword_names_it() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'w'"):
        Point(1, w=3)


def test_too_many_positional_and_duplicates_raise() -> None:
    with pytest.raises(TypeError, match="positional"):
        Point(1, 2, 3)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)


def test_subclass_inherits_and_adds_fields() -> None:
    assert list(Point3._fields) == ["x", "y", "z"]
    assert Point3(1, 2, 3).asdict() == {"x": 1, "y": 2, "z": 3}


def test_required_after_default_is_rejected_at_class_creation() -> None:
    with pytest.raises(InvalidArgument, match="required field 'b' follows field 'a'"):

        class Bad(Record):
            a: int = 0
            b: int


def test_field_name_clashing_with_method_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="dumps"):

        class Clash(Record):
            dumps: str


def test_mutable_defaults_are_copied_per_instance() -> None:
    first, second = Order(Customer("a")), Order(Customer("b"))
    first.lines.append(Point(1))
    assert second.lines == []


def test_post_init_runs_after_fields_are_set() -> None:
    class Area(Record):
        w: int
        h: int

        def __post_init__(self) -> None:
            self.area = self.w * self.h

    assert Area(2, 3).area == 6


def test_model_alias_is_record() -> None:
    assert Model is Record


# -- field descriptors ------------------------------------------------------------------------
def test_field_descriptor_describes_the_field() -> None:
    descriptor = Point.y
    assert isinstance(descriptor, FieldDescriptor)
    assert (descriptor.field, descriptor.type, descriptor.model) == ("y", int, Point)
    assert (descriptor.required, descriptor.default) == (False, 0)
    assert Point.x.required is True
    assert repr(Point.y) == "<FieldDescriptor: Point.y: int = 0>"


def test_field_descriptor_getattr_reads_instances() -> None:
    assert Point.x.getattr(Point(7)) == 7
    assert Point(7).x == 7


def test_nested_field_descriptor_follows_path() -> None:
    order = Order(Customer("c1", "Ann"))
    descriptor = Order.customer.id
    assert descriptor.ident == "Order.customer.id"
    assert descriptor.getattr(order) == "c1"
    with pytest.raises(AttributeError, match="no field 'nope'"):
        Order.customer.nope  # noqa: B018


def test_subclass_descriptors_belong_to_subclass() -> None:
    assert Point3.x.model is Point3
    assert Point.x.model is Point


# -- representation -----------------------------------------------------------------------------
def test_repr_lists_fields() -> None:
    assert repr(Point(1)) == "<Point: x=1, y=0>"  # Faust's form


def test_asdict_is_shallow() -> None:
    order = Order(Customer("c"))
    assert order.asdict()["customer"] is order.customer


def test_to_representation_converts_nested_and_adds_namespace() -> None:
    rep = Order(Customer("c"), lines=[Point(1)]).to_representation()
    assert rep["customer"] == {"id": "c", "name": None, "__faust": {"ns": Customer._options.namespace}}
    assert rep["lines"][0]["x"] == 1
    assert rep["__faust"] == {"ns": f"{__name__}.Order"}
    assert Point(1).__json__() == Point(1).to_representation()


def test_include_metadata_false_omits_namespace() -> None:
    class Bare(Record, include_metadata=False):
        a: int

    assert Bare(1).to_representation() == {"a": 1}
    assert Bare(1).dumps() == b'{"a":1}'


def test_equality_requires_same_type() -> None:
    assert Point(1) != Point3(1)
    assert Point(1) != (1, 0)


def test_hash_follows_fields_and_fails_for_unhashable_values() -> None:
    assert hash(Point(1, 2)) == hash(Point(1, 2))
    assert len({Point(1), Point(1), Point(2)}) == 2
    with pytest.raises(TypeError):
        hash(Order(Customer("c"), lines=[Point(1)]))


def test_derive_copies_with_changes() -> None:
    original = Point(1, 2)
    assert original.derive(y=5) == Point(1, 5)
    assert original.derive({"x": 9}) == Point(9, 2)
    assert original == Point(1, 2)
    with pytest.raises(TypeError, match="'q'"):
        original.derive(q=1)


# -- serialization ------------------------------------------------------------------------------
def test_dumps_loads_round_trip_json() -> None:
    assert Point(3, 4).dumps() == f'{{"x":3,"y":4,"__faust":{{"ns":"{__name__}.Point"}}}}'.encode()
    assert Point.loads(Point(3, 4).dumps()) == Point(3, 4)


def test_serializer_option_and_overrides() -> None:
    class Wrapped(Record, serializer="json|binary"):
        a: int

    data = Wrapped(1).dumps()
    assert codecs.loads("json|binary", data)["a"] == 1
    assert Wrapped.loads(data) == Wrapped(1)
    pickled = Point(1).dumps(serializer="pickle")
    assert Point.loads(pickled, default_serializer="pickle") == Point(1)


def test_loads_ignores_default_when_model_has_serializer() -> None:
    class Own(Record, serializer="binary|binary"):
        a: str

    with pytest.raises(CodecError, match="binary"):
        Own.loads(b'{"a":"x"}', default_serializer="json")


def test_nested_collections_round_trip() -> None:
    order = Order(
        Customer("c", "Ann"),
        lines=[Point(1), Point(2, 3)],
        by_name={"p": Point(4)},
        tags={"b", "a"},
        pair=(1, "one"),
        extra=Point(5),
    )
    decoded = Order.loads(order.dumps())
    assert decoded == order
    assert isinstance(decoded.lines[0], Point) and isinstance(decoded.by_name["p"], Point)
    assert isinstance(decoded.tags, set) and isinstance(decoded.pair, tuple)


def test_from_data_ignores_unknown_keys() -> None:
    assert Point.from_data({"x": 1, "new_field": True}) == Point(1)


def test_from_data_rejects_non_mapping() -> None:
    with pytest.raises(InvalidArgument, match="needs a mapping, got list"):
        Point.from_data([1, 2])


def test_from_data_is_polymorphic_by_namespace() -> None:
    payload = Cat("tom").to_representation()
    assert payload["__faust"] == {"ns": "test.models.Cat"}
    assert Animal.from_data(payload) == Cat("tom")
    assert Point.from_data(Dog("rex").to_representation()) == Dog("rex")


def test_from_data_falls_back_to_preferred_type_then_cls() -> None:
    assert Animal.from_data({"name": "a"}, preferred_type=Dog) == Dog("a")
    unknown = {"x": 1, "__faust": {"ns": "no.such.Model"}}
    assert Point.from_data(unknown) == Point(1)


def test_nested_polymorphic_list() -> None:
    zoo = Zoo([Dog("rex"), Cat("tom", lives=3)])
    decoded = Zoo.loads(zoo.dumps())
    assert decoded.animals == [Dog("rex"), Cat("tom", lives=3)]


def test_typing_module_annotations_as_in_faust_apps() -> None:
    class Legacy(Record, validation=True):
        points: typing.List[Point]  # noqa: UP006
        index: typing.Dict[str, typing.Tuple[int, ...]]  # noqa: UP006
        best: typing.Optional[Point] = None  # noqa: UP045
        seen: typing.FrozenSet[str] = frozenset()  # noqa: UP006

    legacy = Legacy([Point(1)], {"a": (1, 2)}, Point(2), frozenset({"x"}))
    assert Legacy.loads(legacy.dumps()) == legacy
    with pytest.raises(ValidationError, match=r"expected Dict\[str, Tuple\[int, \.\.\.\]\]"):
        Legacy([], {"a": [1]})


def test_forward_reference_resolves_on_first_use() -> None:
    tree = Node(1, [Node(2), Node(3, [Node(4)])])
    assert Node.loads(tree.dumps()) == tree
    assert Node.children.type == list[Node]


# -- dates, decimals, coercion --------------------------------------------------------------------
def test_isodates_and_decimals_parse_strings() -> None:
    event = Event(at="2024-05-01T12:00:00Z", amount="1.10", day="2024-05-02")
    assert event.at == dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc)
    assert event.amount == Decimal("1.10")
    assert event.day == dt.date(2024, 5, 2)
    assert Event.loads(event.dumps()) == event


def test_without_isodates_strings_stay_strings() -> None:
    class Plain(Record):
        at: dt.datetime

    decoded = Plain.loads(Plain(dt.datetime(2024, 1, 1)).dumps())
    assert decoded.at == "2024-01-01T00:00:00"


def test_coerce_converts_scalars_and_nested_models() -> None:
    class Loose(Record, coerce=True):
        n: int
        f: float
        at: dt.datetime
        p: Point

    loose = Loose("5", 1, "2024-01-01T00:00:00", {"x": 2})
    assert (loose.n, loose.f, loose.p) == (5, 1.0, Point(2))
    assert isinstance(loose.f, float) and loose.at == dt.datetime(2024, 1, 1)


def test_bad_coercion_raises_validation_error_naming_field() -> None:
    with pytest.raises(ValidationError, match=r"Event\.at: cannot convert 'yesterday'") as info:
        Event(at="yesterday", amount="1")
    assert info.value.field == "at"


# -- validation -------------------------------------------------------------------------------------
def test_validation_accepts_matching_values() -> None:
    value = Strict(1, 2, "l", True, b"b", [Point(1)], {"a": 1})
    assert value.is_valid()
    assert Strict(1, ratio=2.5).ratio == 2.5


@pytest.mark.parametrize(
    ("kwargs", "field", "expected", "actual"),
    [
        ({"count": "1"}, "count", "int", "str"),
        ({"count": True}, "count", "int", "bool"),
        ({"count": 1, "ratio": "x"}, "ratio", "float", "str"),
        ({"count": 1, "label": 3}, "label", "Optional[str]", "int"),
        ({"count": 1, "flag": 1}, "flag", "bool", "int"),
        ({"count": 1, "blob": "s"}, "blob", "bytes", "str"),
        ({"count": 1, "points": [{"x": 1}]}, "points", "list[Point]", "list"),
        ({"count": 1, "scores": {"a": "1"}}, "scores", "dict[str, int]", "dict"),
    ],
)
def test_validation_error_names_field_expected_and_actual(
    kwargs: dict, field: str, expected: str, actual: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Strict(**kwargs)
    assert info.value.field == field
    assert f"Strict.{field}: expected {expected}, got {actual}" in str(info.value)


def test_validate_collects_all_errors_without_raising() -> None:
    class Loose(Record):
        a: int
        b: str

    value = Loose("x", 2)
    assert [error.field for error in value.validate()] == ["a", "b"]
    assert not value.is_valid()
    with pytest.raises(ValidationError, match="Loose.a"):
        value.validate_or_raise()


def test_validation_of_nested_record_types() -> None:
    class Holder(Record, validation=True):
        point: Point
        when: dt.datetime | None = None
        amount: Decimal | None = None

    assert Holder(Point(1), dt.datetime(2024, 1, 1), Decimal(1)).is_valid()
    with pytest.raises(ValidationError, match="expected Point, got Customer"):
        Holder(Customer("c"))


def test_validation_runs_on_decode() -> None:
    with pytest.raises(ValidationError, match="Strict.count"):
        Strict.loads(b'{"count": "many"}')


# -- options and registry ---------------------------------------------------------------------------
def test_registry_uses_module_qualname_by_default() -> None:
    assert registry[f"{__name__}.Point"] is Point
    assert registry["test.models.Cat"] is Cat


def test_abstract_records_are_not_registered_but_children_are() -> None:
    assert Animal not in registry.values()
    assert registry[f"{__name__}.Dog"] is Dog
    assert Dog._options.abstract is False


def test_options_via_inner_class_and_inheritance() -> None:
    class Base(Record):
        class Options:
            serializer = "json|binary"
            namespace = "test.models.InnerBase"

        a: int

    class Child(Base):
        b: int = 0

    assert Base._options.serializer == "json|binary"
    assert registry["test.models.InnerBase"] is Base
    assert Child._options.serializer == "json|binary"
    assert Child._options.namespace.endswith("Child")


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(InvalidArgument, match="unknown Record option.*serialiser"):

        class Typo(Record, serialiser="json"):
            a: int


# -- property: round trips ----------------------------------------------------------------------------
class Sample(Record):
    n: int
    s: str
    f: float
    b: bool
    o: int | None = None
    os: str | None = None


samples = st.builds(
    Sample,
    n=st.integers(),
    s=st.text(),
    f=st.floats(allow_nan=False),
    b=st.booleans(),
    o=st.none() | st.integers(),
    os=st.none() | st.text(),
)


@given(sample=samples, serializer=st.sampled_from(["json", "json|binary"]))
def test_round_trip_property(sample: Sample, serializer: str) -> None:
    assert Sample.loads(sample.dumps(serializer=serializer), default_serializer=serializer) == sample



def test_abstract_model_needs_a_namespace_to_decode() -> None:
    with pytest.raises(InvalidArgument, match="abstract Animal"):
        Animal.from_data({"name": "x"})


def test_polymorphic_fields_allow_any_registered_model() -> None:
    class Box(Record, polymorphic_fields=True):
        item: Point

    class StrictBox(Record):
        item: Point

    payload = {"item": Customer("c").to_representation()}
    assert Box.from_data(payload).item == Customer("c")
    with pytest.raises(ValidationError, match=r"StrictBox\.item: cannot convert.*missing.*'x'"):
        StrictBox.from_data(payload)  # Customer is not a Point: built as Point, fields missing


def test_mixins_keep_base_record_options() -> None:
    class Mixin:
        def describe(self) -> str:
            return "mixed"

    class Base(Record, serializer="json|binary"):
        n: int

    class Mixed(Mixin, Base):
        pass

    assert Mixed._options.serializer == "json|binary"
    assert Mixed(1).describe() == "mixed"


def test_malformed_namespace_metadata_is_ignored() -> None:
    assert Point.from_data({"x": 1, "__faust": {"ns": ["not", "a", "str"]}}) == Point(1)
    assert Point.from_data({"x": 1, "__faust": "junk"}) == Point(1)


def test_coerce_converts_inside_containers() -> None:
    class Prices(Record, coerce=True):
        by_sku: dict[str, float]
        history: list[Decimal] = []

    prices = Prices({"a": 1}, ["1.5"])
    assert isinstance(prices.by_sku["a"], float)
    assert prices.history == [Decimal("1.5")]


def test_unconverted_containers_keep_identity() -> None:
    class Log(Record, isodates=True):
        times: list[dt.datetime]
        names: dict[str, str]

    times, names = [dt.datetime(2024, 1, 1)], {"a": "b"}
    log = Log(times, names)
    assert log.times is times and log.names is names
    assert Log(["2024-01-01T00:00:00"], {}).times == times


# -- one registry per (simulated) process -------------------------------------------------------
def test_classes_defined_under_use_registry_stay_in_that_registry() -> None:
    from detstream.models import reset_registry, use_registry

    own: dict[str, type[Record]] = {}
    token = use_registry(own)
    try:
        class Parcel(Record, namespace="test.models.Parcel"):
            weight: int

        assert own == {"test.models.Parcel": Parcel}
        assert registry["test.models.Parcel"] is Parcel
        decoded = Record.from_data({"weight": 2, "__faust": {"ns": "test.models.Parcel"}})
        assert type(decoded) is Parcel
    finally:
        reset_registry(token)
    assert "test.models.Parcel" not in registry
    assert registry[f"{__name__}.Point"] is Point  # the process registry is back


def test_a_payload_decodes_to_the_class_of_the_reading_context() -> None:
    """Two copies of a class (two simulated workers): each context decodes to its own."""
    from detstream.models import reset_registry, use_registry

    copies = []
    for _ in range(2):
        token = use_registry({})
        try:
            class Twin(Record, namespace="test.models.Twin"):
                n: int

            copies.append(Twin)
            payload = Twin(n=1).to_representation()
            assert type(Record.from_data(payload)) is Twin
            assert type(Twin.loads(Twin(n=3).dumps())) is Twin
        finally:
            reset_registry(token)
    assert copies[0] is not copies[1]


def test_record_bytes_are_those_faust_streaming_writes() -> None:
    """A nested Record with a datetime, a Decimal and non-ASCII text, as faust-streaming 0.15.3
    writes it (``Outer(...).dumps(serializer="json")`` there, byte for byte)."""
    import datetime
    import decimal
    import typing

    class Inner(Record, namespace="t.wire.Inner"):
        k: str
        when: datetime.datetime

    class Outer(Record, namespace="t.wire.Outer"):
        name: str
        inner: Inner
        items: typing.List[Inner]  # noqa: UP006 - as the Faust project wrote it
        price: decimal.Decimal
        tags: typing.Dict[str, int]  # noqa: UP006

    utc = datetime.timezone.utc
    outer = Outer(name="Zoë", inner=Inner(k="a", when=datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=utc)),
                  items=[Inner(k="b", when=datetime.datetime(2024, 1, 1))], price=decimal.Decimal("9.99"),
                  tags={"x": 1})
    assert outer.dumps() == (
        b'{"name":"Zo\\u00eb","inner":{"k":"a","when":"2024-05-06T07:08:09.123456Z",'
        b'"__faust":{"ns":"t.wire.Inner"}},"items":[{"k":"b","when":"2024-01-01T00:00:00",'
        b'"__faust":{"ns":"t.wire.Inner"}}],"price":"9.99","tags":{"x":1},"__faust":{"ns":"t.wire.Outer"}}'
    )
    assert Outer.loads(outer.dumps()).inner.k == "a"


# -- maybe_model, and dates across the simulator's sandbox ------------------------------------------
class Holder(Record):
    value: typing.Any


def test_maybe_model_builds_back_a_record_kept_as_its_payload():
    from detstream.models import maybe_model

    kept = Holder.loads(Holder(Point(1, 2)).dumps()).value
    assert isinstance(kept, dict) and maybe_model(kept) == Point(1, 2)
    assert maybe_model({"x": 1}) == {"x": 1} and maybe_model(3) == 3
    assert maybe_model({"x": 1, "__faust": {"ns": "no.such.Model"}}) == {"x": 1, "__faust": {"ns": "no.such.Model"}}


class Stamped(Record, isodates=True):
    at: dt.datetime
    on: dt.date


def test_dates_of_a_record_defined_outside_the_sandbox_decode_inside_it():
    """The sandbox swaps ``datetime.datetime`` for a subclass while it runs (virtual now()):
    a Record class made before it, first used inside it, still converts its dates."""
    from sim.testing import run_sandboxed

    payload = b'{"at": "2024-01-02T03:04:00+00:00", "on": "2024-01-02"}'

    async def decode() -> Stamped:
        return Stamped.loads(payload)  # type: ignore[return-value]

    back = run_sandboxed(decode, seed=1)
    assert back.at == dt.datetime(2024, 1, 2, 3, 4, tzinfo=dt.timezone.utc)
    assert back.on == dt.date(2024, 1, 2) and isinstance(back.at, dt.datetime)
