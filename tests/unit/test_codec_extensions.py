"""Codecs of your own, as Faust's models guide writes them: a Codec subclass, ``|``, register,
serialization by name, and installable codec extensions (the ``faust.codecs`` entry point)."""

import base64
import json
import logging
import textwrap
from typing import Any

import pytest

import detstream
from detstream import codecs
from detstream.errors import InvalidArgument
from detstream.faust_compat import faust_alias


class raw_upper(codecs.Codec):  # noqa: N801 - named as the guide names its raw_msgpack
    def _dumps(self, obj: Any) -> bytes:
        return json.dumps(obj).upper().encode()

    def _loads(self, s: bytes) -> Any:
        return json.loads(s.decode().lower())


def upper() -> codecs.Codec:
    return raw_upper() | codecs.binary()


@pytest.fixture
def registry():
    """Leave the codec registry as it was."""
    saved = dict(codecs.codecs)
    loaded = codecs._extensions_loaded
    yield codecs.codecs
    codecs.codecs.clear()
    codecs.codecs.update(saved)
    codecs._extensions_loaded = loaded


def test_serialization_by_name():
    data = codecs.dumps("json", {"x": 1})
    assert data == b'{"x":1}'
    assert codecs.loads("json", data) == {"x": 1}
    assert codecs.loads("json|binary", codecs.dumps("json|binary", [1])) == [1]


def test_a_codec_subclass_combined_with_binary_and_registered(registry):
    codecs.register("upper", upper())
    assert codecs.get_codec("upper").name == "upper"  # named by its key in error messages

    class Point(detstream.Record, serializer="upper"):
        x: str

    data = Point("ab").dumps()
    assert base64.b64decode(data).startswith(b'{"X": "AB", "__FAUST"')  # upper, then base64
    assert Point.loads(data) == Point("ab")


def test_a_codec_keeps_its_keyword_arguments_and_refuses_children():
    class Tagged(codecs.Codec):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)

    assert Tagged(level=3).kwargs == {"level": 3}
    with pytest.raises(InvalidArgument, match=r"chain codecs with \|"):
        codecs.Codec(children=(codecs.binary(),))


def write_extension(tmp_path, entry_points: str) -> None:
    (tmp_path / "faust_upperish.py").write_text(textwrap.dedent('''
        import json
        from typing import Any

        from faust.serializers import codecs


        class raw_upper(codecs.Codec):
            def _dumps(self, obj: Any) -> bytes:
                return json.dumps(obj).upper().encode()

            def _loads(self, s: bytes) -> Any:
                return json.loads(s.decode().lower())


        def upperish() -> codecs.Codec:
            return raw_upper() | codecs.binary()
    '''))
    info = tmp_path / "faust_upperish-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: faust-upperish\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def test_an_installed_codec_extension_is_found_by_name(tmp_path, monkeypatch, registry, caplog):
    write_extension(tmp_path, """
        [faust.codecs]
        upperish = faust_upperish:upperish
        broken = faust_upperish:missing
        json = faust_upperish:upperish
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    codecs._extensions_loaded = False
    with faust_alias(), caplog.at_level(logging.WARNING, logger="detstream.codecs"):

        class Note(detstream.Record, serializer="upperish"):
            text: str

        data = Note("hi").dumps()
        assert Note.loads(data) == Note("hi")
        assert codecs.loads("upperish", codecs.dumps("upperish", {"a": 1})) == {"a": 1}
    assert "upperish" in codecs.codecs
    assert "broken" not in codecs.codecs
    assert "broken = faust_upperish:missing" in caplog.text  # logged, skipped
    assert codecs.dumps("json", {"a": 1}) == b'{"a":1}'  # a built-in is never replaced
