"""Topic declaration on a real broker: what agents consume is created with its partitions=."""

from __future__ import annotations

import asyncio
import logging
import secrets

import detstream


def test_consumed_topics_and_changelogs_get_their_declared_partitions(kafka_bootstrap, caplog):
    prefix = f"it-decl-{secrets.token_hex(3)}"
    app = detstream.App(
        f"{prefix}-app", broker=f"kafka://{kafka_bootstrap}", web_enabled=False,
        topic_partitions=2,
    )
    orders = app.topic(f"{prefix}-orders", partitions=3)  # not internal
    clicks = app.topic(f"{prefix}-clicks")  # consumed, no partitions=: topic_partitions
    app.topic(f"{prefix}-audit")  # never consumed: not declared (left to the broker)
    counts = app.Table("counts", default=int, partitions=3)
    totals = app.Table("totals", default=int)  # topic_partitions, as clicks: co-partitioned

    @app.agent(orders)
    async def count(stream):
        async for event in stream.events():
            counts[event.key] += 1

    @app.agent(clicks)
    async def click(stream):
        async for event in stream.events():
            totals[event.key] += 1

    async def run() -> dict[str, int | None]:
        await app.start()
        try:
            names = [f"{prefix}-orders", f"{prefix}-clicks", f"{prefix}-audit",
                     counts.changelog_name, totals.changelog_name]
            return {name: await app.admin.partitions_for(name) for name in names}
        finally:
            await app.stop()

    with caplog.at_level(logging.WARNING):
        sizes = asyncio.run(run())
    assert sizes == {
        f"{prefix}-orders": 3, f"{prefix}-clicks": 2, f"{prefix}-audit": None,
        counts.changelog_name: 3, totals.changelog_name: 2,
    }
    assert not [r for r in caplog.records if "co-partitioned" in r.getMessage()]


def test_a_changelog_partition_count_no_input_has_is_a_warning(kafka_bootstrap, caplog):
    prefix = f"it-copart-{secrets.token_hex(3)}"
    app = detstream.App(
        f"{prefix}-app", broker=f"kafka://{kafka_bootstrap}", web_enabled=False,
        topic_partitions=4,
    )
    orders = app.topic(f"{prefix}-orders", partitions=3)
    totals = app.Table("totals", default=int)  # topic_partitions: 4

    @app.agent(orders)
    async def total(stream):
        async for event in stream.events():
            totals[event.key] += 1

    async def run() -> None:
        await app.start()
        await app.stop()

    with caplog.at_level(logging.WARNING, logger="detstream.app"):
        asyncio.run(run())
    [warning] = [r.getMessage() for r in caplog.records if "co-partitioned" in r.getMessage()]
    assert f"'{totals.changelog_name}' has 4 partitions" in warning
    assert f"'{prefix}-orders' has 3" in warning
