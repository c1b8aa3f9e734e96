"""table-equals-changelog for a key written from several partitions (a table not co-partitioned).

Faust's windowing examples count one key from every partition of an unkeyed
topic. The changelog then holds a value of that key per partition, and a
worker holds one of them (the last write's, as Faust's memory store does):
the check compares it with the partition that holds it, not with a fold of
all partitions.
"""

import asyncio

import detstream
from sim.checks import split_keys, tables_match_changelog
from sim.cluster import ClusterConfig
from sim.testing import run_app

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def counting_app():
    app = detstream.App("split", broker="sim://", topic_partitions=2, table_changelog_cache_size=0)
    events = app.topic("events", partitions=2, internal=True, value_type=str)
    counts = app.Table("counts", default=int)

    @app.agent(events)
    async def count(stream):
        async for _ in stream:
            counts["all"] += 1  # one key, whatever the event's partition

    return app, events, counts


async def send_to(topic, partitions):
    """One event per partition named, processed in that order (each its own fetch)."""
    for partition in partitions:
        await topic.send(value="x", partition=partition)
        await asyncio.sleep(0.2)  # virtual time: the event is processed before the next is sent


def test_a_key_held_as_its_last_partition_wrote_it_passes():
    app, events, counts = counting_app()

    async def body(cluster):
        await asyncio.sleep(1)
        await send_to(events, [1, 0, 1, 1, 0])
        await asyncio.sleep(5)
        return (counts["all"], counts.data.partition_of("all"), split_keys(counts, cluster),
                tables_match_changelog([app], cluster))

    value, holder, shared, violation = run_app(app, body, config=FAST)
    assert (value, holder, shared) == (5, 0, {"all"})
    assert violation is None  # a fold of partitions 0 then 1 would say 4 (partition 1's last)


def test_a_key_matching_no_partition_is_flagged():
    app, events, counts = counting_app()

    async def body(cluster):
        await asyncio.sleep(1)
        await send_to(events, [0, 1])
        await asyncio.sleep(5)
        counts.data.set("all", 99, 1)  # behind the changelog's back
        return tables_match_changelog([app], cluster)

    violation = run_app(app, body, config=FAST)
    assert violation is not None and violation.check == "table-equals-changelog"
    assert "written from several partitions" in violation.message and "'all'" in violation.message
