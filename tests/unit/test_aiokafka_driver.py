"""The kafka:// driver without a broker: broker URLs, settings, errors, import isolation."""

from __future__ import annotations

import logging
import subprocess
import sys
from types import SimpleNamespace

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
        ("confluent://h1:9092", ["h1:9092"]),
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
    assert driver_class("confluent://") is cls


def test_a_broker_scheme_may_be_a_drivers_dotted_class_path():
    """The guide: the scheme "can also be the fully qualified path to a Python class"."""
    from sim.driver import SimTransport

    assert driver_class("sim.driver.SimTransport://") is SimTransport
    with pytest.raises(ImproperlyConfigured, match="could not be imported"):
        driver_class("no_such_pkg.Transport://host:9092")


def test_faust_confluent_scheme_runs_on_the_aiokafka_driver_and_says_so(caplog):
    app = detstream.App("confluent-url", broker="confluent://h1:9092;h2")
    with caplog.at_level(logging.WARNING, logger="detstream.transport.kafka.driver"):
        transport = app.transport
    assert transport.servers == ["h1:9092", "h2:9092"]
    assert "confluent://" in caplog.text and "aiokafka driver" in caplog.text


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


def test_a_group_consumer_start_waiting_for_its_assignment_says_why_once(monkeypatch, caplog):
    """After a kill -9 the restarted worker's join waits for the dead member's session to
    expire: the log says so once (at 5 s), naming the settings that shorten the wait, then
    goes on with the plain "still starting" lines, ever more rarely."""
    import asyncio
    import logging

    from detstream import compat
    from detstream.transport.kafka import driver
    from sim.testing import simulate

    app = detstream.App("waits", broker="kafka://a:1", broker_session_timeout=45.0)
    consumer = app.transport.create_consumer(client_id="w1", group_id="waits")
    consumer._topics = frozenset({"orders"})
    joining = [False]
    monkeypatch.setattr(compat, "joining_group", lambda client: joining[0])
    assert consumer._join_wait(object()) is None  # still connecting: nothing to explain yet
    joining[0] = True
    notice = consumer._join_wait(object())
    assert notice is not None
    for says in ("broker_session_timeout=45s", "lower broker_session_timeout",
                 "consumer_group_instance_id", "kill -9"):
        assert says in notice, (says, notice)

    async def main(cluster):
        watchdog = asyncio.ensure_future(
            driver._warn_while_pending("consumer (group waits)", "kafka://a:1",
                                       explain=lambda: consumer._join_wait(object()))
        )
        await asyncio.sleep(100.0)
        watchdog.cancel()

    with caplog.at_level(logging.WARNING, logger=driver.log.name):
        simulate(main, seed=1)
    lines = [r.getMessage() for r in caplog.records if r.name == driver.log.name]
    assert [line.split(":")[0] for line in lines] == [
        "consumer (group waits) has waited 5s for its partitions",
        "consumer (group waits) still starting after 10s (connecting to kafka",
        "consumer (group waits) still starting after 30s (connecting to kafka",
        "consumer (group waits) still starting after 70s (connecting to kafka",
    ]


def test_a_static_members_start_says_the_wait_is_another_members(monkeypatch):
    from detstream import compat

    app = detstream.App("waits", broker="kafka://a:1")
    consumer = app.transport.create_consumer(client_id="w1", group_id="waits")
    consumer._options["group_instance_id"] = "worker-1"
    monkeypatch.setattr(compat, "joining_group", lambda client: True)
    notice = consumer._join_wait(object())
    assert notice is not None and "static member 'worker-1'" in notice, notice
    assert "another worker's" in notice, notice


def test_fetched_records_become_ours_whichever_way_aiokafka_made_them():
    """A batch aiokafka iterated with our maker passes as it is; one it made its own records
    for (fetched while ``getmany`` waited) is converted: the same records either way."""
    from aiokafka import TopicPartition
    from aiokafka.structs import ConsumerRecord as AiokafkaRecord

    from detstream._types import ConsumerRecord
    from detstream.transport.kafka.consumer import _record, _records

    tp = TopicPartition("t", 2)
    raw = [SimpleNamespace(offset=i, timestamp=1500 * i, key=b"k", value=b"v%d" % i,
                           headers=[("h", b"x")] if i else []) for i in range(2)]
    ours = [_record(tp, r) for r in raw]
    theirs = [AiokafkaRecord("t", 2, r.offset, r.timestamp, 0, r.key, r.value, None, 1, 2,
                             tuple(r.headers)) for r in raw]
    expected = [ConsumerRecord("t", 2, 0, 0.0, b"k", b"v0", ()),
                ConsumerRecord("t", 2, 1, 1.5, b"k", b"v1", (("h", b"x"),))]
    assert ours == expected and all(type(r) is ConsumerRecord for r in ours)
    assert _records(tp, ours) is ours
    assert _records(tp, theirs) == expected


def test_a_keyless_record_goes_where_aiokafkas_default_partitioner_draws_it():
    """The driver draws a keyless record's partition inline: the partitions it picks are
    those ``DefaultPartitioner`` picks from the same global random (the available ones,
    else all), and a topic listing no partitions is refused, not drawn from forever."""
    import asyncio
    import random

    from aiokafka import AIOKafkaProducer
    from aiokafka.partitioner import DefaultPartitioner

    every, available = [0, 1, 2, 3, 4, 5], [1, 3, 4]

    class Observer:
        def __init__(self) -> None:
            self.partitions: list[int] = []

        def sent(self, topic, partition, key, value, **kinds):
            self.partitions.append(partition)
            return partition

    async def drawn(partitions: list[int]) -> list[int]:
        app = detstream.App("keyless", broker="kafka://a:1")
        producer = app.transport.create_producer(client_id="p")
        producer._producer = client = AIOKafkaProducer(bootstrap_servers="a:1")
        producer._pumping = lambda *args: None  # nothing is sent: only the draws are looked at
        producer._observer = observer = Observer()
        producer._partitions["t"] = (set(every), every, partitions)
        for _ in range(50):
            assert producer.forward_nowait("t", None, b"v") is not None
        producer._partitions["none"] = (set(), [], [])
        with pytest.raises(IndexError, match="'none' has no partitions"):
            producer.forward_nowait("none", None, b"v")
        await client.stop()  # never started: nothing to close but the object
        return observer.partitions

    for partitions in (available, []):
        random.seed(7)
        theirs = [DefaultPartitioner()(None, every, partitions) for _ in range(50)]
        random.seed(7)
        ours = asyncio.run(drawn(partitions))
        assert ours == theirs and len(set(ours)) > 1
