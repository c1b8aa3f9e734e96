"""Table recovery on the simulator: rocksdb:// resumes after its offset, memory:// replays all."""

import asyncio
import json
import logging

import pytest

import detstream
from detstream._types import TP
from detstream.errors import ChangelogKeyDecodeError, ChangelogValueDecodeError
from detstream.tables.recovery import recovery_start
from detstream.tables.table import Table
from sim.checks import fold_changelog, tables_match_changelog
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)
CHANGELOG = "wc-counts-changelog"


class CountingTable(Table):
    """Counts the changelog records recovery applies (the test's instrument, no mocks)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.applied = 0

    def apply_changelog(self, records):
        self.applied += len(records)
        super().apply_changelog(records)


def word_count_app(cluster, name, *, store, datadir, **settings):
    """The same app code, built fresh for every (re)start, as a new worker process would.

    Every write is sent at once (no changelog cache): these tests count changelog
    records per word.
    """
    settings.setdefault("table_changelog_cache_size", 0)
    app = detstream.App(
        "wc", broker="sim://", store=store, datadir=str(datadir), topic_partitions=2, **settings
    )
    app.client_name = name
    app.trace_hook = cluster.trace.record
    words = app.topic("words", partitions=2, internal=True, value_type=str)
    counts = CountingTable(app, "counts", default=int)
    app.tables.add(counts)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    return app, counts


def text_value(text):
    """A str value as a Faust producer writes it: JSON text (the app's default value_serializer)."""
    return json.dumps(text).encode()


async def feed(cluster, words):
    """Produce ``words`` to the words topic as a Faust app's producer would (raw key, JSON value)."""
    producer = SimTransport(cluster=cluster, name="client").create_producer(client_id="client")
    for word in words:
        await producer.send("words", key=word.encode(), value=text_value(word))


async def run_worker(cluster, name, *, store, datadir, words=(), then=None):
    """Start a worker, feed ``words``, let it settle, inspect, stop it gracefully."""
    app, counts = word_count_app(cluster, name, store=store, datadir=datadir)
    await app.start()
    try:
        await asyncio.sleep(1)
        await feed(cluster, words)
        await asyncio.sleep(5)
        assert tables_match_changelog([app], cluster) is None
        return counts.applied, counts.as_dict(), (then(app, counts) if then else None)
    finally:
        await app.stop()


def recovery_events(cluster, name):
    return [e.fields for e in cluster.trace.of_kind("recovery-start") if e.actor == name]


def ends(cluster):
    return [len([r for r in cluster.records(CHANGELOG) if r.partition == p]) for p in (0, 1)]


FIRST = ["a", "b", "a", "c", "a", "d"]
SECOND = ["a", "e", "b"]


def test_rocksdb_restart_reads_only_the_changelog_after_its_offset(tmp_path):
    async def main(cluster):
        applied1, _, _ = await run_worker(
            cluster, "w1", store="rocksdb://", datadir=tmp_path / "w1", words=FIRST
        )
        first_ends = ends(cluster)
        # another worker (own datadir) takes over and writes more changelog records
        applied2, _, _ = await run_worker(
            cluster, "w2", store="rocksdb://", datadir=tmp_path / "w2", words=SECOND
        )
        # w1's code restarts on its old datadir: only w2's records are new to it
        applied3, table, offsets = await run_worker(
            cluster, "w1b", store="rocksdb://", datadir=tmp_path / "w1",
            then=lambda app, counts: [counts.data.persisted_offset(p) for p in (0, 1)],
        )
        return applied1, first_ends, applied2, applied3, table, offsets, cluster

    applied1, first_ends, applied2, applied3, table, offsets, cluster = simulate(
        main, seed=1, config=FAST
    )
    assert applied1 == 0  # empty changelog: nothing to recover
    assert applied2 == sum(first_ends) == len(FIRST)  # an empty datadir replays all
    final_ends = ends(cluster)
    assert applied3 == sum(final_ends) - sum(first_ends) == len(SECOND)
    [restart] = recovery_events(cluster, "w1b")
    grown = [p for p in (0, 1) if final_ends[p] > first_ends[p]]
    assert restart["tps"] == [f"{CHANGELOG}[{p}]" for p in grown]
    assert restart["start"] == [first_ends[p] for p in grown]  # persisted offset + 1
    assert restart["end"] == [final_ends[p] for p in grown]
    assert table == {"a": 4, "b": 2, "c": 1, "d": 1, "e": 1}
    assert offsets == [e - 1 for e in final_ends]


def test_rocksdb_restart_with_nothing_new_recovers_nothing(tmp_path):
    async def main(cluster):
        await run_worker(cluster, "w1", store="rocksdb://", datadir=tmp_path, words=FIRST)
        applied, table, _ = await run_worker(
            cluster, "w1b", store="rocksdb://", datadir=tmp_path, words=["a"]
        )
        return applied, table, cluster

    applied, table, cluster = simulate(main, seed=2, config=FAST)
    assert applied == 0
    assert recovery_events(cluster, "w1b") == []
    assert table == {"a": 4, "b": 1, "c": 1, "d": 1}
    assert (tmp_path / "v1" / "tables" / "counts-0.db").is_dir()


def test_memory_store_replays_the_whole_changelog(tmp_path):
    async def main(cluster):
        await run_worker(cluster, "w1", store="memory://", datadir=tmp_path, words=FIRST)
        applied, table, _ = await run_worker(
            cluster, "w1b", store="memory://", datadir=tmp_path, words=SECOND
        )
        return applied, table, cluster

    applied, table, cluster = simulate(main, seed=3, config=FAST)
    assert applied == len(FIRST)
    assert table == {"a": 4, "b": 2, "c": 1, "d": 1, "e": 1}
    [restart] = recovery_events(cluster, "w1b")
    assert restart["start"] == [0] * len(restart["tps"])


def test_rocksdb_tables_hold_only_assigned_partitions(tmp_path):
    async def main(cluster):
        one, counts_one = word_count_app(cluster, "w1", store="rocksdb://", datadir=tmp_path / "1")
        await one.start()
        await asyncio.sleep(1)
        await feed(cluster, FIRST)
        await asyncio.sleep(3)
        everything = counts_one.as_dict()
        two, counts_two = word_count_app(cluster, "w2", store="rocksdb://", datadir=tmp_path / "2")
        await two.start()
        await asyncio.sleep(10)
        split = counts_one.as_dict(), counts_two.as_dict()
        assignments = one.conductor.assignment(), two.conductor.assignment()
        violation = tables_match_changelog([one, two], cluster)
        await two.stop()
        await one.stop()
        return everything, split, assignments, violation

    everything, (mine, theirs), (assigned_one, assigned_two), violation = simulate(
        main, seed=4, config=FAST
    )
    assert violation is None
    assert TP(CHANGELOG, 0) in assigned_one | assigned_two
    assert assigned_one and assigned_two
    assert mine and theirs and not set(mine) & set(theirs)
    assert {**mine, **theirs} == everything == {"a": 3, "b": 1, "c": 1, "d": 1}
    # w1 gave a partition away; its DB stays on disk for a later assignment
    assert len(list((tmp_path / "1" / "v1" / "tables").glob("counts-*.db"))) == 2


def test_persisted_offset_beyond_changelog_end_rebuilds_the_partition(tmp_path, caplog):
    """The changelog was deleted and recreated (here: a new cluster) under an old datadir."""

    async def first_life(cluster):
        await run_worker(cluster, "w1", store="rocksdb://", datadir=tmp_path, words=FIRST)

    async def second_life(cluster):
        applied, table, offsets = await run_worker(
            cluster, "w1b", store="rocksdb://", datadir=tmp_path, words=["b", "z"],
            then=lambda app, counts: [counts.data.persisted_offset(p) for p in (0, 1)],
        )
        resets = [e.fields for e in cluster.trace.of_kind("recovery-reset")]
        return applied, table, offsets, resets, fold_changelog_of(cluster), ends(cluster)

    def fold_changelog_of(cluster):
        app = detstream.App("wc", broker="sim://")
        return fold_changelog(app.Table("counts", default=int), cluster)

    simulate(first_life, seed=5, config=FAST)
    with caplog.at_level(logging.WARNING, logger="detstream.tables.recovery"):
        applied, table, offsets, resets, changelog, new_ends = simulate(
            second_life, seed=5, config=FAST
        )
    assert applied == 0
    assert table == changelog == {"b": 1, "z": 1}  # the old counts are gone, not mixed in
    assert {r["tp"] for r in resets} == {f"{CHANGELOG}[0]", f"{CHANGELOG}[1]"}
    assert all(r["end"] == 0 and r["stored"] >= 0 for r in resets)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("'counts' partition" in w and "wiping" in w and CHANGELOG in w for w in warnings)
    # the wiped partitions now follow the new changelog
    assert offsets == [end - 1 if end else None for end in new_ends]


@pytest.mark.parametrize(
    ("stored", "begin", "end", "expected"),
    [
        (None, 0, 10, (0, False)),
        (None, 4, 10, (4, False)),
        (3, 0, 10, (4, False)),
        (9, 0, 10, (10, False)),  # caught up
        (10, 0, 10, (0, True)),  # beyond the end: recreated topic
        (42, 0, 0, (0, True)),
        (2, 5, 10, (5, True)),  # records removed under the local data
        (4, 5, 10, (5, False)),
    ],
)
def test_recovery_start(stored, begin, end, expected):
    assert recovery_start(stored, begin, end) == expected


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_custom_changelog_topic_without_serializers_recovers(tmp_path, store):
    """The changelog is written with the codec recovery reads it with (json), not the app's raw."""

    def build(cluster, name):
        app = detstream.App("cc", broker="sim://", store=store, datadir=str(tmp_path))
        app.client_name, app.trace_hook = name, cluster.trace.record
        words = app.topic("words", partitions=1, internal=True, value_type=str)
        changelog = app.topic("cc-custom-changelog", partitions=1, internal=True)
        counts = app.Table("counts", default=int, changelog_topic=changelog)

        @app.agent(words)
        async def count(stream):
            async for word in stream:
                counts[word] += 1

        return app, counts

    async def main(cluster):
        tables = []
        for name, words in (("w1", ["a", "b", "a"]), ("w1b", ["a"])):
            app, counts = build(cluster, name)
            await app.start()
            await asyncio.sleep(1)
            await feed(cluster, words)
            await asyncio.sleep(5)
            tables.append(counts.as_dict())
            await app.stop()
        return tables

    assert simulate(main, seed=6, config=FAST) == [{"a": 2, "b": 1}, {"a": 3, "b": 1}]


# -- changelog records the table cannot decode ------------------------------------------------
async def corrupt(cluster, *, key, value, like):
    """Produce a record straight into the changelog, on the partition holding key ``like``."""
    [partition] = {r.partition for r in cluster.records(CHANGELOG) if r.key == like}
    producer = SimTransport(cluster=cluster, name="vandal").create_producer(client_id="vandal")
    meta = await producer.send(CHANGELOG, key=key, value=value, partition=partition)
    return partition, meta.offset


async def start_recovering(cluster, name, **options):
    app, counts = word_count_app(cluster, name, **options)
    await app.start()
    await asyncio.sleep(5)
    return app, counts


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
@pytest.mark.parametrize(
    ("key", "value", "error", "named"),
    [
        (b'"a"', b"{not json", ChangelogValueDecodeError, "value of key 'a'"),
        (b"\xff", b"1", ChangelogKeyDecodeError, "key b'\\xff'"),
    ],
)
def test_undecodable_changelog_record_stops_recovery_by_default(
    tmp_path, caplog, store, key, value, error, named,
):
    """Raise (the default): the worker crashes naming table, partition, offset and key."""

    async def main(cluster):
        await run_worker(cluster, "w1", store=store, datadir=tmp_path / "w1", words=FIRST)
        where = await corrupt(cluster, key=key, value=value, like=b'"a"')
        app, counts = await start_recovering(cluster, "w2", store=store, datadir=tmp_path / "w2")
        crashed, reason = app.crashed, app.crash_reason
        applied = counts.applied
        counts.data.close()
        return where, crashed, reason, applied, cluster

    with caplog.at_level(logging.ERROR):
        (partition, offset), crashed, reason, applied, cluster = simulate(main, seed=7, config=FAST)
    assert crashed and isinstance(reason, error)
    assert (reason.table, reason.topic, reason.partition, reason.offset) == (
        "counts", CHANGELOG, partition, offset
    )
    message = str(reason)
    assert f"table 'counts': the {named} of changelog record {CHANGELOG}[{partition}] offset {offset}" in message
    assert "table_changelog_decode_errors='skip'" in message  # what to do
    assert any(r.exc_info and r.exc_info[1] is reason for r in caplog.records)  # logged
    [event] = cluster.trace.of_kind("changelog-decode-error")
    assert event.fields == {"table": "counts", "tp": f"{CHANGELOG}[{partition}]", "offset": offset}


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_undecodable_changelog_record_is_skipped_and_logged_when_asked(tmp_path, caplog, store):
    """Skip: the record is left out, logged and traced; the rest recovers and the worker goes on."""

    async def main(cluster):
        await run_worker(cluster, "w1", store=store, datadir=tmp_path / "w1", words=FIRST)
        partition, offset = await corrupt(cluster, key=b'"a"', value=b"{not json", like=b'"a"')
        app, counts = await start_recovering(
            cluster, "w2", store=store, datadir=tmp_path / "w2",
            table_changelog_decode_errors="skip",
        )
        try:
            recovered = counts.as_dict()
            stored = counts.data.persisted_offset(partition)
            await feed(cluster, ["a"])
            await asyncio.sleep(5)
            return partition, offset, app.crashed, recovered, stored, counts.as_dict(), cluster
        finally:
            await app.stop()

    with caplog.at_level(logging.WARNING, logger="detstream.tables.table"):
        partition, offset, crashed, recovered, stored, later, cluster = simulate(
            main, seed=8, config=FAST
        )
    assert not crashed
    assert recovered == {"a": 3, "b": 1, "c": 1, "d": 1}  # the bad record left out
    assert stored == offset  # and stepped over: a restart does not read it again
    assert later["a"] == 4
    [warning] = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert f"{CHANGELOG}[{partition}] offset {offset}" in warning and "'counts'" in warning
    [event] = cluster.trace.of_kind("changelog-decode-skip")
    assert event.fields == {"table": "counts", "tp": f"{CHANGELOG}[{partition}]", "offset": offset}


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_standby_copies_follow_the_same_decode_policy(tmp_path, policy):
    """The worker holding the standby copy reads the bad record first."""

    async def main(cluster):
        apps = {}
        for name in ("w1", "w2"):
            apps[name] = word_count_app(
                cluster, name, store="memory://", datadir=tmp_path / name,
                table_changelog_decode_errors=policy,
            )[0]
            await apps[name].start()
        await asyncio.sleep(5)
        await feed(cluster, FIRST)
        await asyncio.sleep(3)
        partition, offset = await corrupt(cluster, key=b'"a"', value=b"{not json", like=b'"a"')
        await asyncio.sleep(3)
        tp = TP(CHANGELOG, partition)
        [holder] = [a for a in apps.values() if tp in a.tables.standbys.partitions]
        [owner] = [a for a in apps.values() if tp in a.conductor.assignment()]
        result = (holder.crashed, holder.crash_reason, owner.crashed,
                  holder.tables.standbys.offset(tp), offset)
        for app in apps.values():
            if not app.crashed:
                await app.stop()
        return result

    holder_crashed, reason, owner_crashed, standby_offset, offset = simulate(
        main, seed=9, config=FAST
    )
    assert not owner_crashed
    if policy == "raise":
        assert holder_crashed and isinstance(reason, ChangelogValueDecodeError)
        assert reason.offset == offset and reason.table == "counts"
    else:
        assert not holder_crashed and standby_offset == offset
