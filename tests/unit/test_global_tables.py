"""GlobalTable on the simulator: every worker reads the whole changelog and converges."""

import asyncio
import json

import pytest

import detstream
from detstream._types import TP
from detstream.errors import InvalidArgument
from sim.checks import fold_changelog
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)
CHANGELOG = "glob-seen-changelog"
KEYS = [f"k{i}" for i in range(8)]


def build(cluster, name, *, store="memory://", datadir=".", events=None, **table_options):
    """The same app code, fresh for every worker (as separate processes would build it)."""
    app = detstream.App("glob", broker="sim://", store=store, datadir=str(datadir), topic_partitions=2)
    app.client_name, app.trace_hook = name, cluster.trace.record
    topic = app.topic("events", partitions=2, internal=True, value_type=str)
    seen = app.GlobalTable("seen", default=int, **table_options)

    @app.agent(topic)
    async def count(stream):
        async for key in stream:
            seen[key] += 1  # read-your-writes: two quick events of a key must count 2
            if events is not None:
                events.append((name, key))

    return app, seen


async def feed(cluster, keys):
    producer = SimTransport(cluster=cluster, name="client").create_producer(client_id="client")
    for key in keys:
        # the value as a Faust producer writes a str: JSON text (its default value_serializer)
        await producer.send("events", key=key.encode(), value=json.dumps(key).encode())


def test_two_workers_converge_on_the_whole_table():
    events = []

    async def main(cluster):
        one, seen_one = build(cluster, "w1", events=events)
        two, seen_two = build(cluster, "w2", events=events)
        await one.start()
        await two.start()
        await asyncio.sleep(8)  # both joined: each owns one source partition
        await feed(cluster, KEYS * 3)
        await asyncio.sleep(8)
        result = (
            seen_one.as_dict(), seen_two.as_dict(), fold_changelog(seen_one, cluster),
            one.conductor.subscribed_topics(), one.conductor.assignment() | two.conductor.assignment(),
        )
        await two.stop()
        await one.stop()
        return result

    mine, theirs, changelog, subscribed, assigned = simulate(main, seed=1, config=FAST)
    assert {name for name, _ in events} == {"w1", "w2"}  # the work was split
    assert mine == theirs == changelog == {key: 3 for key in KEYS}
    # not co-partitioned, not in the group: every worker reads it on its own
    assert CHANGELOG not in subscribed
    assert not any(tp.topic == CHANGELOG for tp in assigned)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_new_worker_reads_the_whole_changelog_before_its_agents_start(tmp_path, store):
    async def main(cluster):
        one, _ = build(cluster, "w1", store=store, datadir=tmp_path / "w1")
        await one.start()
        await asyncio.sleep(2)
        await feed(cluster, KEYS)
        await asyncio.sleep(5)
        await one.stop()
        late, seen = build(cluster, "w2", store=store, datadir=tmp_path / "w2")
        await late.start()
        at_start = seen.as_dict()  # start returned: recovery is done, no event delivered yet
        await asyncio.sleep(1)
        await late.stop()
        again, seen_again = build(cluster, "w2b", store=store, datadir=tmp_path / "w2")
        await again.start()
        restarted = seen_again.as_dict()
        await asyncio.sleep(1)
        await again.stop()
        starts = [(e.actor, e.fields) for e in cluster.trace.of_kind("global-recovery-start")]
        return at_start, restarted, fold_changelog(seen, cluster), starts

    at_start, restarted, changelog, starts = simulate(main, seed=2, config=FAST)
    assert at_start == restarted == changelog == {key: 1 for key in KEYS}
    actors = [actor for actor, _ in starts]
    assert "w2" in actors
    if store == "rocksdb://":  # the restart on the same datadir had everything on disk already
        assert "w2b" not in actors
    else:  # memory keeps nothing: the whole changelog again
        assert "w2b" in actors


def test_use_partitioner_allows_writes_outside_streams_and_others_see_them():
    async def main(cluster):
        one, seen_one = build(cluster, "w1", use_partitioner=True)
        two, seen_two = build(cluster, "w2", use_partitioner=True)
        await one.start()
        await two.start()
        for key in KEYS:
            seen_one[key] = len(key)  # from no stream at all: placed by the key's hash
        assert seen_one["k1"] == 2  # read-your-writes before the record is read back
        await asyncio.sleep(3)
        partitions = sorted({r.partition for r in cluster.records("glob-seen-changelog")})
        result = seen_two.as_dict(), partitions, seen_one.partition_for_key("k1")
        await two.stop()
        await one.stop()
        return result

    theirs, partitions, k1_partition = simulate(main, seed=3, config=FAST)
    assert theirs == {key: 2 for key in KEYS}
    assert partitions == [0, 1]  # spread by key
    assert k1_partition in (0, 1)


