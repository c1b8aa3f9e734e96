"""Table stores: one contract for memory:// and rocksdb://, then what only RocksDB promises."""

import asyncio
import shutil
import subprocess
import sys

import pytest

import detstream
from detstream._types import ConsumerRecord, RecordMetadata
from detstream.errors import ImproperlyConfigured, KeyDecodeError
from detstream.stores import MemoryStore, store_for_url
from detstream.stores.rocksdb import OFFSET_KEY, RocksDBStore

CHANGELOG = "stores-counts-changelog"


def make_table(tmp_path, store, *, name="counts", app_id="stores"):
    app = detstream.App(app_id, broker="sim://", store=store, datadir=str(tmp_path), version=3)
    return app.Table(name, default=int)


@pytest.fixture(params=["memory://", "rocksdb://"])
def table(request, tmp_path):
    table = make_table(tmp_path, request.param)
    yield table
    table.data.close()


def record(partition, offset, key, value):
    """A changelog record as the table sends it (json key and value, None = tombstone)."""
    value_bytes = None if value is None else str(value).encode()
    return ConsumerRecord(CHANGELOG, partition, offset, 0.0, f'"{key}"'.encode(), value_bytes)


def apply(table, records):
    table.apply_changelog(records)


# -- the contract both stores keep -------------------------------------------------


def test_get_set_overwrite_delete(table):
    store = table.data
    with pytest.raises(KeyError):
        store.get("a")
    store.set("a", 1, 0)
    store.set("b", {"n": [1, 2]}, 1)
    assert store.get("a") == 1
    assert store.get("b") == {"n": [1, 2]}
    store.set("a", 2, 0)
    assert store.get("a") == 2
    store.delete("a")
    assert "a" not in store
    with pytest.raises(KeyError):
        store.get("a")
    store.delete("never-there")  # no error
    assert "b" in store and len(store) == 1


def test_len_and_keys_cover_every_partition_held(table):
    store = table.data
    for i, key in enumerate("abcde"):
        store.set(key, i, i % 3)
    assert len(store) == 5
    assert sorted(store.keys()) == list("abcde")
    store.delete("c", 2)
    assert sorted(store.keys()) == ["a", "b", "d", "e"]
    assert len(store) == 4


def test_keys_may_be_mutated_while_iterating(table):
    store = table.data
    for key in "abc":
        store.set(key, 1, 0)
    for key in store.keys():
        store.delete(key)
    assert len(store) == 0


def test_drop_partitions_hides_their_keys(table):
    store = table.data
    store.set("a", 1, 0)
    store.set("b", 2, 1)
    store.set("c", 3, 2)
    store.drop_partitions({1, 2})
    assert sorted(store.keys()) == ["a"]
    assert len(store) == 1
    assert "b" not in store
    with pytest.raises(KeyError):
        store.get("c")


def test_apply_changelog_batch_latest_wins_and_tombstones_delete(table):
    apply(table, [record(0, 0, "a", 1), record(0, 1, "b", 5), record(0, 2, "a", 2)])
    apply(table, [record(0, 3, "b", None), record(1, 0, "c", 7)])
    assert dict((k, table.data.get(k)) for k in table.data.keys()) == {"a": 2, "c": 7}


def test_reset_partition_and_reset_state_forget_data(table):
    store = table.data
    apply(table, [record(0, 0, "a", 1), record(1, 0, "b", 2)])
    store.reset_partition(0)
    assert sorted(store.keys()) == ["b"]
    assert store.persisted_offset(0) is None
    store.reset_state()
    assert len(store) == 0
    assert store.persisted_offset(1) is None


def test_persisted_offsets(table):
    store = table.data
    apply(table, [record(0, 0, "a", 1), record(0, 1, "a", 2), record(1, 0, "b", 1)])
    assert (store.persisted_offset(0), store.persisted_offset(1)) == (1, 0)
    assert store.persisted_offset(2) is None
    store.set_persisted_offset(2, 9)
    assert store.persisted_offset(2) == 9


def test_table_iteration_and_len_delegate_to_the_store(table):
    table.data.set("a", 1, 0)
    table.data.set("b", 2, 1)
    assert sorted(table) == ["a", "b"]
    assert len(table) == 2
    assert table["missing"] == 0  # the default, not stored
    assert table.as_dict() == {"a": 1, "b": 2}


