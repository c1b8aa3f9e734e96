"""The pickle codecs of Faust's models guide: pickle, pickle_restricted, pickle_fickling.

Their bytes are faust-streaming 0.15.3's (taken from it, the constants below); the
SecurityWarning comes where Faust's does; restricted and Fickling-checked loading refuse
with ``pickle.UnpicklingError``.
"""

import base64
import collections
import datetime as dt
import os
import pickle
import sys
import types
import uuid
import warnings
from decimal import Decimal

import pytest

import detstream
from detstream import codecs
from detstream.codecs import RestrictedUnpickler
from detstream.errors import CodecError, ImproperlyConfigured, SecurityWarning, UnpicklingRefused
from detstream.faust_compat import faust_alias
from detstream.serializers import Schema

#: What faust-streaming 0.15.3 writes for these values (codecs.dumps(name, value) there).
FAUST_BYTES = {
    ("pickle", "dict"): b"gASVCgAAAAAAAAB9lIwBYZRLAXMu",
    ("pickle", "list"): b"gASVFgAAAAAAAABdlChLAYwBeJRHQAQAAAAAAABOiGUu",
    ("pickle_restricted", "dict"): b"gAWVCgAAAAAAAAB9lIwBYZRLAXMu",
    ("pickle_restricted", "list"): b"gAWVFgAAAAAAAABdlChLAYwBeJRHQAQAAAAAAABOiGUu",
    ("pickle_fickling", "dict"): b"gAWVCgAAAAAAAAB9lIwBYZRLAXMu",
    ("pickle_fickling", "list"): b"gAWVFgAAAAAAAABdlChLAYwBeJRHQAQAAAAAAABOiGUu",
}
VALUES = {"dict": {"a": 1}, "list": [1, "x", 2.5, None, True]}
#: the stdlib values the default allowlist covers, pickled by faust-streaming 0.15.3.
STDLIB = {
    "d": dt.datetime(2020, 1, 2, 3, 4, 5), "dec": Decimal("1.5"), "u": uuid.UUID(int=5),
    "s": {1, 2}, "b": b"xy", "ba": bytearray(b"z"), "od": collections.OrderedDict(a=1),
}
FAUST_STDLIB = (
    b"gAWVzQAAAAAAAAB9lCiMAWSUjAhkYXRldGltZZSMCGRhdGV0aW1llJOUQwoH5AECAwQFAAAAlIWUUpSMA2RlY5SMB2Rl"
    b"Y2ltYWyUjAdEZWNpbWFslJOUjAMxLjWUhZRSlIwBdZSMBHV1aWSUjARVVUlElJOUKYGUfZSMA2ludJRLBXNijAFzlI+U"
    b"KEsBSwKQjAFilEMCeHmUjAJiYZSWAQAAAAAAAAB6lIwCb2SUjAtjb2xsZWN0aW9uc5SMC09yZGVyZWREaWN0lJOUKVKU"
    b"jAFhlEsBc3Uu"
)


class Evil:
    """A payload that runs a command when plain pickle loads it."""

    def __reduce__(self):
        return (os.system, ("echo owned",))


class Order:
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Order) and other.n == self.n


def evil_payload() -> bytes:
    return base64.b64encode(pickle.dumps(Evil()))


@pytest.mark.parametrize(("codec", "value"), sorted(FAUST_BYTES))
def test_bytes_are_fausts(codec, value):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)
        assert codecs.dumps(codec, VALUES[value]) == FAUST_BYTES[codec, value]
        if codec != "pickle_fickling":  # (needs fickling: below)
            assert codecs.loads(codec, FAUST_BYTES[codec, value]) == VALUES[value]


def test_restricted_round_trips_the_allowlisted_stdlib_types_with_fausts_bytes():
    assert codecs.dumps("pickle_restricted", STDLIB) == FAUST_STDLIB
    assert codecs.loads("pickle_restricted", FAUST_STDLIB) == STDLIB


