"""Guide: "Application Parameters" -- broker and store URLs, drivers, settings as kwargs."""

import pytest

import detstream as faust
from detstream.errors import ImproperlyConfigured
from detstream.stores import MemoryStore
from detstream.stores.rocksdb import RocksDBStore
from sim.driver import SimTransport


class MyTransport(SimTransport):
    """A driver named by its class path instead of a scheme."""


def test_broker_and_store_urls():
    # >>> app = faust.App('myid', broker='kafka://kafka.example.com', store='rocksdb://')
    app = faust.App("myid", broker="kafka://kafka.example.com", store="rocksdb://")
    assert app.conf.broker == "kafka://kafka.example.com"
    assert app.conf.store == "rocksdb://"
    assert type(app.transport).__name__ == "AIOKafkaTransport"  # made lazily, no I/O yet


def test_kafka_localhost_is_the_default_broker():
    assert faust.App("myid").conf.broker.startswith("kafka://localhost")


def test_the_scheme_picks_the_driver_or_a_class_path_names_one():
    assert isinstance(faust.App("a", broker="sim://").transport, SimTransport)
    app = faust.App("b", broker=f"{__name__}:MyTransport")
    assert isinstance(app.transport, MyTransport)
    with pytest.raises(ImproperlyConfigured, match="has no known driver"):
        _ = faust.App("c", broker="nosuch://host").transport


def test_store_drivers_rocksdb_and_memory():
    assert isinstance(faust.App("r", store="rocksdb://").Table("t").data, RocksDBStore)
    assert isinstance(faust.App("m", store="memory://").Table("t").data, MemoryStore)
    assert isinstance(faust.App("d").Table("t").data, MemoryStore)  # memory:// is the default
    with pytest.raises(ImproperlyConfigured, match="store URL 'redis://' is not supported"):
        faust.App("x", store="redis://").Table("t")


def test_settings_are_keyword_arguments_and_typos_fail():
    app = faust.App("s", topic_partitions=3, broker_commit_interval=1.5)
    assert (app.conf.topic_partitions, app.conf.broker_commit_interval) == (3, 1.5)
    with pytest.raises(ImproperlyConfigured, match="unknown setting 'topic_partition'.*topic_partitions"):
        faust.App("s", topic_partition=3)
    with pytest.raises(ImproperlyConfigured, match="non-empty str"):
        faust.App("")


def test_urls_may_be_yarl_urls():
    """The guide's ``store`` is "``str`` or ``~yarl.URL``" (a Table's too), and Faust takes a
    URL for ``broker``: each is kept as its text (yarl writes ``rocksdb://`` as ``rocksdb:``)."""
    from yarl import URL

    app = faust.App("urls", broker=URL("kafka://localhost:9092"), store=URL("memory://"))
    assert (app.conf.broker, app.conf.store) == ("kafka://localhost:9092", "memory://")
    assert type(app.transport).__name__ == "AIOKafkaTransport"  # not taken for a transport object
    assert app.Table("counts", store=URL("rocksdb://")).store_url == "rocksdb://"
    several = faust.App("urls2", broker=[URL("kafka://a:9092"), URL("kafka://b:9092")])
    assert several.conf.broker == ["kafka://a:9092", "kafka://b:9092"]
