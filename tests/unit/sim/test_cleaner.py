"""The simulated log cleaner: compaction, tombstone expiry, retention, gaps, open transactions."""

import asyncio

from detstream._types import TP
from sim.cleaner import cleanup_policies
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

#: no active tail: every record may be cleaned (tests that need a tail set it).
NO_TAIL = ClusterConfig(initial_rebalance_delay=0.5, log_cleaner_active_records=0)
C0 = TP("c", 0)
COMPACT = {"cleanup.policy": "compact"}


def _producer(cluster, name="p", txn_id=None):
    return SimTransport(cluster=cluster, name=name).create_producer(
        client_id=name, transactional_id=txn_id
    )


def _reader(cluster, tps=(C0,), isolation="read_uncommitted"):
    consumer = SimTransport(cluster=cluster, name="reader").create_consumer(
        client_id="reader", group_id=None, isolation_level=isolation
    )
    consumer.assign(tps)
    return consumer


async def _read_all(consumer, timeout=0.5):
    got = []
    while batch := await consumer.getmany(timeout):
        got.extend((r.offset, r.key, r.value) for records in batch.values() for r in records)
    return got


async def _send_all(producer, items, topic="c"):
    for key, value in items:
        await producer.send(topic, key=key, value=value, partition=0)


def test_cleanup_policies_default_to_delete():
    assert cleanup_policies({}) == {"delete"}
    assert cleanup_policies({"cleanup.policy": "compact,delete"}) == {"compact", "delete"}


def test_compaction_keeps_the_latest_record_per_key_at_its_offset():
    async def main(cluster):
        cluster.create_topic("c", 1, COMPACT, by="test")
        items = [(b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"c", b"1"), (b"a", b"3"), (b"b", b"2")]
        await _send_all(_producer(cluster), items)
        totals = cluster.cleaner.clean()
        kinds = [(e.kind, e.fields) for e in cluster.trace.events if e.actor == "cleaner"]
        return totals, await _read_all(_reader(cluster)), cluster.end_offset(C0), kinds

    totals, got, end, kinds = simulate(main, config=NO_TAIL)
    assert got == [(3, b"c", b"1"), (4, b"a", b"3"), (5, b"b", b"2")]  # offsets unchanged
    assert end == 6
    assert totals["compacted"] == 3
    assert kinds == [("compact", {"tp": C0, "removed": 3, "tombstones": 0})]


def test_delete_topics_are_not_compacted_and_compact_topics_not_expired():
    async def main(cluster):
        cluster.create_topic("c", 1, {"cleanup.policy": "delete"}, by="test")
        cluster.create_topic("k", 1, {**COMPACT, "retention.ms": "1000"}, by="test")
        producer = _producer(cluster)
        await _send_all(producer, [(b"a", b"1"), (b"a", b"2")])
        await _send_all(producer, [(b"a", b"1"), (b"b", b"2")], topic="k")
        await asyncio.sleep(5)
        cluster.cleaner.clean()
        return await _read_all(_reader(cluster)), cluster.beginning_offset(TP("k", 0))

    got, k_start = simulate(main, config=NO_TAIL)
    assert [o for o, _, _ in got] == [0, 1]
    assert k_start == 0  # retention.ms applies under cleanup.policy=delete only


def test_the_active_tail_is_never_compacted():
    async def main(cluster):
        cluster.create_topic("c", 1, COMPACT, by="test")
        items = [(b"a", b"1"), (b"a", b"2"), (b"a", b"3"), (b"a", b"4")]
        await _send_all(_producer(cluster), items)
        cluster.cleaner.clean()
        return await _read_all(_reader(cluster))

    got = simulate(main, config=ClusterConfig(log_cleaner_active_records=2))
    # offsets 0-1 are cleanable: only the latest of *them* survives; the tail (2, 3) is untouched
    assert [o for o, _, _ in got] == [1, 2, 3]


def test_min_compaction_lag_keeps_young_records_dirty():
    async def main(cluster):
        cluster.create_topic("c", 1, {**COMPACT, "min.compaction.lag.ms": "10000"}, by="test")
        producer = _producer(cluster)
        await _send_all(producer, [(b"a", b"1"), (b"a", b"2")])
        await asyncio.sleep(20)
        await _send_all(producer, [(b"a", b"3"), (b"a", b"4")])
        cluster.cleaner.clean()
        return await _read_all(_reader(cluster))

    got = simulate(main, config=NO_TAIL)
    assert [o for o, _, _ in got] == [1, 2, 3]


def test_tombstones_expire_after_delete_retention():
    async def main(cluster):
        cluster.create_topic("c", 1, {**COMPACT, "delete.retention.ms": "10000"}, by="test")
        await _send_all(_producer(cluster), [(b"a", b"1"), (b"b", b"1"), (b"a", None)])
        first = cluster.cleaner.clean()
        early = await _read_all(_reader(cluster))
        await asyncio.sleep(11)
        second = cluster.cleaner.clean()
        late = await _read_all(_reader(cluster))
        return first, early, second, late

    first, early, second, late = simulate(main, config=NO_TAIL)
    assert early == [(1, b"b", b"1"), (2, b"a", None)]  # the young tombstone stays
    assert first == {"compacted": 1, "tombstones": 0, "expired": 0}
    assert late == [(1, b"b", b"1")]
    assert second == {"compacted": 1, "tombstones": 1, "expired": 0}


