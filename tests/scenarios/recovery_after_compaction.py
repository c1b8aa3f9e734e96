"""Faust pain point: recovery from a compacted changelog (faust-inventory §17 #6;
robinhood/faust#218, faust-streaming/faust#176 — recovery waiting for an
offset that compaction or retention removed).

The changelogs are compacted by the simulated log cleaner while workers
crash and restart, so a recovering worker reads a log full of offset gaps,
and a RocksDB worker may hold a stored offset that now points at a hole.
Two tables, one in memory and one in RocksDB, keep the latest value per key
(``DEL`` deletes: tombstones in the changelog); after every recovery each
must still be exactly the fold of the input.

Tombstones outlive the run here (``delete.retention.ms`` of 10 minutes): a
store that was offline for longer than ``delete.retention.ms`` can miss a
tombstone, on Kafka as here, so that setting must exceed a worker's longest
absence.

A third RocksDB table's changelog also has ``retention.ms`` (``compact,delete``):
its head is deleted while workers are down, so a restarted worker's stored
offset can fall before the log start. It must recover without hanging: wipe
the partition and rebuild from the log start (``recovery-reset`` in the trace).
"""

import detstream

#: no standbys: a standby keeps its copy current, so a stored offset never falls behind the log start.
app = detstream.App(
    "compaction-recovery", broker="kafka://localhost:9092", topic_partitions=4,
    table_standby_replicas=0,
)
updates = app.topic("updates", value_type=str, partitions=4, internal=True)

#: tombstones must outlive any worker's absence (see above).
EXACT = {"delete.retention.ms": "600000"}


def changelog(name, **options):
    return app.topic(
        f"compaction-recovery-{name}-changelog", key_type=str, value_type=str,
        key_serializer="json", value_serializer="json", partitions=4, compacting=True,
        acks=False, internal=True, **options,
    )


in_memory = app.Table(
    "in_memory", key_type=str, value_type=str, store="memory://",
    changelog_topic=changelog("in_memory", config=EXACT),
)
in_rocksdb = app.Table(
    "in_rocksdb", key_type=str, value_type=str, store="rocksdb://",
    changelog_topic=changelog("in_rocksdb", config=EXACT),
)
recent = app.Table(
    "recent", key_type=str, value_type=str, store="rocksdb://",
    changelog_topic=changelog("recent", deleting=True, retention=15.0),
)


@app.agent(updates)
async def apply(stream):
    async for raw, update in stream.items():
        key = raw.decode() if isinstance(raw, bytes) else raw
        value = None if update == "DEL" else update
        in_memory[key] = value
        in_rocksdb[key] = value
        recent[key] = value


KEYS = 40


def items(count):
    for i in range(count):
        key = f"k{(i * 7) % KEYS}"
        yield key.encode(), "DEL" if i % 9 == 4 else f"v{i}"


def fold(pairs):
    table = {}
    for key, value in pairs:
        if value == "DEL":
            table.pop(key.decode(), None)
        else:
            table[key.decode()] = value
    return table


ITEMS = list(items(2000))


def sim_scenario(sim):
    sim.producer("updates", ITEMS, keyed=True, every=0.03, name="feed")

    @sim.check
    def tables_are_the_fold_of_input(result):
        expected = fold(ITEMS[: len(result.produced("updates"))])
        for name in ("in_memory", "in_rocksdb"):
            table = result.table(name)
            wrong = sorted(k for k in set(table) | set(expected) if table.get(k) != expected.get(k))
            assert not wrong, f"{name}: keys {wrong[:5]} differ from the fold of the input"
