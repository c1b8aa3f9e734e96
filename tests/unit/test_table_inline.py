"""A table's inline read and write (``Table.__getitem__``, ``Table._write_plain``) do what
the step-by-step path does: same store, same changelog records, same trace, same errors."""

import asyncio
import logging

import pytest

import detstream
from detstream.errors import TableWriteError
from detstream.events import Event, Message, set_current_agent, set_current_event
from detstream.serializers import Schema
from detstream.stores import MemoryStore
from detstream.tables.global_table import GlobalTable
from detstream.tables.set_table import SetTable
from detstream.tables.table import Table


class StepByStep(Table):
    """Overrides a read step and a write step (calling Table's): no inline path."""

    def _get(self, key):
        return super()._get(key)

    def _write(self, key, value, partition):
        super()._write(key, value, partition)


class Agent:
    def __init__(self, concurrency):
        self.name = "agent"
        self.concurrency = concurrency


class Unencodable:
    pass


def in_event(topic, partition, offset=0):
    set_current_event(Event(None, None, None, {}, Message(topic, partition, offset, 0.0, None, None)))


#: (what to do, where: (topic, partition) or None, agent concurrency or None, key, value)
STEPS = [
    ("add", ("words", 1), None, "a", 1),
    ("add", ("words", 1), None, "a", 1),  # its key and value bytes are known now
    ("add", ("words", 1), 1, "b", 1),
    ("add", ("words", 2), None, "a", 1),
    ("add", ("other", 0), None, "a", 1),  # a new source topic: checked once
    ("set", ("words", 1), None, "c", 2.5),  # not an int: encoded each time
    ("set", ("words", 1), None, ("t", 1), 3),  # not a str key
    ("set", ("words", 1), None, b"k", 3),
    ("set", ("words", 1), None, "a", 1),  # an int whose bytes are known, from "a"'s counting
    ("set", ("words", 1), None, "c", 1.0),  # equal to a known int, but not one
    ("set", ("words", 1), None, "e", True),
    ("set", ("words", 1), None, "d", Unencodable()),  # refused: cannot encode
    ("add", None, None, "a", 1),  # refused: outside a stream
    ("add", ("words", 1), 2, "a", 1),  # refused: concurrent agent
    ("add", ("words", 3), None, "a", 1),
    ("set", ("words", 3), None, "a", None),  # deletes
    ("add", ("words", 3), None, "a", 1),
    ("schema", None, None, None, None),  # other codecs: the bytes remembered are stale
    ("add", ("words", 3), None, "a", 1),
    ("add", ("words", 3), None, "b", 1),
]


def run_steps(table_class):
    """The STEPS on a new table of ``table_class``: what each did, the table, trace and records."""
    app = detstream.App("inline", broker="sim://", topic_partitions=4)
    trace = []
    app.tracer.hook = lambda client, kind, **fields: trace.append((kind, fields))
    table = table_class(app, "t", default=int)
    outcomes = []

    async def main():
        for op, where, concurrency, key, value in STEPS:
            if op == "schema":
                table.changelog_topic.schema = Schema(key_serializer="yaml", value_serializer="yaml")
                continue
            set_current_event(None)
            set_current_agent(None if concurrency is None else Agent(concurrency))
            if where is not None:
                in_event(*where)
            try:
                if op == "add":
                    table[key] += value
                else:
                    table[key] = value
                outcomes.append(table[key] if key in table else "gone")
            except TableWriteError as exc:
                outcomes.append(str(exc))
        dirty = [(where, entry.value) for where, entry in table.changelog_cache._dirty.items()]
        return dirty

    dirty = asyncio.run(main())
    store = table.data
    state = {key: (store.get(key), store.partition_of(key)) for key in store.keys()}
    return outcomes, state, dirty, trace, sorted(table._sources_checked)