def test_retention_moves_the_log_start_and_readers_start_there():
    async def main(cluster):
        cluster.create_topic("c", 1, {"cleanup.policy": "delete", "retention.ms": "5000"}, by="test")
        producer = _producer(cluster)
        await _send_all(producer, [(None, b"old-1"), (None, b"old-2"), (None, b"old-3")])
        await asyncio.sleep(6)
        await _send_all(producer, [(None, b"new-1"), (None, b"new-2")])
        totals = cluster.cleaner.clean()
        reader = _reader(cluster)
        fresh = await _read_all(reader)
        reader.seek(C0, 0)  # before the log start: read from the log start
        again = await _read_all(reader)
        begins = await reader.beginning_offsets([C0])
        lines = [e.fields for e in cluster.trace.of_kind("retention")]
        return totals, fresh, again, begins, lines

    totals, fresh, again, begins, lines = simulate(main, config=NO_TAIL)
    assert totals["expired"] == 3
    assert begins == {C0: 3}
    assert [o for o, _, _ in fresh] == [3, 4] == [o for o, _, _ in again]
    assert lines == [{"tp": C0, "removed": 3, "start": 3}]


def test_group_consumer_skips_gaps_and_commits_to_the_end():
    class Listener:
        async def on_partitions_revoked(self, revoked):
            pass

        async def on_partitions_assigned(self, assigned):
            pass

    async def main(cluster):
        cluster.create_topic("c", 1, COMPACT, by="test")
        items = [(b"k%d" % (i % 3), b"%d" % i) for i in range(12)]
        await _send_all(_producer(cluster), items)
        cluster.cleaner.clean()
        consumer = SimTransport(cluster=cluster, name="g").create_consumer(client_id="g", group_id="grp")
        consumer.subscribe(["c"], Listener())
        await consumer.start()
        got = []
        while len(got) < 3:
            batch = await consumer.getmany(1.0)
            got.extend(r.offset for records in batch.values() for r in records)
        position = await consumer.position(C0)
        await consumer.commit({C0: position})
        committed = await consumer.committed(C0)
        await consumer.stop()
        return got, position, committed

    got, position, committed = simulate(main, config=NO_TAIL)
    assert got == [9, 10, 11]
    assert position == committed == 12


def test_records_of_open_transactions_are_never_compacted():
    async def main(cluster):
        cluster.create_topic("c", 1, COMPACT, by="test")
        plain = _producer(cluster)
        await _send_all(plain, [(b"a", b"0")])
        txn = _producer(cluster, name="t", txn_id="tx")
        await txn.start()
        await txn.begin_transaction()
        await _send_all(txn, [(b"a", b"1"), (b"a", b"2")])  # offsets 1, 2: open
        await _send_all(plain, [(b"a", b"3")])  # offset 3, after the open transaction
        cluster.cleaner.clean()
        while_open = [o for o, _, _ in await _read_all(_reader(cluster))]
        await txn.commit_transaction()  # marker at 4
        cluster.cleaner.clean()
        after = await _read_all(_reader(cluster, isolation="read_committed"))
        return while_open, after, cluster.end_offset(C0)

    while_open, after, end = simulate(main, config=NO_TAIL)
    assert while_open == [0, 1, 2, 3]  # nothing at or after the last stable offset is touched
    assert after == [(3, b"a", b"3")]
    assert end == 5


def test_aborted_records_are_compacted_away_and_markers_kept():
    async def main(cluster):
        cluster.create_topic("c", 1, COMPACT, by="test")
        txn = _producer(cluster, name="t", txn_id="tx")
        await txn.start()
        await txn.begin_transaction()
        await _send_all(txn, [(b"x", b"1")])  # offset 0, aborted; marker at 1
        await txn.abort_transaction()
        await _send_all(_producer(cluster), [(b"y", b"1")])  # offset 2
        totals = cluster.cleaner.clean()
        log = cluster.topics["c"].logs[0]
        return totals, [type(e).__name__ for e in log.records]

    totals, kinds = simulate(main, config=NO_TAIL)
    assert totals["compacted"] == 1
    assert kinds == ["NoneType", "ControlMarker", "ConsumerRecord"]


def test_the_cleaner_runs_periodically_in_virtual_time():
    async def main(cluster):
        cluster.create_topic("c", 1, COMPACT, by="test")
        await _send_all(_producer(cluster), [(b"a", b"1"), (b"a", b"2")])
        cluster.cleaner.start(interval=30.0)
        await asyncio.sleep(61)
        cluster.cleaner.stop()
        return cluster.cleaner.passes, [e.fields["removed"] for e in cluster.trace.of_kind("compact")]

    passes, removed = simulate(main, config=NO_TAIL)
    assert passes == 2
    assert removed == [1]  # traced only when a pass removed something
