"""Faust pain point: commits stuck before offset gaps (faust-inventory §17 #2;
robinhood/faust#458 "Has not committed TP at all", faust-streaming/faust#175,
#166 — a consumer of a compacted or transactional topic never commits to the end
because the offsets it waits for are not in the log).

``mid`` is full of gaps: it is written in transactions (each commit or abort
takes an offset for its marker, a crash leaves aborted records) and it is
compacted by the log cleaner while ``collect``, a slow agent, still lags
behind — records it has not read yet vanish under it. The group's committed
offsets must still reach the end of every partition (the run's convergence
check), and nothing is lost: the table holds the latest value of every key
(compaction keeps exactly those), exactly, under crashes.
"""

import asyncio

import detstream

app = detstream.App(
    "gaps", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="exactly_once",
)
raw = app.topic("raw", value_type=str, partitions=4, internal=True)
mid = app.topic("mid", value_type=str, partitions=4, internal=True, compacting=True)
latest = app.Table("latest", key_type=str, value_type=str)


@app.agent(raw)
async def forward(stream):
    async for key, value in stream.items():
        await mid.send(key=key, value=value)


@app.agent(mid)
async def collect(stream):
    async for key, value in stream.items():
        await asyncio.sleep(0.1)  # slow: a backlog builds up and is compacted under it
        latest[key.decode() if isinstance(key, bytes) else key] = value


ITEMS = [(f"k{(i * 11) % 30}".encode(), f"v{i}") for i in range(1500)]


def sim_scenario(sim):
    sim.producer("raw", ITEMS, keyed=True, every=0.01, name="feed")

    @sim.check
    def latest_value_of_every_key(result):
        expected = {key.decode(): value for key, value in ITEMS[: len(result.produced("raw"))]}
        table = result.table("latest")
        wrong = sorted(k for k in set(table) | set(expected) if table.get(k) != expected.get(k))
        assert not wrong, f"keys {wrong[:5]} are not at their latest input value"