# -- store selection -------------------------------------------------------------------


def test_unknown_store_scheme_names_url_and_supported_ones():
    with pytest.raises(ImproperlyConfigured) as info:
        store_for_url("redis://localhost")
    message = str(info.value)
    assert "redis://localhost" in message
    assert "memory://" in message and "rocksdb://" in message
    with pytest.raises(ImproperlyConfigured, match="rocksdb://"):
        detstream.App("bad", broker="sim://", store="rocks").Table("t")


def test_store_for_url_picks_by_scheme():
    assert store_for_url("memory://") is MemoryStore
    assert store_for_url("RocksDB://") is RocksDBStore


def test_importing_detstream_does_not_import_rocksdict():
    code = "import sys, detstream, detstream.stores; assert 'rocksdict' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- RocksDB only --------------------------------------------------------------------------


def rocks(tmp_path, **kwargs):
    return make_table(tmp_path, "rocksdb://", **kwargs)


def test_layout_is_datadir_version_tables_name_partition(tmp_path):
    table = rocks(tmp_path)
    table.data.set("a", 1, 4)
    assert (tmp_path / "v3" / "tables" / "counts-4.db").is_dir()
    table.data.close()


def test_tabledir_is_under_the_version_directory_unless_absolute(tmp_path):
    app = detstream.App("tabledirs", broker="sim://", store="rocksdb://",
                        datadir=str(tmp_path / "data"), version=3, tabledir="mine")
    assert app.conf.appdir == tmp_path / "data" / "v3"
    table = app.Table("counts", default=int)
    table.data.set("a", 1, 4)
    assert (tmp_path / "data" / "v3" / "mine" / "counts-4.db").is_dir()
    table.data.close()
    elsewhere = tmp_path / "fast-disk"
    app = detstream.App("tabledirs", broker="sim://", store="rocksdb://",
                        datadir=str(tmp_path / "data"), tabledir=str(elsewhere))
    table = app.Table("counts", default=int)
    table.data.set("a", 1, 0)
    assert (elsewhere / "counts-0.db").is_dir()
    table.data.close()


def test_data_and_offset_survive_close_and_reopen(tmp_path):
    table = rocks(tmp_path)
    apply(table, [record(0, 0, "a", 1), record(0, 1, "b", 2), record(1, 0, "c", 3)])
    table.data.close()
    table.data.close()  # twice is fine

    again = rocks(tmp_path)  # a new App: what a restarted worker builds
    assert again.data.persisted_offset(0) == 1
    assert again.data.persisted_offset(1) == 0
    assert again.data.get("a") == 1 and again.data.get("c") == 3
    again.data.close()


def test_dropped_partition_keeps_its_data_on_disk(tmp_path):
    table = rocks(tmp_path)
    apply(table, [record(0, 0, "a", 1), record(1, 0, "b", 2)])
    table.data.drop_partitions({1})
    assert list(table.data.keys()) == ["a"]
    table.data.assign_partitions({1})
    assert sorted(table.data.keys()) == ["a", "b"]
    assert table.data.persisted_offset(1) == 0
    table.data.close()


def test_changelog_batch_is_atomic_data_with_offset(tmp_path):
    """A batch that fails half way leaves neither its data nor its offset behind."""
    table = rocks(tmp_path)
    apply(table, [record(0, 0, "a", 1)])
    bad = ConsumerRecord(CHANGELOG, 0, 3, 0.0, b"not json", b"9")
    with pytest.raises(KeyDecodeError):
        apply(table, [record(0, 1, "a", 2), record(0, 2, "b", 5), bad])
    table.data.close()
    again = rocks(tmp_path)
    assert again.data.persisted_offset(0) == 0
    assert dict((k, again.data.get(k)) for k in again.data.keys()) == {"a": 1}
    again.data.close()


def test_changelog_records_already_on_disk_are_not_applied_again(tmp_path):
    table = rocks(tmp_path)
    apply(table, [record(0, 0, "a", 1), record(0, 1, "a", 2)])
    apply(table, [record(0, 0, "a", 1)])  # a stale re-read must not go back in time
    assert table.data.get("a") == 2
    assert table.data.persisted_offset(0) == 1
    table.data.close()