def test_a_worker_reads_its_own_writes_before_they_come_back_from_the_changelog():
    async def main(cluster):
        app, seen = build(cluster, "w1", use_partitioner=True)
        await app.start()
        await asyncio.sleep(1)
        for _ in range(5):
            seen["n"] += 1  # each increment reads the previous one, still in flight
        before = seen["n"], dict(seen._own)
        await asyncio.sleep(2)
        after = seen["n"], dict(seen._own), seen.data.get("n")
        await app.stop()
        return before, after, [r.value for r in cluster.records(CHANGELOG)]

    (early, pending), (late, settled, stored), changelog = simulate(main, seed=6, config=FAST)
    assert early == late == stored == 5
    assert pending  # the overlay answered: the changelog had not been read back yet
    assert settled == {}  # every own write was read back: the overlay is empty again
    assert changelog == [b"1", b"2", b"3", b"4", b"5"]


def test_deletes_and_on_changelog_event_reach_every_worker():
    updates = {"w1": [], "w2": []}

    async def main(cluster):
        apps = []
        for name in ("w1", "w2"):
            app, table = build(
                cluster, name, use_partitioner=True,
                on_changelog_event=lambda event, name=name: updates[name].append(
                    (event.key, event.value)
                ),
            )
            await app.start()
            apps.append((app, table))
        (one, seen_one), (two, seen_two) = apps
        seen_one["a"] = 1
        seen_one["b"] = 2
        del seen_one["a"]
        assert "a" not in seen_one and seen_one.as_dict() == {"b": 2}
        await asyncio.sleep(3)
        result = seen_two.as_dict(), seen_one.as_dict()
        await two.stop()
        await one.stop()
        return result

    theirs, mine = simulate(main, seed=4, config=FAST)
    assert theirs == mine == {"b": 2}
    for name in ("w1", "w2"):
        assert sorted(updates[name], key=repr) == sorted([("a", 1), ("b", 2), ("a", None)], key=repr)


def test_global_table_is_not_in_the_app_tables_and_names_are_unique():
    app = detstream.App("names", broker="sim://")
    table = app.GlobalTable("g", default=int)
    assert isinstance(table, detstream.GlobalTable) and table.is_global
    assert "g" in app.global_tables.tables and "g" not in app.tables.tables
    assert table.changelog_name == "names-g-changelog"
    with pytest.raises(ValueError, match="defined twice"):
        app.GlobalTable("g")
    app.Table("t")
    with pytest.raises(ValueError, match="defined twice"):
        app.GlobalTable("t")


def test_write_to_a_partition_the_changelog_lacks_is_refused():
    app = detstream.App("parts", broker="sim://", topic_partitions=4)
    table = app.GlobalTable("g", partitions=2)
    table.partition_count = 2
    assert _at_partition(table, 1) == 1
    with pytest.raises(InvalidArgument, match="use_partitioner=True"):
        _at_partition(table, 3)


def _at_partition(table, partition):
    """Write as if processing an event of ``partition`` (no app needs to run for the check)."""
    from detstream.events import Event, Message, set_current_event

    message = Message("in", partition, 0, 0.0, b"k", b"v")
    set_current_event(Event(table.app, "k", "v", {}, message))
    try:
        return table._partition_for_write("set", "k")
    finally:
        set_current_event(None)


def test_changelog_partitions_of_the_global_table_are_all_read():
    async def main(cluster):
        app, table = build(cluster, "w1")
        await app.start()
        tps = sorted(app.global_tables._consumer.assignment())
        await asyncio.sleep(1)
        await app.stop()
        return tps, table.partition_count

    tps, count = simulate(main, seed=5, config=FAST)
    assert tps == [TP(CHANGELOG, 0), TP(CHANGELOG, 1)] and count == 2


def test_a_killed_worker_reopens_its_rocksdb_global_table_and_catches_up():
    from sim.faults import Fault, FaultPlan
    from sim.runner import SimOptions, run

    plan = FaultPlan("file", ("crash",), (Fault(6.0, "crash", "w1", 3.0),))
    report = run("tests/apps/global_counts.py", SimOptions(seed=3, duration=20.0, plan=plan))
    assert report.ok, report.violations
    restart = next(e.time for e in report.trace.of_kind("start") if e.actor == "w1" and e.time > 6)
    catch_up = [e for e in report.trace.of_kind("global-recovery-start")
                if e.actor == "w1" and e.time >= restart]
    assert catch_up  # it read what others wrote while it was down, from where its disk stopped
    assert any(start > 0 for e in catch_up for start in e.fields["start"])
    assert not any(e.kind == "engine-error" for e in report.trace.events)
