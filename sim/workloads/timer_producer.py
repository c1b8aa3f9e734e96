"""A timer that produces: ``@app.timer(0.25)`` sends numbered ticks, an agent counts them.

Every worker incarnation (each start imports the project afresh) numbers its
ticks 0, 1, 2, ... under a key of its own and awaits each send's
acknowledgement before the next tick, so a send made outside any event (no
input offset to redo it) is the only thing that makes a tick exist. The
timers run during the main phase and stop when it ends; a worker restarted
later runs none. An agent counts the ticks per key in a table and keeps the
highest number it saw.

Checks (at-least-once): per key, the ticks in the log are 0..n with no gap
(an acknowledged tick is never lost; a tick in flight when its worker died may
be missing only at the end) and never go back (a retried send appends before
the next tick is sent); the table's highest number per key is the log's, its
count is at least the key's number of records in the log (each tick counted
at least once), and exactly that when no fault can make the group redo work.
"""

import uuid
from typing import cast

import detstream

app = detstream.App(
    "timer-producer", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="at_least_once", broker_commit_interval=0.3,
)


class Tick(detstream.Record):
    source: str
    seq: int


ticks = app.topic("ticks", key_type=str, value_type=Tick, partitions=4, internal=True)
tick_counts = app.Table("tick_counts", default=int, key_type=str, value_type=int)
last_tick = app.Table("last_tick", default=lambda: -1, key_type=str, value_type=int)

SOURCE = uuid.uuid4().hex[:12]  # noqa: TID251 - this incarnation; seeded under the simulator
SENT = [0]


@app.timer(0.25)
async def tick():
    seq = SENT[0]
    sent = await ticks.send(key=SOURCE, value=Tick(source=SOURCE, seq=seq))
    await sent  # acknowledged: only then is the next number used
    SENT[0] = seq + 1


@app.agent(ticks)
async def count(stream):
    async for key, value in stream.items():
        tick_counts[key] += 1
        last_tick[key] = max(last_tick[key], value.seq)


def _may_redo(result):
    return result.crashes or any(f.unreachable for f in result.faults)


def sim_scenario(sim):
    def logged(result):
        per_key: dict[str, list[int]] = {}
        for record in result.records("ticks"):
            value = cast(Tick, Tick.loads(record.value))
            assert record.key.decode() == value.source, record
            per_key.setdefault(value.source, []).append(value.seq)
        # Faults may refuse or block every tick of the main phase (wire, chaos seed 3: a broker
        # down, then w1's sends refused, w2 off for 65 s, w3 crashed): nothing acknowledged,
        # nothing to lose. Without faults, no tick at all means the workload tested nothing.
        assert per_key or result.faults, "the timers sent nothing in a run without faults"
        return per_key

    @sim.check
    def ticks_have_no_gap_and_never_go_back(result):
        for key, seqs in logged(result).items():
            assert sorted(set(seqs)) == list(range(max(seqs) + 1)), f"{key}: gap in {seqs}"
            assert seqs == sorted(seqs), f"{key}: ticks out of order: {seqs}"

    @sim.check
    def table_agrees_with_the_log(result):
        per_key = logged(result)
        counts, last = result.table("tick_counts"), result.table("last_tick")
        assert last == {k: max(s) for k, s in per_key.items()}, (last, per_key)
        low = {k: (counts.get(k, 0), len(s)) for k, s in per_key.items() if counts.get(k, 0) < len(s)}
        assert not low, f"ticks counted less often than logged (table, log): {low}"
        if not _may_redo(result):
            assert counts == {k: len(s) for k, s in per_key.items()}, (counts, per_key)
