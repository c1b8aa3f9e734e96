"""A running worker whose commit's writes are unacknowledged when its membership goes in doubt
crashes (real broker).

At least once, with a table. The table's changelog partition is muted in
aiokafka's sender (as it mutes a partition with a batch in flight), so the
commit's write to it waits in the client, unacknowledged, as behind a
leader that does not answer. Then aiokafka's heartbeat task is stopped (the
simulator's ``stall``). Half the 6 s session later the member is in doubt,
and the group may give its partitions to another member soon; a write sent
after that would land on top of the new owner's. So the commit raises
``MembershipInDoubtError`` and the app crashes: its stop, in doubt, closes
the producer as an abort, and a process's end takes the writes with it.
With heartbeats flowing the same commit waits (a whole session of answered
heartbeats, with no crash).
"""

from __future__ import annotations

import asyncio
import logging
import secrets

import pytest
from aiokafka import TopicPartition

from detstream.errors import MembershipInDoubtError

from .helpers import click_counter, committed_offset
from .test_aiokafka_driver import until

EVENTS = ["a", "b", "a"]


@pytest.mark.parametrize("starved", [True, False], ids=["in-doubt", "healthy"])
def test_a_commit_whose_writes_are_unacknowledged_in_doubt_crashes_the_app(
    kafka_bootstrap: str, caplog, starved: bool
) -> None:
    counter = click_counter(kafka_bootstrap, f"it-doubt-flush-{secrets.token_hex(3)}", len(EVENTS),
                            commit_interval=0.5)
    app, clicks, seen = counter.app, counter.clicks, counter.seen

    async def run() -> BaseException | None:
        await counter.start_with(kafka_bootstrap, EVENTS)
        # the changelog's writes wait in the client: their acknowledgement never comes
        muted = app.producer._producer._producer._sender._muted_partitions
        changelog = TopicPartition(f"{app.conf.id}-counts-changelog", 0)
        muted.add(changelog)
        try:
            await asyncio.wait_for(counter.counted.wait(), 60)
            await until(lambda: not app.producer.settled, "the commit's flush of the changelog to begin")
            consumer = app.conductor.consumer
            if starved:  # the fault: aiokafka's heartbeats stop, processing would go on
                await consumer._consumer._coordinator._stop_heartbeat_task()
                await until(lambda: app.crashed, "the crash (3 s to the doubt, 1 s to its second look)")
                return app.crash_reason
            # a whole session of answered heartbeats since the flush began: in doubt, the
            # crash would have come by then (half a session, then a heartbeat interval)
            began = asyncio.get_running_loop().time()
            session = app.conf.broker_session_timeout
            await until(lambda: consumer._answered_at > began + session or app.crashed,
                        "a heartbeat answered a whole session after the flush began")
            assert not consumer.membership_in_doubt and not app.crashed
            muted.discard(changelog)
            await clicks.send(value="d")  # wakes aiokafka's sender: the changelog write goes out
            await until(lambda: len(seen) == len(EVENTS) + 1, "the fourth event")
            return None
        finally:
            await app.stop()

    with caplog.at_level(logging.WARNING):
        reason = asyncio.run(run())
    committed = asyncio.run(committed_offset(kafka_bootstrap, app.conf.id, clicks.get_topic_name()))

    if starved:
        assert isinstance(reason, MembershipInDoubtError), reason
        assert committed is None, f"offsets committed up to {committed} over unacknowledged writes"
    else:
        assert reason is None
        assert committed == len(EVENTS) + 1
