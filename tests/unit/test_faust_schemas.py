"""Faust's Schema dialect and ``app.serializers`` (models.rst "Schemas"), on the simulator.

A Schema subclass written for Faust (``loads_key(app, message, ...)``, header hooks)
is called by its topic's sends and its stream's decoding; ``app.serializers`` is
Faust's Registry with the Schema's bytes; a topic sends ``bytes`` as they are.
"""

import asyncio

import pytest

import detstream
from detstream.errors import ImproperlyConfigured, KeyDecodeError, ValueDecodeError
from detstream.faust_compat import faust_alias
from detstream.headers import merge_headers
from detstream.models import registry
from detstream.partitioner import partition_for_key
from detstream.serializer_registry import Registry
from detstream.serializers import Schema
from detstream.types import ModelT
from sim.cluster import ClusterConfig
from sim.testing import run_app

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class Point(detstream.Record, serializer="json"):
    x: int
    y: int


class Label(detstream.Record):
    text: str


class Autodetect(detstream.Schema):
    """models.rst's schema: the key and value types travel in the record's headers."""

    def loads_key(self, app, message, *, loads=None, serializer=None):
        if loads is None:
            loads = app.serializers.loads_key
        headers = dict(message.headers)
        key_type_name = headers.get("KeyType")
        serializer = serializer or headers.get("KeySerializer")
        if key_type_name:
            key_type = registry[key_type_name.decode()]
            return loads(key_type, message.key, serializer=serializer)
        return super().loads_key(app, message, loads=loads, serializer=serializer)

    def loads_value(self, app, message, *, loads=None, serializer=None):
        if loads is None:
            loads = app.serializers.loads_value
        headers = dict(message.headers)
        value_type_name = headers.get("ValueType")
        serializer = serializer or headers.get("ValueSerializer")
        if value_type_name:
            value_type = registry[value_type_name.decode()]
            return loads(value_type, message.value, serializer=serializer)
        return super().loads_value(app, message, loads=loads, serializer=serializer)

    def on_dumps_key_prepare_headers(self, key, headers):
        if isinstance(key, ModelT):
            return merge_headers(headers, {"KeyType": key._options.namespace})
        return headers

    def on_dumps_value_prepare_headers(self, value, headers):
        if isinstance(value, ModelT):
            return merge_headers(headers, {"ValueType": value._options.namespace})
        return headers


def test_a_faust_schema_subclass_types_records_by_their_headers():
    app = detstream.App("autodetect", broker="sim://")
    topic = app.topic("mytopic", schema=Autodetect())
    seen = []

    @app.agent(topic)
    async def read(stream):
        async for event in stream.events():
            seen.append((event.key, event.value))

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(key=Point(1, 2), value=Label("a"), headers={"Trace": b"1"})
        await topic.send(key=b"plain", value={"no": "type"})
        await asyncio.sleep(3)
        return {r.key: dict(r.headers) for r in cluster.records("mytopic")}

    headers = run_app(app, body, config=FAST)
    ns = Point._options.namespace
    assert headers[b"plain"] == {}
    assert headers[Point(1, 2).dumps()] == {
        "Trace": b"1", "KeyType": ns.encode(), "ValueType": Label._options.namespace.encode()}
    assert sorted(seen, key=repr) == sorted(
        [(Point(1, 2), Label("a")), (b"plain", {"no": "type"})], key=repr)


def test_an_error_in_a_faust_loads_is_a_decode_error_naming_the_message():
    class Broken(detstream.Schema):
        def loads_value(self, app, message, *, loads=None, serializer=None):
            raise LookupError("no such type")

    app = detstream.App("broken-schema", broker="sim://")
    topic = app.topic("t", schema=Broken())
    message = type("M", (), {"key": None, "value": b"1", "headers": (), "topic": "t",
                             "partition": 0, "offset": 7})()
    with pytest.raises(ValueDecodeError, match=r"no such type.*offset=7"):
        topic.schema.loads_message(message, None, None)
    with pytest.raises(ImproperlyConfigured, match="app.topic"):
        Broken().loads_message(message, None, None)  # no channel gave it its app


