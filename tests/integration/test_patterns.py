"""``app.topic(pattern=...)`` on a real broker: existing and later topics are consumed."""

from __future__ import annotations

import asyncio
import secrets

import detstream
from detstream.engine import conductor

from .helpers import produce


def test_a_pattern_subscription_picks_up_a_topic_created_while_running(kafka_bootstrap, monkeypatch):
    monkeypatch.setattr(conductor, "PATTERN_REFRESH", 1.0)
    prefix = f"it-pat-{secrets.token_hex(3)}"
    app = detstream.App(f"{prefix}-app", broker=f"kafka://{kafka_bootstrap}", web_enabled=False)
    # a plain-text upstream: its producers write utf-8 text, not JSON
    events = app.topic(pattern=f"{prefix}-events-.*", value_type=str, value_serializer="raw")
    seen: list[tuple[str, str]] = []

    @app.agent(events)
    async def collect(stream):
        async for event in stream.events():
            seen.append((event.message.topic, event.value))

    async def wait_for(count: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while len(seen) < count and loop.time() < deadline:
            await asyncio.sleep(0.2)

    async def run() -> None:
        admin = app.transport.create_admin(client_id="pattern-test-admin")
        await admin.create_topic(f"{prefix}-events-eu", partitions=2)
        await admin.create_topic(f"{prefix}-other", partitions=1)
        await admin.stop()
        await app.start()
        try:
            await produce(kafka_bootstrap, f"{prefix}-events-eu", ["e1"], value_serializer="raw")
            await produce(kafka_bootstrap, f"{prefix}-other", ["o1"], value_serializer="raw")
            await wait_for(1)
            await produce(kafka_bootstrap, f"{prefix}-events-us", ["u1"],  # auto-created now
                          value_serializer="raw")
            await wait_for(2)
        finally:
            await app.stop()

    asyncio.run(run())
    assert sorted(seen) == [(f"{prefix}-events-eu", "e1"), (f"{prefix}-events-us", "u1")]
