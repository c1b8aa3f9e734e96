"""Producer/consumer settings: Faust's names and defaults, validated, and what reaches aiokafka."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

import detstream
from detstream.config import env_settings
from detstream.errors import ImproperlyConfigured
from detstream.transport.kafka import options as kafka_options


def _producer(app, **kw):
    return app.transport.create_producer(client_id="p", **kw)._options


def _consumer(app):
    return app.transport.create_consumer(client_id="c", group_id="g")


def test_defaults_are_fausts():
    conf = detstream.App("d").conf
    assert conf.producer_max_batch_size == 16384
    assert conf.producer_max_request_size == 1_000_000
    assert conf.producer_request_timeout == 1200.0
    assert conf.producer_compression_type is None and conf.producer_linger == 0.0
    assert conf.producer_acks == -1 and conf.producer_enable_idempotence is False
    assert conf.broker_max_poll_interval == 1000.0 and conf.broker_max_poll_records is None
    assert conf.consumer_max_fetch_size == 1024**2 and conf.consumer_auto_offset_reset == "earliest"
    assert (conf.broker_request_timeout, conf.broker_session_timeout,
            conf.broker_heartbeat_interval) == (90.0, 60.0, 3.0)
    assert conf.broker_credentials is None and conf.ssl_context is None


def test_producer_settings_reach_aiokafka():
    app = detstream.App(
        "p", broker="kafka://h:1", producer_compression_type="gzip", producer_linger=0.05,
        producer_max_batch_size=65536, producer_max_request_size=2_000_000, producer_acks=1,
        producer_request_timeout=30, broker_request_timeout=45, broker_client_id="me",
    )
    options = _producer(app)
    assert {k: options[k] for k in (
        "compression_type", "linger_ms", "max_batch_size", "max_request_size", "acks",
        "request_timeout_ms", "enable_idempotence", "bootstrap_servers")} == {
        "compression_type": "gzip", "linger_ms": 50, "max_batch_size": 65536,
        "max_request_size": 2_000_000, "acks": 1, "request_timeout_ms": 30_000,
        "enable_idempotence": False, "bootstrap_servers": ["h:1"],
    }
    admin = app.transport.create_admin(client_id="a")._options
    assert admin["request_timeout_ms"] == 45_000  # the broker's timeout, not the producer's


def test_transactional_producer_keeps_the_producer_options_but_forces_acks_all():
    app = detstream.App("t", broker="kafka://h:1", producer_compression_type="gzip",
                        producer_acks=1, producer_max_batch_size=1000)
    options = _producer(app, transactional_id="t-1")
    assert options["acks"] == "all" and options["transactional_id"] == "t-1"
    assert options["compression_type"] == "gzip" and options["max_batch_size"] == 1000


def test_consumer_settings_reach_aiokafka():
    app = detstream.App(
        "c", broker="kafka://h:1", consumer_max_fetch_size=4096, consumer_auto_offset_reset="latest",
        broker_request_timeout=70, broker_session_timeout=20, broker_heartbeat_interval=2,
        broker_rebalance_timeout=40, broker_max_poll_interval=300, broker_max_poll_records=50,
    )
    consumer = _consumer(app)
    options = consumer._options
    assert {k: options[k] for k in (
        "max_partition_fetch_bytes", "auto_offset_reset", "request_timeout_ms",
        "session_timeout_ms", "heartbeat_interval_ms", "rebalance_timeout_ms",
        "max_poll_interval_ms", "max_poll_records", "enable_auto_commit")} == {
        "max_partition_fetch_bytes": 4096, "auto_offset_reset": "latest",
        "request_timeout_ms": 70_000, "session_timeout_ms": 20_000, "heartbeat_interval_ms": 2000,
        "rebalance_timeout_ms": 40_000, "max_poll_interval_ms": 300_000, "max_poll_records": 50,
        "enable_auto_commit": False,
    }
    assert consumer.max_records == 50  # each getmany asks for at most this many


def test_max_poll_records_none_keeps_the_drivers_batch_size():
    consumer = _consumer(detstream.App("c2", broker="kafka://h:1"))
    assert consumer.max_records == kafka_options.DEFAULT_MAX_POLL_RECORDS == 500


def test_producer_linger_ms_is_fausts_deprecated_alias():
    assert detstream.App("l", producer_linger_ms=25).conf.producer_linger == 0.025
    both = detstream.App("l2", producer_linger_ms=25, producer_linger=0.5).conf
    assert both.producer_linger == 0.5  # the current name wins
    app = detstream.App("l3")
    app.conf.producer_linger_ms = 200
    assert app.conf.producer_linger == 0.2
    app2 = detstream.App("l4", broker="kafka://h:1")
    app2.config_from_object({"producer_linger_ms": 7})
    assert _producer(app2)["linger_ms"] == 7


@pytest.mark.parametrize("given, stored", [("all", -1), ("ALL", -1), ("-1", -1), ("1", 1), (0, 0)])
def test_producer_acks_spellings(given, stored):
    assert detstream.App("a", producer_acks=given).conf.producer_acks == stored


@pytest.mark.parametrize(
    "setting, value, says",
    [
        ("producer_compression_type", "brotli", "must be one of"),
        ("producer_acks", 2, "must be one of"),
        ("producer_acks", True, "must be a number"),
        ("consumer_auto_offset_reset", "smallest", "must be one of"),
        ("producer_max_batch_size", 0, "must be greater than 0"),
        ("producer_max_request_size", -1, "must be greater than 0"),
        ("producer_request_timeout", 0, "must be greater than 0"),
        ("producer_linger", -0.1, "must not be negative"),
        ("producer_linger_ms", -5, "must not be negative"),
        ("consumer_max_fetch_size", 0, "must be greater than 0"),
        ("broker_session_timeout", 0, "must be greater than 0"),
        ("broker_heartbeat_interval", -3, "must be greater than 0"),
        ("broker_request_timeout", 0.0, "must be greater than 0"),
        ("broker_max_poll_interval", 0, "must be greater than 0"),
        ("broker_max_poll_records", 0, "must be greater than 0"),
        ("broker_max_poll_records", 2.5, "must be int/NoneType"),
        ("producer_enable_idempotence", "yes", "must be bool"),
        ("producer_max_batch_size", "16k", "must be int"),
    ],
)
def test_bad_values_fail_when_the_app_is_defined(setting, value, says):
    with pytest.raises(ImproperlyConfigured, match=f"'{setting}' {says}"):
        detstream.App("bad", **{setting: value})


def test_idempotence_needs_acks_all():
    app = detstream.App("i", broker="kafka://h:1", producer_enable_idempotence=True, producer_acks=1)
    with pytest.raises(ImproperlyConfigured, match="producer_enable_idempotence=True needs producer_acks=-1"):
        app.transport  # noqa: B018
    ok = detstream.App("i2", broker="kafka://h:1", producer_enable_idempotence=True)
    assert _producer(ok)["enable_idempotence"] is True


def test_heartbeat_must_be_shorter_than_the_session():
    app = detstream.App("h", broker="kafka://h:1", broker_session_timeout=6,
                        broker_heartbeat_interval=6)
    with pytest.raises(ImproperlyConfigured, match="broker_heartbeat_interval=6 must be lower"):
        app.transport  # noqa: B018


@pytest.mark.parametrize("codec", ["snappy", "lz4", "zstd"])
def test_a_codec_without_its_library_names_the_package(codec, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(kafka_options.importlib.util, "find_spec",
                        lambda name: None if name == "cramjam" else real(name))
    app = detstream.App("z", broker="kafka://h:1", producer_compression_type=codec)
    with pytest.raises(ImproperlyConfigured) as info:
        app.transport  # noqa: B018
    message = str(info.value)
    assert f"producer_compression_type={codec!r}" in message
    assert "'cramjam'" in message and f"aiokafka[{codec}]" in message and "'gzip'" in message


def test_installed_codecs_are_accepted_and_missing_ones_refused():
    """Whatever this venv has: gzip always works; the others exactly when cramjam is there."""
    has_cramjam = importlib.util.find_spec("cramjam") is not None
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        app = detstream.App(f"codec-{codec}", broker="kafka://h:1", producer_compression_type=codec)
        if codec == "gzip" or has_cramjam:
            assert _producer(app)["compression_type"] == codec
        else:
            with pytest.raises(ImproperlyConfigured, match="cramjam"):
                app.transport  # noqa: B018


def test_aiokafka_constructors_accept_the_options():
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    app = detstream.App(
        "real", broker="kafka://h:1", producer_compression_type="gzip", producer_linger_ms=5,
        producer_max_batch_size=32768, producer_max_request_size=500_000, producer_acks="all",
        producer_enable_idempotence=True, broker_max_poll_records=10, broker_max_poll_interval=60,
    )
    producer_opts, consumer_opts = _producer(app), _consumer(app)._options

    async def build():
        producer = AIOKafkaProducer(**producer_opts)
        consumer = AIOKafkaConsumer(**consumer_opts)
        seen = (producer._compression_type, producer._max_request_size,
                producer._txn_manager is not None, consumer._max_poll_records,
                consumer._max_poll_interval_ms)
        await producer.stop()
        await consumer.stop()
        return seen

    assert asyncio.run(build()) == ("gzip", 500_000, True, 10, 60_000)


def test_environment_variables_with_fausts_names():
    env = {"PRODUCER_COMPRESSION_TYPE": "gzip", "PRODUCER_ACKS": "all",
           "PRODUCER_MAX_BATCH_SIZE": "1024", "PRODUCER_LINGER": "0.5",
           "BROKER_MAX_POLL_RECORDS": "20", "BROKER_SESSION_TIMEOUT": "30",
           "CONSUMER_AUTO_OFFSET_RESET": "latest", "PRODUCER_REQUEST_TIMEOUT": "60"}
    assert env_settings(None, env) == {
        "producer_compression_type": "gzip", "producer_acks": -1, "producer_max_batch_size": 1024,
        "producer_linger": 0.5, "broker_max_poll_records": 20, "broker_session_timeout": 30.0,
        "consumer_auto_offset_reset": "latest", "producer_request_timeout": 60.0,
    }
    with pytest.raises(ImproperlyConfigured, match="PRODUCER_COMPRESSION_TYPE='brotli'"):
        env_settings(None, {"PRODUCER_COMPRESSION_TYPE": "brotli"})
