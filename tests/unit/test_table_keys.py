"""Table keys and values round-trip their changelog, or the write is refused at once."""

import datetime

import pytest

import detstream
from detstream._types import ConsumerRecord
from detstream.errors import TableWriteError
from detstream.tables.codecs import TableKeyCodec, WindowedKeyCodec


class Point(detstream.Record):
    x: int
    y: int


def table(**options):
    app = detstream.App("keys", broker="sim://")
    return app.Table("t", default=int, **options)


def round_trip(t, key, value=1):
    """What recovery decodes from the record a write of ``key`` sends."""
    key_bytes, value_bytes = t._changelog_bytes(key, value)
    record = ConsumerRecord(t.changelog_name, 0, 0, 0.0, key_bytes, value_bytes)
    return t._decode_record(record), key_bytes


@pytest.mark.parametrize(
    "key",
    ["a", 1, 2.5, True, b"a", b"\xff\x00", ("a", b"b", 3), (("n", 1), b"x"), Point(1, 2)],
)
def test_keys_of_a_table_without_key_type_come_back_as_written(key):
    (back, value), _ = round_trip(table(), key)
    assert back == key and type(back) is type(key) and value == 1


def test_bytes_keys_are_tagged_and_other_keys_are_fausts_json():
    t = table()
    assert round_trip(t, b"a")[1] == b'{"__bytes__":"a"}'
    assert round_trip(t, b"\xff")[1] == b'{"__bytes_b64__":"/w=="}'
    assert round_trip(t, "a")[1] == b'"a"'  # what Faust writes
    assert round_trip(t, ("a", 1))[1] == b'["a",1]'


def test_key_type_bytes_round_trips_utf8_keys_with_fausts_bytes():
    t = table(key_type=bytes)
    (back, _), raw = round_trip(t, b"a")
    assert back == b"a" and raw == b'"a"'


@pytest.mark.parametrize(
    ("options", "key", "comes_back_as"),
    [
        ({}, datetime.date(2024, 1, 2), "'2024-01-02' (str)"),
        ({}, frozenset({1}), "(1,) (tuple)"),
        ({"key_type": str}, b"a", "'a' (str)"),
    ],
)
def test_a_key_that_would_come_back_different_is_refused(options, key, comes_back_as):
    t = table(**options)
    with pytest.raises(TableWriteError, match="would come back") as info:
        t._changelog_bytes(key, 1)
    assert "table 't'" in str(info.value) and comes_back_as in str(info.value)


def test_a_str_key_refused_once_is_refused_again_and_a_good_one_keeps_its_bytes():
    """Checked str keys are remembered (a counter writes few keys often): only good ones."""
    t = table(key_type=int)
    for _ in range(2):
        with pytest.raises(TableWriteError, match="would come back"):
            t._changelog_bytes("1", 1)
    good = table()
    first = good._changelog_bytes("word", 1)
    assert good._changelog_bytes("word", 2) == (first[0], b"2") == (b'"word"', b"2")
    typed = table(value_type=int)
    typed._changelog_bytes("word", 1)
    with pytest.raises(TableWriteError, match="value of key 'word' .* cannot decode"):
        typed._changelog_bytes("word", "x")  # a remembered key: its value is still checked


def test_int_values_keep_their_bytes_and_are_not_confused_with_equal_values_of_other_types():
    """A counter writes the same int values often: their bytes are remembered, per type."""
    t = table()
    writes = [1, 2, 1, True, 1.0, 1, False, 0]
    assert [t._changelog_bytes("k", value)[1] for value in writes] == [
        b"1", b"2", b"1", b"true", b"1.0", b"1", b"false", b"0"
    ]
    typed = table(value_type=str)
    with pytest.raises(TableWriteError, match="cannot decode"):
        typed._changelog_bytes("k", 5)
    with pytest.raises(TableWriteError, match="cannot decode"):
        typed._changelog_bytes("k", 5)  # refused again: only checked bytes are remembered


def test_a_value_the_changelog_cannot_encode_or_decode_is_refused():
    with pytest.raises(TableWriteError, match="table 't': cannot write key 'k'"):
        table()._changelog_bytes("k", object())
    with pytest.raises(TableWriteError, match="value of key 'k' .* cannot decode"):
        table(value_type=int)._changelog_bytes("k", "not a number")


def test_windowed_keys_keep_their_bytes():
    codec = WindowedKeyCodec()
    key = (b"k", (60.0, 119.9))
    assert codec.loads(codec.dumps(key)) == key
    assert WindowedKeyCodec(bytes).loads(b'["k",[60.0,119.9]]') == key


def test_table_key_codec_reads_fausts_bytes():
    codec = TableKeyCodec()
    assert codec.loads(b'["a",[1,2]]') == ("a", (1, 2))
    assert codec.loads(b'{"__bytes__":"a"}') == b"a"
