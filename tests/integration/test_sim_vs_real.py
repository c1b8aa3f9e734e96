"""The same word-count app, once under the simulator and once on a real broker: same table.

The app (at-least-once, no web server) is written into tmp_path with the broker and topic
names filled in. The simulator runs it on two simulated workers with no faults, fed by a
scenario client; the real run starts two ``detstream worker`` processes, produces the same
sentences with aiokafka, waits (bounded) until the changelog fold has counted every word,
stops the workers with TERM and folds the whole changelog. Both tables must be equal, and
equal to the word counts of the input.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sim.runner import SimOptions, run

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable
PARTITIONS = 4
DEADLINE_S = 25.0

APP_SOURCE = '''
"""Word count for test_sim_vs_real: at-least-once, web off."""
import detstream


class Word(detstream.Record):
    text: str


app = detstream.App(
    {app_id!r},
    broker={broker!r},
    topic_partitions={partitions},
    processing_guarantee="at_least_once",
    web_enabled=False,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
)
sentences = app.topic({sentences!r}, value_type=str)
words = app.topic({app_id!r} + "-words", value_type=Word, internal=True)
word_counts = app.Table("word_counts", default=int, key_type=str, value_type=int)


@app.agent(sentences, sink=[words])
async def split_sentences(stream):
    async for sentence in stream:
        for text in sentence.lower().split():
            yield Word(text=text)


@app.agent(words)
async def count_words(stream):
    async for word in stream.group_by(Word.text):
        word_counts[word.text] += 1


if __name__ == "__main__":
    app.main()
'''

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a stream is an infinite async iterable",
    "the table needs to relate every update to a source event",
    "same seed same trace byte for byte",
    "the quick table counts the lazy words",
    "Kafka and the simulator must agree on every count",
] * 10


def _now() -> float:
    return time.monotonic()  # noqa: TID251 - the test harness waits on real processes


def _expected() -> dict[str, int]:
    return dict(Counter(w for s in SENTENCES for w in s.lower().split()))


def _simulate(target: Path, sentences_topic: str) -> dict[str, int]:
    tables: list[dict[str, int]] = []

    def scenario(sim) -> None:
        sim.topic(sentences_topic, partitions=PARTITIONS)
        sim.producer(sentences_topic, list(SENTENCES), every=0.05, name="sentence-feed")

        @sim.check
        def capture_table(result) -> None:
            tables.append(dict(result.table("word_counts")))

    report = run(str(target), SimOptions(seed=11, workers=2, duration=10.0, faults="none"),
                 scenario=scenario)
    assert report.ok, "\n".join(str(v) for v in report.violations)
    assert len(tables) == 1, tables
    return tables[0]


async def _produce(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, s.encode()) for s in SENTENCES])
    finally:
        await producer.stop()


async def _fold_changelog(bootstrap: str, topic: str, done, timeout: float) -> dict[str, int]:
    """Fold ``topic`` from the beginning until ``done(table)`` and every partition is at its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    table: dict[str, int] = {}
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    key = json.loads(r.key)
                    if r.value is None:
                        table.pop(key, None)
                    else:
                        table[key] = json.loads(r.value)
            if done(table):
                end = await consumer.end_offsets(tps)
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= end[tp] for pos, tp in zip(positions, tps, strict=True)):
                    return table
            assert loop.time() < deadline, f"changelog fold not complete after {timeout}s: {table}"
    finally:
        await consumer.stop()


class _Worker:
    def __init__(self, cwd: Path, env: dict[str, str], name: str) -> None:
        self.name = name
        self.out, self.err = cwd / f"{name}.out", cwd / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "detstream", "worker", "simreal_wc.py", "-l", "info", "--without-web"],
                cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            )

    def tail(self) -> str:
        err = "\n".join(self.err.read_text(errors="replace").splitlines()[-30:])
        return f"--- {self.name} stdout ---\n{self.out.read_text(errors='replace')}--- stderr ---\n{err}"

    def wait_ready(self, timeout: float = DEADLINE_S) -> None:
        deadline = _now() + timeout
        while "ready:" not in self.out.read_text(errors="replace"):
            assert self.proc.poll() is None, f"{self.name} exited {self.proc.returncode}\n{self.tail()}"
            assert _now() < deadline, f"{self.name} not ready in {timeout}s\n{self.tail()}"
            time.sleep(0.05)


def test_sim_and_real_broker_give_the_same_table(
    kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    started = _now()
    sentences = new_topic(partitions=PARTITIONS)
    app_id = f"it-simreal-{secrets.token_hex(4)}"
    target = tmp_path / "simreal_wc.py"
    target.write_text(APP_SOURCE.format(app_id=app_id, broker=f"kafka://{kafka_bootstrap}",
                                        partitions=PARTITIONS, sentences=sentences))
    expected = _expected()

    simulated = _simulate(target, sentences)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONHASHSEED", None)
    workers = [_Worker(tmp_path, env, f"w{i}") for i in (1, 2)]
    try:
        for worker in workers:
            worker.wait_ready()
        asyncio.run(_produce(kafka_bootstrap, sentences))
        changelog = f"{app_id}-word_counts-changelog"
        total = sum(expected.values())
        asyncio.run(_fold_changelog(kafka_bootstrap, changelog,
                                    lambda t: sum(t.values()) >= total, DEADLINE_S))
        for worker in workers:
            worker.proc.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                code = worker.proc.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{worker.name} did not stop on TERM\n{worker.tail()}")
            assert code == 0, worker.tail()
        real = asyncio.run(_fold_changelog(kafka_bootstrap, changelog, lambda t: True, DEADLINE_S))
    finally:
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait(10)

    assert simulated == real, {
        w: (simulated.get(w), real.get(w))
        for w in simulated.keys() | real.keys() if simulated.get(w) != real.get(w)
    }
    assert real == expected
    assert _now() - started < 40.0, f"took {_now() - started:.1f}s (budget 40s)"
