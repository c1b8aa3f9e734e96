"""Standby replicas against a real broker: two ``detstream worker`` processes, one SIGKILLed.

Each worker keeps a standby copy of the other's table partitions (RocksDB,
each in its own datadir). The app prints its standby offsets every half
second; once the survivor's copies reach the changelog ends, the other
worker is killed, and the survivor takes its partitions over continuing
those copies: the log says how many records each promoted partition had to
replay, and that must be far less than the changelog holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.integration.helpers import (
    DEADLINE_S,
    PARTITIONS,
    WorkerProcess,
    fold_topic,
    now,
    produce,
)

APP_SOURCE = '''
"""Counts keyed words; prints its standby offsets for the test."""
import json
import os

import detstream

app = detstream.App(
    os.environ["IT_APP_ID"],
    broker=os.environ["DETSTREAM_IT_BROKER"],
    store="rocksdb://",
    topic_partitions={partitions},
    table_standby_replicas={replicas},
    table_changelog_cache_size=0,  # a changelog record per word: the test counts them
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
)
words = app.topic(os.environ["IT_WORDS"], value_type=str, key_type=str)
counts = app.Table("counts", default=int)


@app.agent(words)
async def count(stream):
    async for word in stream:
        counts[word] += 1


@app.timer(0.5)
async def report_standbys():
    reader = app.tables.standbys
    offsets = {{tp.partition: reader.offset(tp) for tp in reader.partitions}}
    active = sorted(tp.partition for tp in app.conductor.assignment() if tp.topic == counts.changelog_name)
    print("STANDBY " + json.dumps(offsets, sort_keys=True), flush=True)
    print("ACTIVE " + json.dumps(active), flush=True)
'''

PROMOTED = re.compile(
    r"table 'counts' partition (\d+): continuing its standby copy at changelog offset (\d+) "
    r"\((\d+) records? to replay\)"
)
WORDS = [f"w{i % 41}" for i in range(600)]
MORE = [f"w{i % 41}" for i in range(200)]


@pytest.fixture
def workers(tmp_path: Path):
    spawned: list[WorkerProcess] = []

    def spawn(env: dict[str, str], name: str) -> WorkerProcess:
        env = {**env, "APP_DATADIR": str(tmp_path / f"{name}-data")}
        worker = WorkerProcess(
            tmp_path, env, ["-m", "detstream", "worker", "sb_app.py", "-l", "info", "--without-web"], name
        )
        spawned.append(worker)
        return worker

    yield spawn
    for worker in spawned:
        worker.kill()


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        found = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return {tp.partition: offset for tp, offset in found.items()}


def last_line(worker: WorkerProcess, prefix: str):
    lines = [line for line in worker.output().splitlines() if line.startswith(prefix + " ")]
    return json.loads(lines[-1][len(prefix) + 1:]) if lines else None


def last_standby_line(worker: WorkerProcess) -> dict[int, int | None]:
    return {int(p): o for p, o in (last_line(worker, "STANDBY") or {}).items()}


def wait_until(condition, what: str, worker: WorkerProcess, timeout: float = DEADLINE_S) -> None:
    deadline = now() + timeout
    while not condition():
        assert worker.proc.poll() is None, f"{worker.name} exited\n{worker.tail()}"
        assert now() < deadline, f"no {what} within {timeout}s\n{worker.tail()}"
        time.sleep(0.1)


RECOVERED = re.compile(r"Recovered table 'counts': (\d+) changelog records?(?: \([^)]*\))? from (\d+) partitions? in")


def start_pair(kafka_bootstrap: str, new_topic, workers, tmp_path: Path, replicas: int):
    """Write the app, start survivor and victim, count WORDS; returns (topic, changelog, ...)."""
    topic = new_topic(partitions=PARTITIONS)
    app_id = f"it-sb-{secrets.token_hex(4)}"
    (tmp_path / "sb_app.py").write_text(APP_SOURCE.format(partitions=PARTITIONS, replicas=replicas))
    env = {**os.environ, "DETSTREAM_IT_BROKER": f"kafka://{kafka_bootstrap}", "IT_APP_ID": app_id,
           "IT_WORDS": topic, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONHASHSEED", None)
    changelog = f"{app_id}-counts-changelog"
    survivor, victim = workers(env, "survivor"), workers(env, "victim")
    survivor.wait_for("ready:")
    victim.wait_for("ready:")
    asyncio.run(produce(kafka_bootstrap, topic, WORDS, keyed=True))
    expected = Counter(WORDS)
    asyncio.run(fold_topic(kafka_bootstrap, changelog, lambda t: t == expected, "all words counted"))
    ends = asyncio.run(end_offsets(kafka_bootstrap, changelog))
    return topic, changelog, survivor, victim, expected, ends


def kill_and_take_over(kafka_bootstrap, topic, changelog, victim, expected) -> None:
    victim.signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    asyncio.run(produce(kafka_bootstrap, topic, MORE, keyed=True))
    expected.update(MORE)
    asyncio.run(fold_topic(
        kafka_bootstrap, changelog, lambda t: all(t.get(w, 0) >= n for w, n in expected.items()),
        "the survivor to count every word (session timeout 6 s, then rebalance)",
    ))


def test_takeover_after_sigkill_replays_only_what_the_standby_missed(
    kafka_bootstrap: str, new_topic, workers, tmp_path: Path
) -> None:
    topic, changelog, survivor, victim, expected, ends = start_pair(
        kafka_bootstrap, new_topic, workers, tmp_path, replicas=1
    )

    def caught_up() -> bool:
        standbys = last_standby_line(survivor)
        return bool(standbys) and all(
            offset is not None and offset + 1 == ends[p] for p, offset in standbys.items()
        )

    # the standby copies (the victim's active partitions) reach the changelog ends
    wait_until(caught_up, "standby copies at the changelog ends", survivor)
    copied = last_standby_line(survivor)
    assert copied and set(copied).isdisjoint(last_line(survivor, "ACTIVE"))

    kill_and_take_over(kafka_bootstrap, topic, changelog, victim, expected)
    wait_until(lambda: len(PROMOTED.findall(survivor.log())) >= len(copied), "promotions", survivor)
    promoted = {int(p): (int(start), int(replay)) for p, start, replay in PROMOTED.findall(survivor.log())}
    assert set(promoted) == set(copied)
    full = sum(ends[p] for p in promoted)
    replayed = sum(replay for _, replay in promoted.values())
    print(f"with a standby: the takeover replayed {replayed} of {full} changelog records")
    assert full >= 200 and replayed <= full // 10
    assert all(start >= ends[p] for p, (start, _) in promoted.items())
    survivor.signal(signal.SIGTERM)
    assert survivor.wait() == 0, survivor.tail()


def test_without_standbys_the_takeover_replays_the_whole_changelog(
    kafka_bootstrap: str, new_topic, workers, tmp_path: Path
) -> None:
    topic, changelog, survivor, victim, expected, ends = start_pair(
        kafka_bootstrap, new_topic, workers, tmp_path, replicas=0
    )
    wait_until(lambda: 0 < len(last_line(survivor, "ACTIVE") or ()) < PARTITIONS, "a share", survivor)
    theirs = set(range(PARTITIONS)) - set(last_line(survivor, "ACTIVE"))
    assert last_standby_line(survivor) == {} and theirs
    before = len(RECOVERED.findall(survivor.log()))
    kill_and_take_over(kafka_bootstrap, topic, changelog, victim, expected)
    wait_until(lambda: len(RECOVERED.findall(survivor.log())) > before, "a recovery", survivor)
    records, partitions = map(int, RECOVERED.findall(survivor.log())[-1])
    assert not PROMOTED.findall(survivor.log())
    full = sum(ends[p] for p in theirs)
    print(f"without a standby: the takeover replayed {records} of {full} changelog records")
    assert records >= full >= 200 and partitions == len(theirs)
    survivor.signal(signal.SIGTERM)
    assert survivor.wait() == 0, survivor.tail()
