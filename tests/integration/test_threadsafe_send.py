"""``app.send_threadsafe`` against a real Kafka broker: threads hand their sends to the
app's event loop and get the broker's RecordMetadata back."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets

import detstream
from tests.integration.helpers import fold_topic

THREADS, PER_THREAD = 3, 20


def test_threads_send_through_a_running_app(kafka_bootstrap, new_topic):
    topic = new_topic(partitions=2)

    async def main():
        app = detstream.App(f"it-threads-{secrets.token_hex(4)}",
                            broker=f"kafka://{kafka_bootstrap}", web_enabled=False)
        await app.start_client()  # the producer is all a sender needs
        try:
            def sender(n):
                futures = [app.send_threadsafe(topic, key=f"t{n}".encode(), value=f"{n}-{i}")
                           for i in range(PER_THREAD)]
                return [f.result(timeout=60) for f in futures]

            loop = asyncio.get_running_loop()
            with concurrent.futures.ThreadPoolExecutor(THREADS) as pool:
                metadata = await asyncio.gather(
                    *(loop.run_in_executor(pool, sender, n) for n in range(THREADS)))
        finally:
            await app.stop()
        records = await fold_topic(
            kafka_bootstrap, topic, lambda got: len(got) >= THREADS * PER_THREAD,
            "every record sent by the threads", state=[],
            apply=lambda got, record: got.append((record.key, record.value)), partitions=2)
        return metadata, records

    metadata, records = asyncio.run(main())
    for sent in metadata:
        assert len({m.partition for m in sent}) == 1  # one key per thread, one partition
        assert [m.offset for m in sent] == sorted(m.offset for m in sent)
    for n in range(THREADS):
        mine = [value for key, value in records if key == f"t{n}".encode()]
        assert mine == [f'"{n}-{i}"'.encode() for i in range(PER_THREAD)]  # json, in order
