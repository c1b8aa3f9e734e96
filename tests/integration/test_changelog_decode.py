"""A changelog record the table cannot decode, on a real broker (issue 9).

Before, recovery applied it silently and every later event of that key
crashed. Now recovery follows ``table_changelog_decode_errors``: by default
the worker stops (exit 1) with an error naming the table, the changelog
partition, the offset and the key; with ``"skip"`` it logs the record, leaves
it out and runs on. The bad record is produced straight into the changelog,
as another program (or an older version of the app) would.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.conftest import _create_topic
from tests.integration.helpers import WorkerProcess

APP_SOURCE = '''
import detstream

app = detstream.App(
    {app_id!r},
    broker={broker!r},
    topic_partitions=1,
    web_enabled=False,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    table_changelog_decode_errors={policy!r},
)
words = app.topic({app_id!r} + "-words", value_type=str, internal=True)
counts = app.Table("counts", default=int, key_type=str, value_type=int)


@app.agent(words)
async def count(stream):
    async for word in stream:
        counts[word] += 1
'''


async def write_changelog(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=0)
    finally:
        await producer.stop()


def start_worker(tmp_path: Path, bootstrap: str, policy: str) -> tuple[WorkerProcess, str]:
    app_id = f"it-decode-{secrets.token_hex(4)}"
    (tmp_path / "decode_app.py").write_text(
        APP_SOURCE.format(app_id=app_id, broker=f"kafka://{bootstrap}", policy=policy)
    )
    changelog = f"{app_id}-counts-changelog"
    asyncio.run(_create_topic(bootstrap, changelog, 1, 30.0))
    asyncio.run(write_changelog(bootstrap, changelog, [
        (b'"apple"', b"3"),
        (b'"pear"', b"not a number"),  # offset 1: does not decode as an int
        (b'"plum"', b"5"),
    ]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = ["-m", "detstream", "worker", "decode_app.py", "-l", "info", "--without-web",
            "--datadir", str(tmp_path / "data")]
    return WorkerProcess(tmp_path, env, args, "w1", timeout=45.0), changelog


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_an_undecodable_changelog_record_follows_the_policy(
    kafka_bootstrap: str, tmp_path: Path, policy: str
) -> None:
    worker, changelog = start_worker(tmp_path, kafka_bootstrap, policy)
    try:
        if policy == "raise":
            code = worker.wait()
            text = worker.output() + worker.log()
            assert code == 1, worker.tail()
            assert "'counts'" in text and f"{changelog}[0] offset 1" in text, worker.tail()
            assert "pear" in text and "table_changelog_decode_errors" in text, worker.tail()
        else:
            worker.wait_for("skipped (table_changelog_decode_errors='skip')", in_log=True)
            worker.wait_for("ready:")
            worker.signal(signal.SIGTERM)
            assert worker.wait() == 0, worker.tail()
            assert f"{changelog}[0] offset 1" in worker.log(), worker.tail()
    finally:
        worker.kill()
