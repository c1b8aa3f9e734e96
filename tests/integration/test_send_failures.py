"""A send the broker's client refuses fails its event, on a real broker (issue 9).

An agent forwards a value larger than ``producer_max_request_size``: aiokafka
refuses it (``MessageSizeTooLargeError``). The failure must be logged naming
the output topic and the input event, reach the agent's ``on_error``, crash
the app, and the input offset must not be committed past the event, under
both guarantees. No "Task exception was never retrieved".
"""

from __future__ import annotations

import asyncio
import gc
import logging
import secrets

import pytest

import detstream
from detstream.engine.producer import SendFailed

from .helpers import committed_offset, produce

ORDERS = ["tea", "cake", "huge", "scone", "jam"]
HUGE_AT = ORDERS.index("huge")


def _when_committed(app: detstream.App, offset: int) -> asyncio.Event:
    """An event set once a commit of the app reaches ``offset`` (no polling, no sleeps)."""
    reached = asyncio.Event()
    target, name = (app.producer, "commit_transaction") if app.exactly_once else (
        app.conductor.consumer, "commit")
    original = getattr(target, name)

    async def spy(offsets, *args):
        await original(offsets, *args)
        if any(o >= offset for o in offsets.values()):
            reached.set()

    setattr(target, name, spy)
    return reached


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_an_oversized_output_fails_its_event_and_its_offset_is_not_committed(
    kafka_bootstrap, caplog, guarantee
):
    prefix = f"it-refused-{secrets.token_hex(3)}"
    app = detstream.App(
        f"{prefix}-app", broker=f"kafka://{kafka_bootstrap}", web_enabled=False,
        producer_max_request_size=10_000, broker_commit_interval=0.5,
        processing_guarantee=guarantee,
    )
    # plain text in and out: an upstream that writes utf-8 text, not JSON
    orders = app.topic(f"{prefix}-orders", value_type=str, value_serializer="raw")
    receipts = app.topic(f"{prefix}-receipts", value_type=str, value_serializer="raw")
    errors: list[BaseException] = []

    @app.agent(orders, on_error=lambda agent, exc: errors.append(exc))
    async def receipt(stream):
        async for order in stream:
            await receipts.send(value=order * (5_000 if order == "huge" else 1))

    async def run() -> int | None:
        admin = app.transport.create_admin(client_id=f"{prefix}-admin")
        await admin.create_topic(orders.get_topic_name(), partitions=1)
        await admin.create_topic(receipts.get_topic_name(), partitions=1)
        await admin.stop()
        await produce(kafka_bootstrap, orders.get_topic_name(), ORDERS[:HUGE_AT], value_serializer="raw")
        await app.start()
        try:
            # the events before the huge one are committed as usual ...
            await asyncio.wait_for(_when_committed(app, HUGE_AT).wait(), 60)
            await produce(kafka_bootstrap, orders.get_topic_name(), ORDERS[HUGE_AT:],
                          value_serializer="raw")
            # ... and the huge one fails: the app crashes (mode's crash event)
            await asyncio.wait_for(app._crashed.wait(), 60)
        finally:
            await app.stop()
        gc.collect()  # an unretrieved failed future would log "never retrieved" now
        await asyncio.sleep(0)
        return await committed_offset(kafka_bootstrap, app.conf.id, orders.get_topic_name())

    with caplog.at_level(logging.ERROR):
        committed = asyncio.run(run())

    assert committed == HUGE_AT, f"committed {committed}: not up to, or past, the failed event"
    assert len(errors) == 1 and isinstance(errors[0], SendFailed), errors
    failure = errors[0]
    assert (failure.topic, failure.tp.topic, failure.offset) == (
        receipts.get_topic_name(), orders.get_topic_name(), HUGE_AT,
    )
    assert "MessageSizeTooLargeError" in str(failure)
    logged = caplog.text
    assert f"send to '{receipts.get_topic_name()}' failed" in logged
    assert f"output of {orders.get_topic_name()}[0] offset {HUGE_AT}" in logged
    assert "never retrieved" not in logged
