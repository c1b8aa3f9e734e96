"""SetTable and SetGlobalTable: set operations, full-set changelog records, exact recovery."""

import asyncio
import json

import pytest

import detstream
from detstream.errors import InvalidArgument
from sim.checks import fold_changelog, tables_match_changelog
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def apply_op(members, op, args):
    """One command of the test stream on a ChangeloggedSet."""
    if op == "add":
        members.add(args[0])
    elif op == "discard":
        members.discard(args[0])
    elif op == "update":
        members.update(args)
    elif op == "difference_update":
        members.difference_update(args)
    elif op == "intersection_update":
        members.intersection_update(args)
    elif op == "symmetric_difference_update":
        members.symmetric_difference_update(args)
    elif op == "ior":
        members |= set(args)
    elif op == "clear":
        members.clear()


def build(cluster, name, *, kind="SetTable", store="memory://", datadir="."):
    app = detstream.App("sets", broker="sim://", store=store, datadir=str(datadir), topic_partitions=2)
    app.client_name, app.trace_hook = name, cluster.trace.record
    commands = app.topic("commands", partitions=2, internal=True, value_type=str)
    table = getattr(app, kind)("members", value_type=str)

    @app.agent(commands)
    async def run(stream):
        async for command in stream:
            op, key, *args = command.split(":")
            if op == "replace":
                table[key] = set(args)
            else:
                members = table[key]
                apply_op(members, op, args)
                table[key] = members  # what `table[k] |= ...` does: a no-op for the live view

    return app, table


async def feed(cluster, commands):
    producer = SimTransport(cluster=cluster, name="client").create_producer(client_id="client")
    for command in commands:
        key = command.split(":")[1]
        # the value as a Faust producer writes a str: JSON text (its default value_serializer)
        await producer.send("commands", key=key.encode(), value=json.dumps(command).encode())


COMMANDS = [
    "add:fruit:apple", "add:fruit:pear", "add:fruit:apple",  # a repeated add writes nothing
    "update:fruit:plum:fig", "discard:fruit:pear", "discard:fruit:kiwi",
    "add:veg:leek", "ior:veg:kale:bean", "difference_update:veg:kale",
    "intersection_update:veg:bean:corn", "symmetric_difference_update:veg:bean:pea",
    "add:gone:x", "clear:gone", "replace:nums:1:2:3", "replace:nums:2:3",
]
EXPECTED = {
    "fruit": frozenset({"apple", "plum", "fig"}),
    "veg": frozenset({"pea"}),
    "nums": frozenset({"2", "3"}),
}


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_set_operations_changelog_full_sets_and_recover_exactly(tmp_path, store):
    async def main(cluster):
        app, table = build(cluster, "w1", store=store, datadir=tmp_path)
        await app.start()
        await asyncio.sleep(1)
        await feed(cluster, COMMANDS)
        await asyncio.sleep(5)
        before = table.as_dict()
        reads = (set(table["fruit"]), "apple" in table["fruit"], len(table["veg"]), table["nope"] == set())
        await app.stop()
        again, recovered = build(cluster, "w1b", store=store, datadir=tmp_path)
        await again.start()
        await asyncio.sleep(5)
        after = recovered.as_dict()
        violation = tables_match_changelog([again], cluster)
        await again.stop()
        records = [(r.key, r.value) for r in cluster.records("sets-members-changelog")]
        return before, reads, after, violation, records

    before, reads, after, violation, records = simulate(main, seed=1, config=FAST)
    assert before == after == EXPECTED
    assert all(isinstance(v, frozenset) for v in after.values())
    assert violation is None
    assert reads == ({"apple", "plum", "fig"}, True, 1, True)
    fruit = [value for key, value in records if key == b'"fruit"']
    # the whole set, sorted: each record alone is the key's value (compactable, replayable);
    # the changes made between two commits leave one record (the changelog cache)
    assert fruit[-1] == b'["apple","fig","plum"]'
    gone = [value for key, value in records if key == b'"gone"']
    assert gone[-1] is None  # an emptied set is deleted: a tombstone


def test_set_global_table_converges_on_two_workers():
    async def main(cluster):
        one, table_one = build(cluster, "w1", kind="SetGlobalTable")
        two, table_two = build(cluster, "w2", kind="SetGlobalTable")
        await one.start()
        await two.start()
        await asyncio.sleep(8)
        await feed(cluster, COMMANDS)
        await asyncio.sleep(8)
        result = table_one.as_dict(), table_two.as_dict(), fold_changelog(table_one, cluster)
        await two.stop()
        await one.stop()
        return result

    mine, theirs, changelog = simulate(main, seed=2, config=FAST)
    assert mine == theirs == changelog == EXPECTED
    assert isinstance(mine["fruit"], frozenset)


def test_changelogged_set_view_semantics():
    app = detstream.App("view", broker="sim://")
    table = app.SetTable("s")
    view = table["missing"]
    assert isinstance(view, detstream.ChangeloggedSet)
    assert view == set() and len(view) == 0 and "x" not in view
    assert "missing" not in table  # reading creates nothing
    assert table.members("missing") == frozenset()
    with pytest.raises(TypeError):
        hash(view)


def test_binary_operators_on_a_set_view_return_frozensets_and_write_nothing():
    app = detstream.App("ops", broker="sim://")
    table = app.SetTable("s")
    view = table["k"]
    results = [view | {"a"}, {"a"} | view, view & {"a"}, {"a", "b"} - view, view - {"a"},
               view ^ {"b"}, {"b"} ^ view]
    assert results == [{"a"}, {"a"}, set(), {"a", "b"}, set(), {"b"}, {"b"}]
    assert all(type(result) is frozenset for result in results)
    assert "k" not in table  # reading and combining wrote nothing


def test_bad_set_table_arguments_are_refused():
    app = detstream.App("badsets", broker="sim://")
    with pytest.raises(InvalidArgument, match="start_manager=True"):
        app.SetTable("a", start_manager=True)
    with pytest.raises(InvalidArgument, match="default is always the empty set"):
        app.SetTable("b", default=list)
    with pytest.raises(InvalidArgument, match="cannot be windowed"):
        app.SetTable("c", window=detstream.TumblingWindow(10))
    assert isinstance(app.SetTable("d", default=set), detstream.SetTable)
    assert isinstance(app.SetGlobalTable("e"), detstream.GlobalTable)
