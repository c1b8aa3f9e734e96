"""``detstream worker --debug --blocking-timeout S --datadir DIR`` on a real broker.

A worker process whose agent blocks the loop (``time.sleep``: that is the
behaviour under test) logs the blocking stack with the agent's frame, keeps
going, and keeps its RocksDB table under the ``--datadir`` given on the
command line rather than the app's own datadir setting.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path

import pytest

from tests.integration.helpers import WorkerProcess, fold_topic, produce

APP_SOURCE = '''
import os
import time

import detstream

app = detstream.App(
    os.environ["IT_APP_ID"],
    broker=os.environ["DETSTREAM_IT_BROKER"],
    store="rocksdb://",
    datadir="the-settings-datadir",
    topic_partitions=1,
    broker_commit_interval=0.5,
)
events = app.topic(os.environ["IT_TOPIC"], value_type=str)
seen = app.Table("seen", default=int, key_type=str, value_type=int, partitions=1)


@app.agent(events)
async def slow_agent(stream):
    async for value in stream:
        if value == "block":
            time.sleep(1.0)  # blocks the event loop: the detector must point here
        seen[value] += 1


if __name__ == "__main__":
    app.main()
'''


@pytest.fixture
def worker_dir(tmp_path: Path):
    (tmp_path / "debug_app.py").write_text(APP_SOURCE)
    spawned: list[WorkerProcess] = []
    yield tmp_path, spawned
    for w in spawned:
        w.kill()


def test_blocking_agent_is_reported_and_tables_live_in_the_cli_datadir(
    kafka_bootstrap: str, new_topic, worker_dir
) -> None:
    tmp_path, spawned = worker_dir
    topic = new_topic(partitions=1)
    app_id = f"it-debug-{secrets.token_hex(4)}"
    env = {**os.environ, "DETSTREAM_IT_BROKER": f"kafka://{kafka_bootstrap}", "IT_APP_ID": app_id,
           "IT_TOPIC": topic, "PYTHONUNBUFFERED": "1"}
    datadir = tmp_path / "cli-data"
    worker = WorkerProcess(
        tmp_path, env,
        ["-m", "detstream", "worker", "debug_app.py", "-l", "info", "--without-web",
         "--debug", "--blocking-timeout", "0.3", "--datadir", str(datadir)],
        "debug-worker",
    )
    spawned.append(worker)
    worker.wait_for("ready:")
    assert f"datadir    {datadir}" in worker.output()
    assert "debug      on, blocking detector timeout 0.3s" in worker.output()

    asyncio.run(produce(kafka_bootstrap, topic, ["before", "block", "after"]))
    worker.wait_for("Blocking detected", in_log=True)
    table = asyncio.run(fold_topic(
        kafka_bootstrap, f"{app_id}-seen-changelog", lambda t: len(t) == 3,
        "the agent to go on after blocking", partitions=1,
    ))
    assert table == {"before": 1, "block": 1, "after": 1}  # nothing raised into the agent

    log = worker.log()
    warning = log[log.index("Blocking detected"):]
    assert "more than 0.3s" in warning
    assert "in slow_agent" in warning and "time.sleep(1.0)" in warning

    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.tail()
    tables = datadir / "v1" / "tables"
    assert sorted(p.name for p in tables.iterdir()) == ["seen-0.db"]
    assert not (tmp_path / "the-settings-datadir").exists()
