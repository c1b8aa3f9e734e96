"""Standby replicas and recovery progress on the simulator, at the level of one or two apps."""

import asyncio
import logging

from sim.checks import fold_changelog, tables_match_changelog
from sim.testing import simulate
from tests.unit.test_table_recovery import CHANGELOG, FAST, feed, word_count_app

WORDS = [f"w{i % 17}" for i in range(300)]


def standby_view(app, tp):
    """The standby copy of ``tp`` on ``app``: its keys, read from the standby's own store."""
    entry = app.tables.standbys._partitions[tp]
    return {k: entry.store.get(k) for k in entry.store.keys()}


def test_standby_copies_follow_the_changelog_but_the_table_serves_actives_only(tmp_path):
    async def main(cluster):
        one, counts_one = word_count_app(cluster, "w1", store="memory://", datadir=tmp_path / "1")
        two, counts_two = word_count_app(cluster, "w2", store="memory://", datadir=tmp_path / "2")
        await one.start()
        await two.start()
        await asyncio.sleep(5)
        await feed(cluster, WORDS)
        await asyncio.sleep(5)
        result = []
        for app, counts in ((one, counts_one), (two, counts_two)):
            [standby] = app.tables.standbys.partitions
            active = {tp.partition for tp in app.conductor.assignment() if tp.topic == CHANGELOG}
            result.append((
                standby, active, standby_view(app, standby), counts.as_dict(),
                fold_changelog(counts, cluster, {standby.partition}),
                fold_changelog(counts, cluster, active), app.tables.standbys.applied,
            ))
        violation = tables_match_changelog([one, two], cluster)
        await two.stop()
        await one.stop()
        return result, violation

    result, violation = simulate(main, seed=11, config=FAST)
    assert violation is None
    applied = 0
    for standby, active, copy, table, expected_copy, expected_table in (r[:6] for r in result):
        assert standby.partition not in active
        assert copy == expected_copy and copy  # the standby is complete
        assert table == expected_table  # and none of its keys show in the table
        assert not set(copy) & set(table)
    applied = sum(r[6] for r in result)
    assert applied == len(WORDS)  # every changelog record was read by exactly one standby


def test_a_rocksdb_standby_resumes_from_its_offset_after_a_restart(tmp_path):
    tp_of = {}

    async def main(cluster):
        one, _ = word_count_app(cluster, "w1", store="rocksdb://", datadir=tmp_path / "1")
        two, _ = word_count_app(cluster, "w2", store="rocksdb://", datadir=tmp_path / "2")
        await one.start()
        await two.start()
        await asyncio.sleep(5)
        await feed(cluster, WORDS)
        await asyncio.sleep(5)
        [tp] = two.tables.standbys.partitions
        tp_of["tp"] = tp
        before = two.tables.standbys.offset(tp), two.tables.standbys.applied
        await two.stop()
        await asyncio.sleep(1)
        await feed(cluster, ["late"] * 3 + ["w1"] * 3)  # both partitions grow while w2 is away
        two, _ = word_count_app(cluster, "w2b", store="rocksdb://", datadir=tmp_path / "2")
        await two.start()
        await asyncio.sleep(10)
        after = two.tables.standbys.offset(tp), two.tables.standbys.applied
        end = cluster.end_offset(tp)
        violation = tables_match_changelog([one, two], cluster)
        await two.stop()
        await one.stop()
        return before, after, end, violation

    (offset, applied), (offset_after, applied_after), end, violation = simulate(main, seed=12, config=FAST)
    assert violation is None
    assert applied == offset + 1  # read from the start of the changelog the first time
    assert offset_after == end - 1  # caught up again...
    assert applied_after == end - 1 - offset  # ...reading only what it had not stored


def test_a_partition_that_stops_being_active_becomes_a_standby_with_its_data(tmp_path):
    async def main(cluster):
        one, _ = word_count_app(cluster, "w1", store="rocksdb://", datadir=tmp_path / "1")
        await one.start()
        await asyncio.sleep(5)
        await feed(cluster, WORDS)
        await asyncio.sleep(5)
        two, _ = word_count_app(cluster, "w2", store="rocksdb://", datadir=tmp_path / "2")
        await two.start()
        await asyncio.sleep(10)
        [moved] = one.tables.standbys.partitions  # the partition w2 took over
        result = (
            moved, one.tables.standbys.offset(moved), cluster.end_offset(moved),
            one.tables.standbys.applied, standby_view(one, moved),
        )
        await two.stop()
        await one.stop()
        return result + (cluster,)

    moved, offset, end, applied, copy, cluster = simulate(main, seed=13, config=FAST)
    assert moved.topic == CHANGELOG
    assert offset == end - 1 and applied == 0  # its old active data, continued: nothing re-read
    assert copy


