"""producer_compression_type on a real broker: gzip batches go out compressed and read back whole.

The proof that the records really travel compressed: the topic accepts at
most 64 KiB per batch (``max.message.bytes``) and each record is 200 kB of
very compressible text. With gzip the broker stores them; the same app
without compression is refused by the broker (MessageSizeTooLarge).
"""

from __future__ import annotations

import asyncio
import secrets

import pytest

import detstream
from detstream.errors import ProducerSendError

from .helpers import fold_topic

RECORDS = 12
SIZE = 200_000


def _payload(i: int) -> bytes:
    line = f"record {i:03d} of the compression test; ".encode()
    return (line * (SIZE // len(line) + 1))[:SIZE]


def _app(bootstrap: str, name: str, **settings) -> detstream.App:
    return detstream.App(f"{name}-{secrets.token_hex(3)}", broker=f"kafka://{bootstrap}",
                         web_enabled=False, **settings)


async def _create_small_batch_topic(app: detstream.App, name: str) -> None:
    admin = app.transport.create_admin(client_id="compression-test-admin")
    try:
        created = await admin.create_topic(name, partitions=1,
                                           config={"max.message.bytes": str(64 * 1024)})
        assert created
    finally:
        await admin.stop()


async def _send_all(app: detstream.App, topic_name: str) -> list[int]:
    topic = app.topic(topic_name, value_type=bytes, value_serializer="raw", key_serializer="raw")
    await app.start_client()
    try:
        futures = [await topic.send(key=b"k%d" % i, value=_payload(i)) for i in range(RECORDS)]
        metas = [await asyncio.wait_for(f, 60) for f in futures]
    finally:
        await app.stop()
    return [m.offset for m in metas]


def test_gzip_records_are_stored_compressed_and_consumed_back(kafka_bootstrap: str) -> None:
    topic = f"it-gzip-{secrets.token_hex(4)}"
    app = _app(kafka_bootstrap, "gzip", producer_compression_type="gzip", producer_linger=0.01)

    async def run() -> dict[bytes, bytes]:
        await _create_small_batch_topic(app, topic)
        offsets = await _send_all(app, topic)
        assert sorted(offsets) == list(range(RECORDS))

        def keep(state: dict, record) -> None:
            state[record.key] = record.value

        return await fold_topic(kafka_bootstrap, topic, lambda s: len(s) == RECORDS,
                                "every gzip record read back", apply=keep, partitions=1,
                                at_end=True)

    got = asyncio.run(run())
    assert got == {b"k%d" % i: _payload(i) for i in range(RECORDS)}


def test_the_same_records_uncompressed_are_refused_by_the_broker(kafka_bootstrap: str) -> None:
    """The control: without compression the 200 kB records do not fit the 64 KiB limit."""
    topic = f"it-plain-{secrets.token_hex(4)}"
    app = _app(kafka_bootstrap, "plain")

    async def run() -> None:
        await _create_small_batch_topic(app, topic)
        await _send_all(app, topic)

    with pytest.raises(ProducerSendError, match="MessageSizeTooLarge|RecordTooLarge"):
        asyncio.run(run())