def test_the_faust_dialect_by_hand():
    app = detstream.App("dialect", key_serializer="json")
    schema = Schema(key_type=Point, value_type=Label)
    message = type("M", (), {"key": Point(1, 2).dumps(), "value": Label("z").dumps(),
                             "headers": ()})()
    assert schema.loads_key(app, message) == Point(1, 2)
    assert schema.loads_value(app, message) == Label("z")
    headers = {"h": b"1"}
    assert schema.dumps_key(app, Point(1, 2), headers=headers) == (Point(1, 2).dumps(), headers)
    assert schema.dumps_value(app, Label("z"), headers=headers) == (Label("z").dumps(), headers)
    # detstream's dialect, one positional argument, is as it was
    assert schema.dumps_key(Point(1, 2)) == Point(1, 2).dumps()
    assert schema.loads_key(Point(1, 2).dumps()) == Point(1, 2)


def test_app_serializers_is_fausts_registry():
    app = detstream.App("registry", key_serializer="json")
    serializers = app.serializers
    assert isinstance(serializers, Registry)
    assert (serializers.key_serializer, serializers.value_serializer) == ("json", "json")
    point = Point(1, 2).dumps()
    # bytes as faust-streaming 0.15.3's app.serializers writes them
    assert serializers.dumps_key(None, "k") == b'"k"'
    assert serializers.dumps_key(None, b"k") == b"k"
    assert serializers.dumps_key(Point, Point(1, 2)) == point
    assert serializers.dumps_key(None, {"a": 1}) == b'{"a":1}'
    assert serializers.dumps_value(None, {"a": 1}) == b'{"a":1}'
    assert serializers.dumps_value(None, b"raw") == b"raw"
    assert serializers.dumps_value(None, 5) == b"5"
    assert serializers.loads_key(Point, point) == Point(1, 2)
    assert serializers.loads_value(None, point) == Point(1, 2)
    assert serializers.loads_key(None, b'"k"') == "k"
    assert serializers.loads_value(int, b"5") == 5
    assert serializers.loads_value(Label, b'{"text":"t"}', serializer="json") == Label("t")
    with pytest.raises(ValueDecodeError):
        serializers.loads_value(Point, b"xx")
    with pytest.raises(KeyDecodeError):
        serializers.loads_key(Point, b"xx")


def test_a_topic_sends_bytes_as_they_are_whatever_the_codec():
    # faust-streaming: a bytes key or value is not encoded (already serialized)
    app = detstream.App("bytes-as-is", broker="sim://", key_serializer="json")
    topic = app.topic("untyped")

    async def body(cluster):
        await topic.send(key=b"k", value=b'{"a":1}')
        await topic.send(key="k", value={"a": 1})
        await asyncio.sleep(1)
        return [(r.key, r.value) for r in cluster.records("untyped")]

    records = run_app(app, body, config=FAST)
    assert records == [(b"k", b'{"a":1}'), (b'"k"', b'{"a":1}')]
    # table_route/topic_route place a bytes key where the topic sends it
    assert app.router.topic_partition(topic, b"k", partitions=8) == partition_for_key(b"k", 8)


def test_a_schema_given_with_types_is_updated_by_them_as_in_faust():
    app = detstream.App("update")
    schema = Schema(key_serializer="json")
    topic = app.topic("t", schema=schema, value_type=Point)
    assert topic.schema is schema
    assert (schema.key_serializer, schema.value_type, topic.value_type) == ("json", Point, Point)


def test_faust_names_for_the_schema_example_import_through_the_alias():
    with faust_alias():
        import faust
        from faust.models import registry as faust_registry
        from faust.serializers import Registry as FaustRegistry
        from faust.types import ModelT as FaustModelT
        from faust.types.core import merge_headers as faust_merge_headers

    assert faust.Schema is Schema
    assert faust_registry is registry
    assert FaustRegistry is Registry
    assert FaustModelT is detstream.Record
    headers = [("a", b"1")]
    assert faust_merge_headers(headers, {"b": "2"}) is None
    assert headers == [("a", b"1"), ("b", b"2")]