def test_restricted_refuses_a_class_off_the_allowlist_with_unpickling_error():
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to unpickle posix\.system"):
        codecs.loads("pickle_restricted", evil_payload())
    with pytest.raises(UnpicklingRefused) as info:  # also a CodecError: one type to catch
        codecs.loads("pickle_restricted", evil_payload())
    assert isinstance(info.value, CodecError)
    assert "ALLOWED_CLASSES" in str(info.value)


def test_restricted_refuses_bytearray_as_a_callable():
    # bytearray(2_000_000_000) from a few bytes of payload: not on the allowlist
    payload = base64.b64encode(pickle.dumps(bytearray(b"abc"), protocol=4))
    with pytest.raises(pickle.UnpicklingError, match=r"builtins\.bytearray"):
        codecs.loads("pickle_restricted", payload)


def test_restricted_allowlist_is_extended_as_faust_documents(monkeypatch):
    payload = codecs.dumps("pickle_restricted", Order(3))
    with pytest.raises(pickle.UnpicklingError, match=rf"{__name__}\.Order"):
        codecs.loads("pickle_restricted", payload)
    monkeypatch.setattr(RestrictedUnpickler, "ALLOWED_CLASSES", {
        **RestrictedUnpickler.ALLOWED_CLASSES,
        __name__: frozenset({"Order"}),
    })
    assert codecs.loads("pickle_restricted", payload) == Order(3)
    with pytest.raises(pickle.UnpicklingError):  # still nothing else
        codecs.loads("pickle_restricted", evil_payload())


def test_restricted_malformed_payload_is_an_unpickling_error():
    with pytest.raises(pickle.UnpicklingError, match="malformed|pickle"):
        codecs.loads("pickle_restricted", base64.b64encode(b"\x80\x05\x95"))


def test_restricted_on_a_topic_is_a_value_decode_error_naming_the_class():
    schema = Schema(value_serializer="pickle_restricted")
    with pytest.raises(detstream.errors.ValueDecodeError, match=r"posix\.system"):
        schema.loads_value(evil_payload())


# -- the SecurityWarning of the unrestricted pickle codec ------------------------------------
def test_a_schema_or_topic_configured_with_pickle_warns_where_it_is_configured():
    app = detstream.App("warn-topic")
    with pytest.warns(SecurityWarning, match="pickle_restricted") as caught:
        app.topic("t", value_serializer="pickle")
    assert caught[0].filename == __file__  # the user's line, not detstream's
    with pytest.warns(SecurityWarning):
        Schema(key_serializer="json|pickle")


def test_a_record_with_serializer_pickle_warns_when_a_topic_takes_it():
    class Pickled(detstream.Record, serializer="pickle"):
        x: int

    app = detstream.App("warn-model")
    with pytest.warns(SecurityWarning):
        app.topic("t", value_type=Pickled)


def test_an_app_configured_with_pickle_warns_once_configured():
    app = detstream.App("warn-app", value_serializer="pickle")
    with pytest.warns(SecurityWarning) as caught:
        app.conf  # noqa: B018 - configuring is what warns
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.serializers  # noqa: B018 - made from the app's settings: warned already


