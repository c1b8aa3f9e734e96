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
import os
import secrets
import signal
from collections import Counter
from pathlib import Path

from sim.runner import SimOptions, run
from tests.integration.helpers import WorkerProcess, fold_topic, now, produce

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


def test_sim_and_real_broker_give_the_same_table(
    kafka_bootstrap: str, new_topic, tmp_path: Path
) -> None:
    started = now()
    sentences = new_topic(partitions=PARTITIONS)
    app_id = f"it-simreal-{secrets.token_hex(4)}"
    target = tmp_path / "simreal_wc.py"
    target.write_text(APP_SOURCE.format(app_id=app_id, broker=f"kafka://{kafka_bootstrap}",
                                        partitions=PARTITIONS, sentences=sentences))
    expected = _expected()

    simulated = _simulate(target, sentences)

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONHASHSEED", None)
    args = ["-m", "detstream", "worker", "simreal_wc.py", "-l", "info", "--without-web"]
    workers = [WorkerProcess(tmp_path, env, args, f"w{i}", timeout=DEADLINE_S) for i in (1, 2)]
    try:
        for worker in workers:
            worker.wait_for("ready:")
        asyncio.run(produce(kafka_bootstrap, sentences, SENTENCES))
        changelog = f"{app_id}-word_counts-changelog"
        total = sum(expected.values())

        def fold(done, what: str) -> dict[str, int]:
            """Fold the changelog until ``done(table)`` and every partition is at its end."""
            return asyncio.run(fold_topic(kafka_bootstrap, changelog, done, what, at_end=True,
                                          partitions=PARTITIONS, timeout=DEADLINE_S, poll_ms=200))

        fold(lambda t: sum(t.values()) >= total, "every word counted")
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait() == 0, worker.tail()
        real = fold(lambda t: True, "the whole changelog")
    finally:
        for worker in workers:
            worker.kill()

    assert simulated == real, {
        w: (simulated.get(w), real.get(w))
        for w in simulated.keys() | real.keys() if simulated.get(w) != real.get(w)
    }
    assert real == expected
    assert now() - started < 40.0, f"took {now() - started:.1f}s (budget 40s)"
