"""The kafka:// driver without a broker: broker URLs, settings, errors, import isolation."""

from __future__ import annotations

import subprocess
import sys

import pytest

import detstream
from detstream.errors import ImproperlyConfigured
from detstream.partitioner import partition_for_key
from detstream.transport import driver_class
from detstream.transport.kafka.urls import bootstrap_servers


@pytest.mark.parametrize(
    "url, servers",
    [
        ("kafka://", ["localhost:9092"]),
        ("kafka://broker:19092", ["broker:19092"]),
        ("kafka://broker", ["broker:9092"]),
        ("aiokafka://h1:9092;h2:9093", ["h1:9092", "h2:9093"]),
        ("kafka://h1:9092,h2", ["h1:9092", "h2:9092"]),
        ("KAFKA://h1:9092/", ["h1:9092"]),
        ("kafka://[::1]:9094", ["[::1]:9094"]),
        (["kafka://h1:1", "kafka://h2:2"], ["h1:1", "h2:2"]),
    ],
)
def test_broker_urls_to_bootstrap_servers(url, servers):
    assert bootstrap_servers(url) == servers


@pytest.mark.parametrize(
    "url, says",
    [
        ("kafka://localhost:notaport", "port 'notaport'"),
        ("kafka://localhost:0", "port '0'"),
        ("kafka://localhost:65536", "port '65536'"),
        ("kafka://localhost:", "port ''"),
        ("kafka://;", "empty host list"),
        ("kafka://;,", "empty host list"),
        ("kafka://:9092", "no valid host name"),
        ("kafka://h/path", "has a path"),
        ("redis://h:9092", "is not a kafka:// URL"),
        ("localhost:9092", "is not a kafka:// URL"),
        ([], "empty list"),
    ],
)
def test_bad_broker_urls_name_the_url_and_the_fix(url, says):
    with pytest.raises(ImproperlyConfigured) as info:
        bootstrap_servers(url)
    message = str(info.value)
    assert says in message
    assert "kafka://localhost:9092" in message  # the fix, by example
    if isinstance(url, str):
        assert repr(url) in message


def test_kafka_and_aiokafka_schemes_pick_the_driver():
    cls = driver_class("kafka://localhost:9092")
    assert cls.__name__ == "AIOKafkaTransport"
    assert driver_class("aiokafka://") is cls


def test_app_with_bad_broker_url_fails_when_the_transport_is_made():
    app = detstream.App("bad-url", broker="kafka://localhost:99999")
    with pytest.raises(ImproperlyConfigured, match="'kafka://localhost:99999'"):
        app.transport  # noqa: B018


def test_transport_takes_servers_and_settings_from_the_app():
    app = detstream.App(
        "settings", broker=["kafka://a:1", "kafka://b:2"], broker_session_timeout=6.5,
        broker_heartbeat_interval=1.5, consumer_auto_offset_reset="latest", producer_acks=1,
        producer_linger=0.25, producer_compression_type="gzip",
    )
    transport = app.transport
    assert transport.servers == ["a:1", "b:2"]
    consumer = transport.create_consumer(client_id="c", group_id="g")._options
    assert consumer["session_timeout_ms"] == 6500 and consumer["heartbeat_interval_ms"] == 1500
    assert consumer["auto_offset_reset"] == "latest" and consumer["enable_auto_commit"] is False
    producer = transport.create_producer(client_id="p")._options
    assert (producer["acks"], producer["linger_ms"], producer["compression_type"]) == (1, 250, "gzip")


def test_unsupported_producer_acks_is_a_configuration_error():
    with pytest.raises(ImproperlyConfigured, match=r"'producer_acks' must be one of .*got 2"):
        detstream.App("acks", broker="kafka://", producer_acks=2)


def test_aiokafka_default_partitioner_agrees_with_detstream():
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    keys = [b"", b"a", b"ab", b"abc", b"abcd", b"abcde", b"\xff\x00\x80", "wörd".encode()]
    keys += [f"user-{i}".encode() for i in range(200)]
    for count in (1, 2, 3, 8, 12, 100):
        partitions = list(range(count))
        for key in keys:
            assert partition_for_key(key, count) == partitioner(key, partitions, partitions), key


def test_only_the_kafka_driver_imports_aiokafka():
    code = (
        "import sys, detstream, detstream.cli.main, detstream.worker, sim.driver, sim.runner\n"
        "import detstream.transport.kafka.urls\n"
        "assert 'aiokafka' not in sys.modules, sorted(m for m in sys.modules if 'aiokafka' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
