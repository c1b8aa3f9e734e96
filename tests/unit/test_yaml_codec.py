"""Faust's ``yaml`` codec: PyYAML's safe loader and dumper, by name, in Records and pipelines."""

import sys

import pytest

import detstream
from detstream import codecs
from detstream.errors import CodecError, ImproperlyConfigured
from detstream.serializers import Schema


def test_yaml_round_trips_what_safe_dump_writes():
    data = {"name": "ann", "tags": ["a", "b"], "n": 3}
    dumped = codecs.dumps("yaml", data)
    assert dumped == b"n: 3\nname: ann\ntags:\n- a\n- b\n"  # PyYAML's safe_dump, sorted keys
    assert codecs.loads("yaml", dumped) == data
    assert codecs.loads("yaml|binary", codecs.dumps("yaml|binary", data)) == data


def test_the_safe_loader_refuses_python_objects():
    with pytest.raises(CodecError, match="yaml"):
        codecs.loads("yaml", b"!!python/object/apply:os.system ['true']")


def test_a_record_and_a_topic_schema_take_it_by_name():
    class Point(detstream.Record, serializer="yaml"):
        x: int
        y: int

    assert Point.loads(Point(x=1, y=2).dumps()) == Point(x=1, y=2)
    schema = Schema(value_type=dict, value_serializer="yaml")
    assert schema.decode_value(schema.encode_value({"a": 1})) == {"a": 1}


def test_without_pyyaml_configuring_it_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)  # what an import of a missing package meets
    with pytest.raises(ImproperlyConfigured, match="pip install PyYAML"):
        Schema(value_type=dict, value_serializer="yaml")
