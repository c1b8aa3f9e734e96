"""The C JSON decoder (msgspec, when installed) decodes to exactly what ``json.loads`` does.

``detstream.codecs`` decodes JSON with msgspec when it is importable and
falls back to the stdlib for what msgspec refuses. Values and types must be
the same either way, or a worker's behaviour (and a sim trace) would depend
on an optional package.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detstream import codecs
from detstream.errors import CodecError

pytestmark = pytest.mark.skipif(codecs._FAST_DECODE is None, reason="msgspec is not installed")


def _same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (floats bit for bit, NaN included)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


def _stdlib_decode(data: bytes) -> Any:
    saved = codecs._FAST_DECODE
    codecs._FAST_DECODE = None
    try:
        return codecs.loads("json", data)
    finally:
        codecs._FAST_DECODE = saved


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(min_value=-(2**200), max_value=2**200) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(JSON_VALUES, st.booleans())
def test_decoded_values_match_the_stdlib(value: Any, ascii_only: bool) -> None:
    try:
        data = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate in the text: not writable as UTF-8 unescaped
    assert _same(codecs.loads("json", data), json.loads(data))


@settings(max_examples=400, deadline=None)
@given(st.from_regex(r"\A-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,3})?\Z"))
def test_number_literals_match_the_stdlib(literal: str) -> None:
    """Every spelling of a number, as long and as far out of range as it gets."""
    data = literal.encode()
    assert _same(codecs.loads("json", data), json.loads(data))


@pytest.mark.parametrize("text", [
    "NaN", "[Infinity,-Infinity]", "1e400", "-1e400", '"\\ud800"', '{"a":1,"a":2}',
    "18446744073709551616", "-9223372036854775809", "123456789012345678901234567890",
    '"\\ud83d\\ude00"', " [ ] ", "-0", "-0.0", "2.5e-324",
])
def test_what_msgspec_refuses_or_bends_decodes_as_the_stdlib_does(text: str) -> None:
    decoded = codecs.loads("json", text.encode())
    expected = json.loads(text)
    assert _same(decoded, expected) or (isinstance(expected, float) and math.isnan(expected))


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf{}", b'"\x00"', b"{", b"\xff", b"[1,]", b"{}x"])
def test_malformed_input_fails_with_the_stdlib_error(data: bytes) -> None:
    with pytest.raises(CodecError) as fast:
        codecs.loads("json", data)
    with pytest.raises(CodecError) as slow:
        _stdlib_decode(data)
    assert str(fast.value) == str(slow.value)