def test_reset_state_deletes_only_this_tables_partitions(tmp_path):
    counts = rocks(tmp_path)
    other = counts.app.Table("counts-x", default=int)
    counts.data.set("a", 1, 0)
    other.data.set("z", 1, 0)
    counts.data.reset_state()
    tables = tmp_path / "v3" / "tables"
    assert not (tables / "counts-0.db").exists()
    assert (tables / "counts-x-0.db").exists()
    assert other.data.get("z") == 1
    other.data.close()


def test_second_store_on_same_partition_is_a_clear_error(tmp_path):
    first = rocks(tmp_path)
    first.data.set("a", 1, 0)
    second = rocks(tmp_path)
    with pytest.raises(ImproperlyConfigured, match="own datadir"):
        second.data.set("a", 1, 0)
    first.data.close()


# -- writes wait for their changelog acknowledgement ---------------------------------------


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def ack(loop, future, offset, partition=0):
    future.set_result(RecordMetadata(CHANGELOG, partition, offset, 0.0))
    loop.run_until_complete(asyncio.sleep(0))


def on_disk(tmp_path):
    """What a worker restarted right now would find (a copy: the original stays open)."""
    copy = tmp_path / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(tmp_path / "v3", copy / "v3")
    table = rocks(copy)
    try:
        return table.data.persisted_offset(0), {k: table.data.get(k) for k in table.data.keys()}
    finally:
        table.data.close()


def test_write_reaches_disk_with_its_offset_only_when_acked(tmp_path, loop):
    table = rocks(tmp_path)
    sent = loop.create_future()
    table.data.set("a", 1, 0, sent=sent)
    assert table.data.get("a") == 1  # readable at once
    assert on_disk(tmp_path) == (None, {})  # a crash now: nothing the changelog lacks
    ack(loop, sent, 7)
    assert on_disk(tmp_path) == (7, {"a": 1})
    table.data.close()


def test_acks_out_of_order_persist_in_send_order(tmp_path, loop):
    table = rocks(tmp_path)
    first, second, third = (loop.create_future() for _ in range(3))
    table.data.set("a", 1, 0, sent=first)
    table.data.set("a", 2, 0, sent=second)
    table.data.delete("a", 0, sent=third)
    assert "a" not in table.data
    ack(loop, second, 11)
    assert on_disk(tmp_path) == (None, {})  # the first write is still in flight
    ack(loop, first, 10)
    assert on_disk(tmp_path) == (11, {"a": 2})
    ack(loop, third, 12)
    assert on_disk(tmp_path) == (12, {})
    table.data.close()


def test_failed_send_never_reaches_disk(tmp_path, loop):
    table = rocks(tmp_path)
    failed, ok = loop.create_future(), loop.create_future()
    table.data.set("a", 1, 0, sent=failed)
    table.data.set("b", 2, 0, sent=ok)
    failed.set_exception(RuntimeError("broker said no"))
    ack(loop, ok, 4)
    assert table.data.get("a") == 1  # this worker still sees what it wrote
    assert on_disk(tmp_path) == (4, {"b": 2})
    table.data.close()


def test_ack_after_close_is_ignored(tmp_path, loop):
    table = rocks(tmp_path)
    sent = loop.create_future()
    table.data.set("a", 1, 0, sent=sent)
    table.data.close()
    ack(loop, sent, 3)  # no error; the changelog has it and recovery will replay it
    again = rocks(tmp_path)
    assert again.data.persisted_offset(0) is None and len(again.data) == 0
    again.data.close()


def test_offset_key_is_not_a_table_key(tmp_path):
    table = rocks(tmp_path)
    table.data.set_persisted_offset(0, 3)
    table.data.set("a", 1, 0)
    assert list(table.data.keys()) == ["a"] and len(table.data) == 1
    assert table.data._partitions[0].db.get(OFFSET_KEY) == b"3"  # stored beside the data
    table.data.close()


def _key(record):
    return record.key.decode().strip('"')


def _value(record):
    return int(record.value)