def test_every_unpickling_warns_and_safe_codecs_never_do():
    data = codecs.dumps("pickle", {"a": 1})
    for _ in range(2):
        with pytest.warns(SecurityWarning):
            codecs.loads("pickle", data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Schema(value_serializer="pickle_restricted")
        codecs.loads("pickle_restricted", codecs.dumps("pickle_restricted", 1))
        detstream.App("quiet").topic("t", value_serializer="json")


def test_uses_unsafe_pickle_by_name_and_by_codec():
    assert codecs.uses_unsafe_pickle("pickle")
    assert codecs.uses_unsafe_pickle("json | pickle")
    assert codecs.uses_unsafe_pickle(codecs.raw_pickle() | codecs.binary())
    assert codecs.uses_unsafe_pickle(codecs.pickle())
    assert not codecs.uses_unsafe_pickle("pickle_restricted")
    assert not codecs.uses_unsafe_pickle(codecs.pickle_restricted())
    assert not codecs.uses_unsafe_pickle(None)


# -- pickle_fickling --------------------------------------------------------------------------
class FakeUnsafe(Exception):
    pass


@pytest.fixture
def fake_fickling(monkeypatch):
    """A stand-in for Fickling's loader: records its calls, refuses payloads naming 'system'."""
    calls = []
    loader = types.ModuleType("fickling.loader")
    exception = types.ModuleType("fickling.exception")
    exception.UnsafeFileError = FakeUnsafe

    def loads(data, max_acceptable_severity="LIKELY_SAFE"):
        calls.append(max_acceptable_severity)
        if b"system" in data:
            raise FakeUnsafe("overtly malicious")
        return pickle.loads(data)

    loader.loads = loads
    package = types.ModuleType("fickling")
    package.loader, package.exception = loader, exception
    monkeypatch.setitem(sys.modules, "fickling", package)
    monkeypatch.setitem(sys.modules, "fickling.loader", loader)
    monkeypatch.setitem(sys.modules, "fickling.exception", exception)
    return calls


def test_fickling_loads_what_it_accepts_with_its_default_severity(fake_fickling):
    assert codecs.loads("pickle_fickling", FAUST_BYTES["pickle_fickling", "dict"]) == {"a": 1}
    assert fake_fickling == ["LIKELY_SAFE"]  # Fickling's own default: none passed


def test_fickling_refusal_is_an_unpickling_error(fake_fickling):
    with pytest.raises(pickle.UnpicklingError, match="Fickling refused.*malicious"):
        codecs.loads("pickle_fickling", evil_payload())


def test_fickling_factory_takes_a_severity(fake_fickling):
    codec = codecs.pickle_fickling(max_acceptable_severity="SUSPICIOUS")
    assert codec.kwargs == {"max_acceptable_severity": "SUSPICIOUS"}
    assert codec.loads(codec.dumps([1, 2])) == [1, 2]
    assert fake_fickling == ["SUSPICIOUS"]
    app = detstream.App("fick", value_serializer=codec)
    assert app.topic("t").schema.value_serializer is None  # the app's default serves it
    assert app.conf.value_serializer is codec


def test_without_fickling_configuring_it_fails_naming_the_package_and_pip(monkeypatch):
    monkeypatch.setitem(sys.modules, "fickling", None)  # import fails as when not installed
    monkeypatch.setitem(sys.modules, "fickling.loader", None)
    app = detstream.App("no-fickling")
    with pytest.raises(ImproperlyConfigured, match=r"fickling.*pip install fickling"):
        app.topic("t", value_serializer="pickle_fickling")
    with pytest.raises(ImproperlyConfigured, match="pip install fickling"):
        codecs.loads("pickle_fickling", FAUST_BYTES["pickle_fickling", "dict"])


def test_real_fickling_when_installed():
    pytest.importorskip("fickling.loader")
    from fickling.loader import Severity

    assert codecs.loads("pickle_fickling", FAUST_BYTES["pickle_fickling", "dict"]) == {"a": 1}
    with pytest.raises(pickle.UnpicklingError, match="Fickling"):
        codecs.loads("pickle_fickling", evil_payload())
    tolerant = codecs.pickle_fickling(max_acceptable_severity=Severity.SUSPICIOUS)
    assert tolerant.loads(tolerant.dumps({"a": 1})) == {"a": 1}


def test_faust_names_import_through_the_alias():
    with faust_alias():
        from faust.exceptions import SecurityWarning as FaustSecurityWarning
        from faust.serializers.codecs import (
            UNSAFE_PICKLE_WARNING,
            pickle_fickling,
            pickle_restricted,
            warn_if_unsafe_pickle,
        )
        from faust.serializers.codecs import (
            RestrictedUnpickler as FaustRestrictedUnpickler,
        )
    assert FaustRestrictedUnpickler is RestrictedUnpickler
    assert FaustSecurityWarning is SecurityWarning
    assert "pickle_restricted" in UNSAFE_PICKLE_WARNING
    assert isinstance(pickle_fickling(), codecs.Codec)
    assert isinstance(pickle_restricted(), codecs.Codec)
    with pytest.warns(FaustSecurityWarning):
        warn_if_unsafe_pickle("pickle")
