"""A worker that stops while its membership is in doubt gives its final commit up (real broker).

At least once, with a table: the worker processes five events, and its
heartbeats are starved (aiokafka's heartbeat task stopped: the fault the
simulator calls ``stall``, a process whose heartbeats do not get out while
it goes on). Half its 6 s session later it is in doubt: the group may give
its partitions to another member soon. Its stop must then not flush its
cached table writes or commit (a retry of them could land after the new
owner's writes), and close its producer at once. The same stop with
heartbeats flowing commits the five events and flushes their counts.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from .helpers import click_counter, committed_offset
from .test_aiokafka_driver import until

EVENTS = ["a", "b", "a", "c", "a"]


async def _records_in(bootstrap: str, topic: str) -> int:
    """The end offset of ``topic``'s one partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        return (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()


@pytest.mark.parametrize("starved", [True, False], ids=["in-doubt", "healthy"])
def test_a_stop_in_doubt_gives_its_final_commit_up_and_flushes_nothing(
    kafka_bootstrap: str, caplog, starved: bool
) -> None:
    counter = click_counter(kafka_bootstrap, f"it-doubt-stop-{secrets.token_hex(3)}", len(EVENTS),
                            commit_interval=600.0)  # nothing committed but by the stop
    app, clicks = counter.app, counter.clicks

    async def run() -> tuple[int | None, int]:
        await counter.start_with(kafka_bootstrap, EVENTS)
        try:
            await asyncio.wait_for(counter.counted.wait(), 60)
            consumer = app.conductor.consumer
            if starved:  # the fault: aiokafka's heartbeats stop, processing would go on
                await consumer._consumer._coordinator._stop_heartbeat_task()
                await until(lambda: consumer.membership_in_doubt, "the doubt (3 s)")
            else:
                assert not consumer.membership_in_doubt
        finally:
            await app.stop()
        committed = await committed_offset(kafka_bootstrap, app.conf.id, clicks.get_topic_name())
        return committed, await _records_in(kafka_bootstrap, f"{app.conf.id}-counts-changelog")

    with caplog.at_level(logging.WARNING):
        committed, changelog_records = asyncio.run(run())

    given_up = "final commit given up while stopping: no heartbeat answered" in caplog.text
    if starved:
        assert given_up
        assert committed is None, f"a stop in doubt committed up to {committed}"
        assert changelog_records == 0, "a stop in doubt flushed its cached table writes"
    else:
        assert not given_up
        assert committed == len(EVENTS)
        assert changelog_records == 3  # one record per key: the cache coalesces a's writes