def test_the_inline_write_and_read_leave_what_the_steps_leave():
    assert Table._plain_write and Table._plain_get
    assert not StepByStep._plain_write and not StepByStep._plain_get
    inline, steps = run_steps(Table), run_steps(StepByStep)
    assert inline == steps
    outcomes, state, dirty, trace, sources = inline
    refused = outcomes[11:14]
    assert outcomes[:11] + outcomes[14:] == [1, 2, 1, 3, 4, 2.5, 3, 3, 1, 1.0, True, 2, "gone", 1, 2, 2]
    assert "cannot encode" in refused[0] and "outside of stream" in refused[1]
    assert "concurrency=2" in refused[2]
    assert state == {"a": (2, 3), "b": (2, 3), "c": (1.0, 1), ("t", 1): (3, 1), b"k": (3, 1), "e": (True, 1)}
    assert dirty[:2] == [((1, b'"a"'), b"1"), ((1, b'"b"'), b"1")] and len(dirty) == 11
    assert ((1, b'"c"'), b"1.0") in dirty and ((1, b'"e"'), b"true") in dirty
    assert dirty[-1] == ((3, b"b\n...\n"), b"2\n...\n")  # yaml, not the json remembered
    assert [kind for kind, _ in trace] == ["table-write"] * 16  # a write each, the tombstone too
    assert sources == ["other", "words"]


def test_a_store_other_than_memory_gets_its_calls_as_ever(monkeypatch):
    """The inline write is for MemoryStore only: another store is written through ``_write``."""
    stored, written = [], []
    real_write = Table._write

    class OtherStore(MemoryStore):
        def set(self, key, value, partition, sent=None):
            stored.append((key, value, partition))
            super().set(key, value, partition, sent=sent)

    def write(self, key, value, partition):
        written.append((key, value, partition))
        real_write(self, key, value, partition)

    monkeypatch.setattr(Table, "_write", write)
    app = detstream.App("other", broker="sim://", topic_partitions=4)
    table = app.Table("t", default=int)
    table.data = OtherStore()

    async def main():
        in_event("words", 1)
        table["a"] += 1

    asyncio.run(main())
    assert written == stored == [("a", 1, 1)]


def test_key_hooks_are_called_overridden_or_patched_onto_the_table():
    seen = []

    class Hooks(Table):
        def on_key_get(self, key):
            seen.append(("get", key))

        def on_key_set(self, key, value):
            seen.append(("set", key, value))

    assert Hooks._plain_write  # the hooks are not steps of a write: the shortcut stays
    app = detstream.App("hooks", broker="sim://", topic_partitions=4)
    table = Hooks(app, "t", default=int)

    async def main():
        in_event("words", 0)
        table["x"] += 1
        table["x"] += 1

    asyncio.run(main())
    assert seen == [("get", "x"), ("set", "x", 1), ("get", "x"), ("set", "x", 2)]

    patched = Table(app, "p", default=int)  # as ``mock.patch.object(table, "on_key_set")`` does
    patched.on_key_set = lambda key, value: seen.append(("patched", key, value))

    async def again():
        in_event("words", 0)
        patched["y"] += 1

    asyncio.run(again())
    assert seen[-1] == ("patched", "y", 1)


def test_table_kinds_that_override_a_write_step_write_through_the_steps():
    assert not GlobalTable._plain_write and not GlobalTable._plain_get
    assert SetTable._plain_write  # it overrides __setitem__ and calls Table's


def test_a_source_with_another_partition_count_warns_once(caplog):
    app = detstream.App("copart", broker="sim://", topic_partitions=4)
    app._partition_counts.update({"words": 2, "copart-t-changelog": 4})
    trace = []
    app.tracer.hook = lambda client, kind, **fields: trace.append(kind)
    table = app.Table("t", default=int)

    async def main():
        for offset in range(3):
            in_event("words", 1, offset)
            table["a"] += 1

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert table["a"] == 3
    assert trace.count("copartition-mismatch") == 1
    assert sum("co-partitioned" in r.getMessage() for r in caplog.records) == 1


@pytest.fixture(autouse=True)
def _no_event_left():
    yield
    set_current_event(None)
    set_current_agent(None)
