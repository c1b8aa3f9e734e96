"""Table arguments beyond the basics: use_partitioner, extra_topic_configs, hooks, on_changelog_event."""

import asyncio

import pytest

import detstream
from detstream.errors import TableWriteError
from detstream.partitioner import partition_for_key
from sim.cluster import ClusterConfig
from sim.testing import run_app, simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def test_use_partitioner_places_writes_by_key_and_allows_them_outside_streams():
    app = detstream.App("part", broker="sim://", topic_partitions=4)
    table = app.Table("t", default=int, use_partitioner=True)

    async def body(cluster):
        await asyncio.sleep(1)
        for key in ["a", "b", "c", "d", "e"]:
            table[key] = 1  # no stream: the key decides the partition
        await asyncio.sleep(2)
        return [(r.key, r.partition) for r in cluster.records("part-t-changelog")]

    records = run_app(app, body, config=FAST)
    assert len(records) == 5
    for key, partition in records:
        assert partition == partition_for_key(key, 4) == table.partition_for_key(key.decode()[1:-1])


def test_partition_for_key_is_the_event_partition_without_use_partitioner():
    app = detstream.App("evpart", broker="sim://", topic_partitions=2)
    topic = app.topic("in", partitions=2, internal=True, value_type=str)
    table = app.Table("t", default=int)
    seen = []

    @app.agent(topic)
    async def record(stream):
        async for event in stream.events():
            seen.append((table.partition_for_key("anything"), event.message.partition))

    async def body(cluster):
        await asyncio.sleep(1)
        for i in range(6):
            await topic.send(key=f"k{i}".encode(), value="v")
        await asyncio.sleep(3)

    run_app(app, body, config=FAST)
    assert len(seen) == 6 and all(mine == theirs for mine, theirs in seen)
    with pytest.raises(TableWriteError, match="use_partitioner=True"):
        table.partition_for_key("k")


def test_extra_topic_configs_reach_the_changelog_topic():
    app = detstream.App("cfg", broker="sim://")
    table = app.Table("t", extra_topic_configs={"min.insync.replicas": 2})
    config = table.changelog_topic.kafka_config()
    assert config["min.insync.replicas"] == "2"
    assert config["cleanup.policy"] == "compact"


class CountingHooks(detstream.Table):
    """A subclass overriding Faust's key hooks (no mocks: it records what it saw)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def on_key_get(self, key):
        self.calls.append(("get", key))

    def on_key_set(self, key, value):
        self.calls.append(("set", key, value))

    def on_key_del(self, key):
        self.calls.append(("del", key))


def test_key_hooks_are_called_after_reads_writes_and_deletes():
    app = detstream.App("hooks", broker="sim://", topic_partitions=1)
    topic = app.topic("in", partitions=1, internal=True, value_type=str)
    table = CountingHooks(app, "t", default=int)
    app.tables.add(table)

    @app.agent(topic)
    async def write(stream):
        async for value in stream:
            table[value] += 1
            del table[value]

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(value="x")
        await asyncio.sleep(2)

    run_app(app, body, config=FAST)
    assert table.calls == [("get", "x"), ("set", "x", 1), ("del", "x")]


def test_on_changelog_event_sees_every_record_recovery_applies():
    events = []

    def build():
        # every write sent at once: the test counts one changelog record per write
        app = detstream.App("ce", broker="sim://", topic_partitions=1, table_changelog_cache_size=0)
        topic = app.topic("in", partitions=1, internal=True, value_type=str)

        async def on_event(event):
            await asyncio.sleep(0)
            events.append((event.key, event.value, event.message.offset))

        table = app.Table("t", default=int, on_changelog_event=on_event)

        @app.agent(topic)
        async def count(stream):
            async for value in stream:
                table[value] += 1

        return app, topic

    async def main(cluster):
        app, topic = build()
        await app.start()
        await asyncio.sleep(1)
        for value in ["a", "b", "a"]:
            await topic.send(value=value)
        await asyncio.sleep(3)
        await app.stop()
        again, _ = build()
        await again.start()
        await asyncio.sleep(3)
        await again.stop()

    simulate(main, seed=1, config=FAST)
    assert events == [("a", 1, 0), ("b", 1, 1), ("a", 2, 2)]


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_stores_know_the_partition_of_a_key(tmp_path, store):
    """What window expiry needs to send a tombstone to the right changelog partition."""
    app = detstream.App("po", broker="sim://", store=store, datadir=str(tmp_path))
    table = app.Table("t")
    try:
        table.data.set("a", 1, 0)
        table.data.set(("b", (1.0, 2.0)), 2, 3)
        assert table.data.partition_of("a") == 0
        assert table.data.partition_of(("b", (1.0, 2.0))) == 3
        assert table.data.partition_of("zz") is None
        table.data.delete("a", 0)
        assert table.data.partition_of("a") is None
    finally:
        table.data.close()
