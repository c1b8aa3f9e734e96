"""``@app.agent(topic, isolated_partitions=True)``: one actor per assigned partition, as Faust."""

import asyncio

import pytest

import detstream
from detstream.errors import InvalidArgument
from sim.cluster import ClusterConfig
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def isolated_app(name, log):
    app = detstream.App("iso", broker="sim://", topic_partitions=4)
    app.client_name = name
    events = app.topic("events", partitions=4, key_type=str, value_type=int)
    counts = app.Table("counts", default=int)

    @app.agent(events, isolated_partitions=True)
    async def process(stream):
        log.append((name, "start", sorted(stream.active_partitions)))
        try:
            async for event in stream.events():
                assert event.message.tp in stream.active_partitions
                log.append((name, "event", event.message.tp.partition, id(stream)))
                counts[event.key] += event.value
        finally:
            log.append((name, "stop", sorted(stream.active_partitions)))

    return app, events, counts


def test_one_actor_per_partition_follows_the_assignment():
    log = []

    async def main(cluster):
        one, events, counts = isolated_app("w1", log)
        await one.start()
        await asyncio.sleep(3)
        started_alone = sorted(p.partition for n, kind, ps in
                               [e for e in log if e[1] == "start"] for p in ps)
        for i in range(40):
            await events.send(key=f"k{i % 8}", value=1)
        await asyncio.sleep(3)
        two, _, counts_two = isolated_app("w2", log)
        await two.start()
        await asyncio.sleep(10)
        for i in range(40):
            await events.send(key=f"k{i % 8}", value=1)
        await asyncio.sleep(3)
        totals = {**counts.as_dict(), **counts_two.as_dict()}
        agent = one.agents[next(iter(one.agents))]
        counted = sum(agent.event_counts().values())
        await two.stop()
        await one.stop()
        return started_alone, totals, counted

    started_alone, totals, counted = simulate(main, seed=4, config=FAST)
    assert started_alone == [0, 1, 2, 3]  # actors start with the assignment, before any record
    assert totals == {f"k{i}": 10 for i in range(8)}
    streams_by_partition = {}
    for entry in log:
        if entry[1] == "event":
            streams_by_partition.setdefault((entry[0], entry[2]), set()).add(entry[3])
    assert all(len(ids) == 1 for ids in streams_by_partition.values())  # one actor (stream) each
    stopped = {(n, tuple(ps)) for n, kind, *rest in log if kind == "stop" for ps in rest}
    assert any(n == "w1" for n, _ in stopped)  # w2 took partitions from w1: their actors stopped
    w2_partitions = {p for n, kind, *rest in log if kind == "start" and n == "w2" for p in rest[0]}
    assert w2_partitions and w2_partitions < {detstream.TP("events", p) for p in range(4)}
    assert counted >= 40  # w1's own count outlives its stopped actors


def test_isolated_partitions_takes_an_existing_topic_and_refuses_concurrency():
    app = detstream.App("iso-args", broker="sim://")
    topic = app.topic("t")

    @app.agent(topic, isolated_partitions=True)
    async def fine(stream):
        async for _ in stream:
            pass

    assert fine.isolated_partitions and fine.channel is topic
    with pytest.raises(InvalidArgument, match="concurrency must be 1"):
        app.agent(topic, isolated_partitions=True, concurrency=2)(fine.fun)
    with pytest.raises(InvalidArgument, match="needs a topic"):
        app.agent(app.channel(), isolated_partitions=True, name="chan")(fine.fun)


def test_a_plain_agents_stream_has_no_active_partitions():
    app = detstream.App("plain", broker="sim://")
    assert app.topic("t").stream().active_partitions is None