def test_recovery_logs_progress_per_table_and_counts_what_it_replayed(tmp_path, caplog):
    async def main(cluster):
        first, _ = word_count_app(cluster, "w1", store="memory://", datadir=tmp_path)
        await first.start()
        await asyncio.sleep(1)
        await feed(cluster, WORDS)
        await asyncio.sleep(5)
        await first.stop()
        again, _ = word_count_app(cluster, "w1b", store="memory://", datadir=tmp_path)
        again.tables.progress.interval = 0.0  # a line per batch: the test's recovery is short
        await again.start()
        await asyncio.sleep(5)
        recoveries = list(again.tables.recoveries)
        await again.stop()
        return recoveries

    with caplog.at_level(logging.INFO, logger="detstream.tables.recovery"):
        recoveries = simulate(main, seed=14, config=FAST)
    [recovery] = recoveries
    assert recovery.table == "counts"
    assert recovery.records == recovery.total == recovery.done == len(WORDS)
    assert recovery.promoted == frozenset()
    assert recovery.duration is not None and recovery.duration >= 0
    lines = [r.getMessage() for r in caplog.records if r.name == "detstream.tables.recovery"]
    assert any(line.startswith(f"Recovering table 'counts': {len(WORDS)} changelog records in 2 partitions")
               for line in lines)
    progress = [line for line in lines if "records/s" in line]
    assert progress and all("ETA" in line and f"/{len(WORDS)} changelog records" in line for line in progress)
    [final] = [line for line in lines if line.startswith("Recovered table 'counts'")]
    assert f"{len(WORDS)} changelog records from 2 partitions in " in final


def test_standby_reads_pause_while_active_partitions_recover(tmp_path):
    async def main(cluster):
        one, _ = word_count_app(cluster, "w1", store="memory://", datadir=tmp_path / "1")
        await one.start()
        await asyncio.sleep(1)
        await feed(cluster, WORDS)
        await asyncio.sleep(3)
        paused_during = []
        two, _ = word_count_app(cluster, "w2", store="memory://", datadir=tmp_path / "2")
        original = two.tables.standbys.pause

        def pause():
            paused_during.append(two.tables.recovering)
            original()

        two.tables.standbys.pause = pause
        await two.start()
        await asyncio.sleep(10)
        running = two.tables.standbys._running.is_set()
        await two.stop()
        await one.stop()
        return paused_during, running

    paused_during, running = simulate(main, seed=15, config=FAST)
    assert paused_during and all(paused_during)  # paused exactly while recovering...
    assert running  # ...and running again after


def test_one_worker_has_no_standby(tmp_path):
    async def main(cluster):
        app, _ = word_count_app(cluster, "w1", store="memory://", datadir=tmp_path)
        await app.start()
        await asyncio.sleep(5)
        result = app.tables.standbys.partitions, app.conductor.consumer.standby_assignment()
        await app.stop()
        return result

    assert simulate(main, seed=16, config=FAST) == (set(), set())


def test_table_standby_replicas_zero_asks_for_none(tmp_path):
    async def main(cluster):
        apps = []
        for name in ("w1", "w2"):
            app, _ = word_count_app(cluster, name, store="memory://", datadir=tmp_path / name)
            app.conf.table_standby_replicas = 0
            await app.start()
            apps.append(app)
        await asyncio.sleep(5)
        result = [a.tables.standbys.partitions for a in apps]
        for app in reversed(apps):
            await app.stop()
        return result

    assert simulate(main, seed=17, config=FAST) == [set(), set()]



def test_a_lagging_standby_is_promoted_and_recovery_replays_only_its_tail(tmp_path, caplog):
    async def main(cluster):
        one, _ = word_count_app(cluster, "w1", store="memory://", datadir=tmp_path / "1")
        two, counts_two = word_count_app(cluster, "w2", store="memory://", datadir=tmp_path / "2")
        await one.start()
        await two.start()
        await asyncio.sleep(5)
        await feed(cluster, WORDS)
        await asyncio.sleep(5)
        [tp] = two.tables.standbys.partitions
        copied = two.tables.standbys.offset(tp)
        await two.tables.standbys.stop()  # the copy falls behind while more arrives
        await feed(cluster, ["tail"] * 5 + [f"w{i}" for i in range(17)])
        await asyncio.sleep(2)
        end = cluster.end_offset(tp)
        await one.stop()  # w2 takes every partition over
        await asyncio.sleep(5)
        recoveries = list(two.tables.recoveries)
        violation = tables_match_changelog([two], cluster)
        table = counts_two.as_dict()
        await two.stop()
        return tp, copied, end, recoveries, violation, table

    with caplog.at_level(logging.INFO, logger="detstream.tables.recovery"):
        tp, copied, end, recoveries, violation, table = simulate(main, seed=18, config=FAST)
    assert violation is None
    assert table["tail"] == 5
    promoted = [r for r in recoveries if tp in r.promoted]
    [recovery] = promoted
    tail = end - (copied + 1)
    assert 0 < tail < copied  # a real tail, shorter than what the copy already had
    assert recovery.spans[tp] == (copied + 1, end)  # continued after the copy's offset
    lines = [r.getMessage() for r in caplog.records]
    assert f"table 'counts' partition {tp.partition}: continuing its standby copy at changelog " \
        f"offset {copied + 1} ({tail} records to replay)" in lines
    assert any("(1 continued a standby)" in line for line in lines if line.startswith("Recovered"))
