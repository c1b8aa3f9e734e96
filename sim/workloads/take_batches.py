"""Batches: ``stream.take(10, within=0.5)`` under exactly-once.

The agent collects up to 10 readings, or what came within 0.5 s of the first
one, and sends one record per batch: its readings' ids, their count and their
sum. A batch's events are acked only when the agent asks for the next batch,
so an exactly-once commit must wait for the batch in hand (``take`` stashes
the event that would start a new batch while a commit is due): a
transaction holds the output of exactly the offsets it commits. A crash, a
fenced commit or an aborted transaction redoes whole batches, and their
output in the aborted transaction must never show.

Checks, on what a read_committed reader sees (``result.records`` leaves out
aborted records): every reading is in exactly one committed batch (none
lost, none twice); each batch's count and sum are those of its ids, and no
batch is larger than 10; the table of batches per source partition counts
exactly the committed batches made from it.
"""

from collections import Counter
from typing import cast

import detstream

app = detstream.App(
    "take-batches", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="exactly_once", broker_commit_interval=0.5,
)


class Batch(detstream.Record):
    ids: list
    count: int
    total: int


readings = app.topic("readings", key_type=str, value_type=int, partitions=4, internal=True)
batches = app.topic("batches", key_type=str, value_type=Batch, partitions=2, internal=True)
batch_counts = app.Table("batch_counts", default=int, key_type=str, value_type=int)


@app.agent(readings)
async def collect(stream):
    async for values in stream.take(10, within=0.5):
        event = detstream.current_event()  # the batch's last event
        assert event is not None and event.message is not None
        partition = str(event.message.partition)
        batch_counts[partition] += 1
        await batches.send(key=partition, value=Batch(ids=values, count=len(values), total=sum(values)))


READINGS = [(f"sensor-{i % 5}", i) for i in range(400)]


def sim_scenario(sim):
    sim.producer("readings", READINGS, keyed=True, every=0.025, name="sensors")

    @sim.check
    def every_reading_in_exactly_one_batch(result):
        seen: Counter[int] = Counter()
        for record in result.records("batches"):
            batch = cast(Batch, Batch.loads(record.value))
            assert batch.count == len(batch.ids) and batch.total == sum(batch.ids), batch
            assert 1 <= batch.count <= 10, f"a batch of {batch.count}"
            seen.update(batch.ids)
        produced = Counter(result.produced("readings"))
        missing = sorted(produced - seen)
        assert not missing, f"{len(missing)} readings in no committed batch, e.g. {missing[:5]}"
        twice = sorted(seen - produced)
        assert not twice, f"{len(twice)} readings in two committed batches, e.g. {twice[:5]}"

    @sim.check
    def table_counts_committed_batches(result):
        logged = Counter(r.key.decode() for r in result.records("batches"))
        assert result.table("batch_counts") == dict(logged)