def test_memory_store_parks_a_revoked_partition_and_serves_it_again():
    """Sticky assignment gives partitions back: only what others wrote since is replayed."""
    store = MemoryStore()
    store.apply_changelog_batch(
        [record(0, 0, "a", 1), record(0, 1, "b", 2), record(1, 0, "c", 3)], _key, _value,
    )
    store.drop_partitions({0})
    assert sorted(store.keys()) == ["c"]  # not served while another worker owns it
    assert store.persisted_offset(0) == 1
    store.drop_partitions({0})  # lost, then revoked: dropping twice keeps what was parked
    store.assign_partitions({0})
    assert sorted(store.keys()) == ["a", "b", "c"]


def test_memory_store_get_sees_its_data_through_resets_and_parking():
    """``get`` is the dict's own lookup, bound once: every change of the data must show."""
    store = MemoryStore()
    store.set("a", 1, 0)
    store.reset_state()
    with pytest.raises(KeyError):
        store.get("a")
    store.apply_changelog_batch([record(0, 0, "a", 2), record(1, 0, "b", 3)], _key, _value)
    store.drop_partitions({0})
    with pytest.raises(KeyError):
        store.get("a")
    store.assign_partitions({0})
    assert (store.get("a"), store.get("b")) == (2, 3)


def test_memory_store_parks_each_of_several_revoked_partitions_with_its_own_keys():
    store = MemoryStore()
    store.apply_changelog_batch(
        [record(0, 0, "a", 1), record(1, 0, "b", 2), record(2, 0, "c", 3), record(0, 1, "d", 4),
         record(1, 1, "e", 5)], _key, _value,
    )
    store.drop_partitions({2})
    store.drop_partitions({0, 1, 2})  # 2 parked already: kept as it was
    assert len(store) == 0
    for partition, keys in ((1, ["b", "e"]), (2, ["c"]), (0, ["a", "d"])):
        store.assign_partitions({partition})
        assert sorted(k for k in store.keys() if store.partition_of(k) == partition) == keys
    assert {k: store.get(k) for k in store.keys()} == {"a": 1, "b": 2, "c": 3, "d": 4, "e": 5}


def test_memory_store_forgets_a_partition_whose_writes_did_not_all_reach_the_changelog():
    loop = asyncio.new_event_loop()
    try:
        store = MemoryStore()
        store.apply_changelog_batch([record(0, 0, "a", 1)], _key, _value)
        failed, pending = loop.create_future(), loop.create_future()
        store.set("b", 2, 0, sent=failed)
        store.set("c", 3, 1, sent=pending)
        failed.set_exception(RuntimeError("transaction aborted"))
        loop.run_until_complete(asyncio.sleep(0))
        assert store.persisted_offset(0) is None  # diverged: replay it all
        store.drop_partitions({0, 1})  # 1 still has a write in flight
        store.assign_partitions({0, 1})
        assert len(store) == 0 and store.persisted_offset(1) is None
        pending.set_result(RecordMetadata(CHANGELOG, 1, 7, 0.0))  # too late: ignored
        loop.run_until_complete(asyncio.sleep(0))
        assert store.persisted_offset(1) is None
    finally:
        loop.close()


class _CountingFuture:
    """A changelog send that counts who waits on it (stores only add callbacks and hash it)."""

    def __init__(self):
        self.callbacks = []

    def add_done_callback(self, callback, *, context=None):
        self.callbacks.append(callback)


def test_memory_store_waits_once_on_a_send_that_many_writes_share():
    """The write cache gives every write of a key until the commit one future: one callback.

    A callback per write kept each write's event alive until the commit
    (half of a word count's CPU went to collecting them).
    """
    store = MemoryStore()
    shared = _CountingFuture()
    for value in range(1000):
        store.set("a", value, 0, sent=shared)
    assert len(shared.callbacks) == 1


def test_rocksdb_writes_sharing_one_send_wait_as_one_write(tmp_path, loop):
    table = rocks(tmp_path)
    shared, other = loop.create_future(), loop.create_future()
    for value in range(1000):
        table.data.set("a", value, 0, sent=shared)
    table.data.set("b", 1, 0, sent=other)
    table.data.set("a", 1000, 0, sent=shared)
    ack(loop, other, 5)
    assert on_disk(tmp_path) == (None, {})  # "a" was written first: disk waits for it
    ack(loop, shared, 6)
    assert on_disk(tmp_path) == (6, {"a": 1000, "b": 1})
    table.data.close()
