"""A ``value_type=str`` topic carries JSON text, as in Faust; ``value_serializer="raw"`` plain text.

Faust's Registry falls back to raw for str only when no serializer is set at
all, and the app's default value_serializer is json: a Faust producer writes
``"v"``. A detstream worker sharing the topic must read and write the same.
"""

import json

import pytest

from detstream.errors import ValueDecodeError
from detstream.serializers import Schema
from sim import runner

APP = "tests/apps/text_topics.py"


def test_a_str_value_is_json_text_under_the_default_and_raw_when_named():
    assert Schema(value_type=str).encode_value("v") == b'"v"'
    assert Schema(value_type=str).decode_value(b'"v"') == "v"
    assert Schema(value_type=str, value_serializer="raw").encode_value("v") == b"v"
    assert Schema(value_type=bytes).encode_value(b"v") == b"v"  # bytes stay raw (Faust's read JSON)
    assert Schema(key_type=str).encode_key("k") == b"k"  # keys: the raw key default, as Faust


def test_plain_text_on_a_json_str_topic_says_what_to_change():
    with pytest.raises(ValueDecodeError) as caught:
        Schema(value_type=str).decode_value(b"plain", topic="notes", partition=1, offset=4)
    message = str(caught.value)
    assert "value_serializer='raw'" in message and "notes" in message and "offset=4" in message


def test_sim_clients_write_text_as_each_topic_reads_it():
    report = runner.run(APP, runner.SimOptions(seed=3, workers=2, duration=10.0))
    assert report.ok, report.violations
    notes = [json.loads(r.value) for r in report.cluster.records("notes")]
    lines = [r.value.decode() for r in report.cluster.records("lines")]
    assert sorted(notes) == sorted(['buy milk', 'say "hi"', "ünïcode"])
    assert sorted(lines) == ["no quotes", "plain text"]
    assert [(r.key, r.value) for r in report.cluster.records("tagged")] == [(b'"k1"', b'"one"')]


def test_a_client_writes_the_same_bytes_whatever_state_the_first_worker_is_in():
    """global_lookup, chaos seed 6, production driver: w1 crashes at 3.6 s and restarts at 9 s,
    while the orders feed begins at 9.6 s. Its encoders were looked up then, on w1's new App,
    whose agents had not subscribed yet: no topic read as str, so the orders went out as plain
    text and every one was undecodable. Encoders are now fixed when the feeds are launched."""
    from tests.pinned_run import run_pinned

    outcome = run_pinned("global_lookup", "chaos", 6)
    assert outcome["ok"], outcome["violations"]
    assert "decode-error" not in outcome["kinds"]
