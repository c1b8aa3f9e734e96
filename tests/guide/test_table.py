"""Guide: "app.Table() -- Define a new table" and "Table Arguments"."""

import asyncio

import pytest

import detstream as faust
from detstream.errors import TableWriteError
from detstream.stores.rocksdb import RocksDBStore

from .helpers import feed, run_app, simulate, start_worker, wait_for


class Transfer(faust.Record):
    account: str
    amount: int


class MyValueModel(faust.Record):
    name: str
    value: float


def test_a_default_makes_missing_keys_read_as_its_value():
    app = faust.App("defaults", broker="sim://")
    transfer_counts = app.Table("transfer_counts", default=int, key_type=str, value_type=int)
    # >>> table['missing']
    # 0
    assert transfer_counts["missing"] == 0
    assert "missing" not in transfer_counts  # read, not stored
    topic = app.topic("in", internal=True, partitions=1, value_type=str)

    @app.agent(topic)
    async def bump(stream):
        async for key in stream:
            # >>> table['also-missing'] += 1
            transfer_counts[key] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(value="also-missing")
        await asyncio.sleep(3)
        return transfer_counts["also-missing"]

    assert run_app(app, body) == 1  # >>> table['also-missing']  -> 1


def test_updates_happen_while_iterating_a_stream_never_outside():
    app = faust.App("outside", broker="sim://")
    table = app.Table("t", default=int)
    with pytest.raises(TableWriteError, match="outside of stream iteration"):
        table["also-missing"] += 1


def make_transfer_app():
    app = faust.App("transfers", broker="sim://", topic_partitions=4)
    transfers_topic = app.topic("transfers", value_type=Transfer)
    transfer_counts = app.Table("transfer_counts", default=int, key_type=str, value_type=int)

    @app.agent(transfers_topic)
    async def transfer(transfers):
        async for transfer in transfers.group_by(Transfer.account):
            transfer_counts[transfer.account] += 1

    return app, transfer_counts


def test_group_by_sends_every_account_to_one_agent_instance():
    apps = [make_transfer_app() for _ in range(2)]
    accounts = ["ann", "bob", "cy", "dee", "eve", "fay"]
    items = [(None, Transfer(account=accounts[i % 6], amount=i).dumps()) for i in range(30)]

    async def main(cluster):
        cluster.create_topic("transfers", 4, by="test")
        for number, (app, _) in enumerate(apps, 1):
            await start_worker(app, cluster, f"w{number}")
        await asyncio.sleep(5)
        await feed(cluster, "transfers", items)  # not keyed by account: any partition
        await wait_for(lambda: sum(sum(t.as_dict().values()) for _, t in apps) == 30)
        tables = [table.as_dict() for _, table in apps]
        for app, _ in apps:
            await app.stop()
        return tables

    first, second = simulate(main, seed=5)
    assert not set(first) & set(second)  # each account counted on one worker only
    assert {**first, **second} == dict.fromkeys(accounts, 5)


def test_concurrent_agents_may_read_tables_but_not_modify_them():
    app = faust.App("concurrency", broker="sim://")
    table = app.Table("t", default=int)
    topic = app.topic("in", internal=True, partitions=1, value_type=str)
    reads, errors = [], []

    @app.agent(topic, concurrency=3, on_error=lambda agent, exc: errors.append(exc))
    async def concurrent(stream):
        async for key in stream:
            reads.append(table[key])
            table[key] = 1

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(value="k")
        await asyncio.sleep(3)

    run_app(app, body)
    assert reads == [0]
    assert [type(e) for e in errors] == [TableWriteError]
    assert "concurrency=3 and may only read table 't'" in str(errors[0])


def test_names_are_unique_within_an_app():
    app = faust.App("names", broker="sim://")
    app.Table("totals", help="Totals per account.")
    assert app.tables.tables["totals"].help == "Totals per account."
    with pytest.raises(ValueError, match="table 'totals' is defined twice in app 'names'"):
        app.Table("totals")
    assert faust.App("other").Table("totals").changelog_name == "other-totals-changelog"


def test_without_a_default_a_missing_key_raises_key_error():
    app = faust.App("nodefault", broker="sim://")
    # >>> table = app.Table('nodefault', default=None)
    table = app.Table("nodefault", default=None)
    with pytest.raises(KeyError, match="missing"):
        table["missing"]
    # >>> table = app.Table('hasdefault', default=int)
    assert app.Table("hasdefault", default=int)["missing"] == 0


def make_model_app(events):
    app = faust.App("models", broker="sim://", topic_partitions=2)
    # The guide's `app.Table(key_type=bytes, value_type=MyValueModel)` has no name, which
    # is required; named here.
    table = app.Table("by-key", key_type=bytes, value_type=MyValueModel,
                      on_changelog_event=events.append)
    topic = app.topic("in", internal=True, partitions=2, key_type=bytes, value_type=MyValueModel)

    @app.agent(topic)
    async def store(stream):
        async for key, value in stream.items():
            table[key] = value

    return app, table, topic


def test_models_round_trip_through_the_changelog_and_recovery_calls_on_changelog_event():
    events = []
    writer, _, topic = make_model_app([])
    reader, table, _ = make_model_app(events)

    async def main(cluster):
        await start_worker(writer, cluster, "w1")
        await asyncio.sleep(1)
        await topic.send(key=b"k1", value=MyValueModel(name="one", value=1.0))
        await topic.send(key=b"k2", value=MyValueModel(name="two", value=2.0))
        await asyncio.sleep(5)
        await writer.stop()
        await start_worker(reader, cluster, "w2")  # a new instance recovers from the changelog
        await wait_for(lambda: len(table) == 2)
        recovered = table.as_dict()
        await reader.stop()
        return recovered

    recovered = simulate(main, seed=2)
    assert recovered == {b"k1": MyValueModel(name="one", value=1.0),
                         b"k2": MyValueModel(name="two", value=2.0)}
    assert sorted(event.key for event in events) == [b"k1", b"k2"]


def test_store_partitions_changelog_topic_and_buffer_sizes():
    app = faust.App("args", broker="sim://", store="memory://", topic_partitions=8)
    on_disk = app.Table("on-disk", store="rocksdb://", partitions=3)
    assert isinstance(on_disk.data, RocksDBStore) and on_disk.changelog_topic.partitions == 3
    assert app.Table("plain").changelog_topic.partitions is None  # topic_partitions, 8
    custom = app.topic("my-changelog", internal=True, compacting=True, partitions=2)
    table = app.Table("custom", changelog_topic=custom, default=int)
    assert table.changelog_name == "my-changelog"
    assert (table.recovery_buffer_size, table.standby_buffer_size) == (1000, None)
    topic = app.topic("in", internal=True, partitions=2, value_type=str)

    @app.agent(topic)
    async def count(stream):
        async for key in stream:
            table[key] += 1

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(key=b"a", value="a")
        await asyncio.sleep(3)
        return [r.key for r in cluster.records("my-changelog")]

    assert run_app(app, body) == [b'"a"']
