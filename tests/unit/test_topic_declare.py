"""Topic declaration at start, as Faust: consumed topics and changelogs are created if missing."""

import asyncio
import logging

import detstream
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def make_app(**settings):
    app = detstream.App("decl", broker="sim://", topic_partitions=4, **settings)
    orders = app.topic("orders", partitions=3)  # not internal
    app.topic("audit")  # only sent to: left to the broker's auto-create, as Faust
    app.topic("clicks")  # consumed, no partitions=: topic_partitions
    counts = app.Table("counts", default=int, partitions=3)

    @app.agent(orders)
    async def count(stream):
        async for event in stream.events():
            counts[event.key] += 1

    @app.agent(app.topic("clicks"))
    async def clicks(stream):
        async for _ in stream:
            pass

    return app


def start_and_look(app, *, before=None):
    async def main(cluster):
        if before is not None:
            before(cluster)
        await app.start()
        await asyncio.sleep(1)
        sizes = {name: cluster.partitions_for(name, by="test")
                 for name in ("orders", "clicks", "audit", "decl-counts-changelog")}
        await app.stop()
        return sizes, cluster

    return simulate(main, seed=1, config=FAST)


def test_consumed_topics_and_changelogs_are_created_with_their_partitions():
    sizes, cluster = start_and_look(make_app())
    assert sizes == {"orders": 3, "clicks": 4, "audit": None, "decl-counts-changelog": 3}
    made = [e.fields["topic"] for e in cluster.trace.of_kind("create-topic")]
    assert {"orders", "clicks"} <= set(made) and "audit" not in made
    assert not cluster.records("orders")  # made by the app's declaration, not by a send


def test_topic_allow_declare_false_creates_nothing():
    sizes, cluster = start_and_look(make_app(topic_allow_declare=False))
    assert sizes == {"orders": None, "clicks": None, "audit": None, "decl-counts-changelog": None}


def test_an_existing_topic_is_kept_and_a_different_size_is_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="detstream.topic"):
        sizes, _ = start_and_look(
            make_app(), before=lambda cluster: cluster.create_topic("orders", 5, by="operator")
        )
    assert sizes["orders"] == 5
    [warning] = [r.getMessage() for r in caplog.records if r.name == "detstream.topic"]
    assert "exists with 5 partitions" in warning and "partitions=3" in warning


def test_a_changelog_no_consumed_topic_matches_is_a_warning_at_start(caplog):
    app = detstream.App("cp", broker="sim://", topic_partitions=8)
    orders = app.topic("orders", partitions=3)
    totals = app.Table("totals", default=int)  # changelog: topic_partitions = 8

    @app.agent(orders)
    async def total(stream):
        async for event in stream.events():
            totals[event.key] += 1

    async def main(cluster):
        app.trace_hook = cluster.trace.record
        await app.start()
        await asyncio.sleep(1)
        producer = SimTransport(cluster=cluster, name="client").create_producer(client_id="c")
        for key in (b"a", b"b", b"c"):
            await producer.send("orders", key=key, value=b"1")
        await asyncio.sleep(3)
        await app.stop()
        return cluster

    with caplog.at_level(logging.WARNING):
        cluster = simulate(main, seed=2, config=FAST)
    [warning] = [r.getMessage() for r in caplog.records if "no topic an agent" in r.getMessage()]
    assert "'cp-totals-changelog' has 8 partitions" in warning and "'orders' has 3" in warning
    at_start, at_write = cluster.trace.of_kind("copartition-mismatch")
    assert at_start.fields["changelog_partitions"] == 8
    assert at_start.fields["source_partitions"] == [3]
    # the first write names its own source, once
    assert at_write.fields == {
        "table": "totals", "source": "orders", "source_partitions": 3,
        "changelog": "cp-totals-changelog", "changelog_partitions": 8,
    }
    [written] = [r.getMessage() for r in caplog.records if "is written from" in r.getMessage()]
    assert "'orders', which has 3 partitions" in written


def test_matching_partition_counts_warn_nothing(caplog):
    with caplog.at_level(logging.WARNING):
        start_and_look(make_app())
    assert not [r for r in caplog.records if "co-partitioned" in r.getMessage()]
