"""Differential: hypothesis-drawn keyed input, the same tables and outputs on the sim and on Kafka.

A keyed running-total app (``totals[key] += amount`` and, per event, an output
record ``amount:total`` keyed by the key) runs once under the simulator and
once as two ``detstream worker`` processes on a real broker, fed the same
input drawn from a hypothesis strategy (``sim.strategies.draw``, so each seed
names its input). Without faults both runtimes must end with the same table
(folded from the changelog) and, per key, the same output sequence; and both
must equal the fold of the input. A difference is a gap between the
runtimes: in the engine, or in what the simulator models.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import strategies as st

from sim.runner import SimOptions, run
from sim.strategies import draw
from tests.integration.helpers import WorkerProcess, apply_changelog, fold_topic

PARTITIONS = 3
DEADLINE_S = 40.0
KEYS = [f"k{i}" for i in range(12)]
INPUTS = st.lists(st.tuples(st.sampled_from(KEYS), st.integers(-50, 50)), min_size=40, max_size=120)

APP_SOURCE = '''
"""Running totals for test_sim_vs_real_keyed."""
import detstream

app = detstream.App(
    {app_id!r},
    broker={broker!r},
    topic_partitions={partitions},
    processing_guarantee={guarantee!r},
    web_enabled=False,
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
    producer_transaction_timeout=5.0,
)
amounts = app.topic({amounts!r}, key_type=str, value_type=int)
log = app.topic({log!r}, key_type=str, value_type=str)
totals = app.Table("totals", default=int, key_type=str, value_type=int)


@app.agent(amounts)
async def add(stream):
    async for key, amount in stream.items():
        totals[key] += amount
        await log.send(key=key, value=f"{{amount}}:{{totals[key]}}")
'''


def expected(pairs: list[tuple[str, int]]) -> tuple[dict[str, int], dict[str, list[str]]]:
    """The fold of the input: final totals, and per key the ``amount:total`` sequence."""
    totals: dict[str, int] = {}
    outputs: dict[str, list[str]] = {}
    for key, amount in pairs:
        totals[key] = totals.get(key, 0) + amount
        outputs.setdefault(key, []).append(f"{amount}:{totals[key]}")
    return totals, outputs


def outputs_of(records) -> dict[str, list[str]]:
    """Per key, output values in offset order (one key lives in one partition).

    Keys are raw text; values JSON strings (``log`` is ``value_type=str``, the app's
    default value_serializer).
    """
    by_key: dict[str, list[str]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key.decode(), []).append(json.loads(record.value))
    return by_key


def simulate(target: Path, amounts: str, log: str, pairs) -> tuple[dict, dict]:
    seen: list[tuple[dict, dict]] = []

    def scenario(sim) -> None:
        sim.topic(amounts, partitions=PARTITIONS)
        sim.topic(log, partitions=PARTITIONS)
        sim.producer(amounts, [(k, str(v)) for k, v in pairs], every=0.02, keyed=True, name="feed")

        @sim.check
        def capture(result) -> None:
            seen.append((dict(result.table("totals")), outputs_of(result.records(log))))

    report = run(str(target), SimOptions(seed=3, workers=2, duration=10.0, faults="none"),
                 scenario=scenario)
    assert report.ok, "\n".join(str(v) for v in report.violations)
    return seen[0]


async def produce_pairs(bootstrap: str, topic: str, pairs) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, amount in pairs:  # one at a time: per-key order as the sim client sends it
            await producer.send_and_wait(topic, str(amount).encode(), key=key.encode())
    finally:
        await producer.stop()


def on_kafka(bootstrap: str, tmp_path: Path, app_id: str, amounts: str, log: str, pairs):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONHASHSEED", None)
    args = ["-m", "detstream", "worker", "keyed_app.py", "-l", "info", "--without-web"]
    workers = [WorkerProcess(tmp_path, env, args, f"w{i}", timeout=DEADLINE_S) for i in (1, 2)]
    try:
        for worker in workers:
            worker.wait_for("ready:")
        asyncio.run(produce_pairs(bootstrap, amounts, pairs))

        def read(topic, apply, state, done):
            return asyncio.run(fold_topic(
                bootstrap, topic, done, f"all of {topic}", state=state, apply=apply,
                at_end=True, partitions=PARTITIONS, timeout=DEADLINE_S, poll_ms=200,
                isolation_level="read_committed",
            ))

        records = read(log, lambda acc, r: acc.append(r), [], lambda acc: len(acc) >= len(pairs))
        for worker in workers:
            worker.signal(signal.SIGTERM)
        for worker in workers:
            assert worker.wait() == 0, worker.tail()
        table = read(f"{app_id}-totals-changelog", apply_changelog, {}, lambda t: True)
    finally:
        for worker in workers:
            worker.kill()
    return table, outputs_of(records)


@pytest.mark.parametrize("seed,guarantee", [(1, "at_least_once"), (2, "exactly_once")])
def test_drawn_keyed_input_gives_the_same_tables_and_outputs(
    kafka_bootstrap: str, new_topic, tmp_path: Path, seed: int, guarantee: str
) -> None:
    pairs = draw(INPUTS, seed)
    amounts, log = new_topic(partitions=PARTITIONS), new_topic(partitions=PARTITIONS)
    app_id = f"it-keyed-{secrets.token_hex(4)}"
    target = tmp_path / "keyed_app.py"
    target.write_text(APP_SOURCE.format(
        app_id=app_id, broker=f"kafka://{kafka_bootstrap}", partitions=PARTITIONS,
        guarantee=guarantee, amounts=amounts, log=log,
    ))
    want_table, want_outputs = expected(pairs)

    sim_table, sim_outputs = simulate(target, amounts, log, pairs)
    real_table, real_outputs = on_kafka(kafka_bootstrap, tmp_path, app_id, amounts, log, pairs)

    differ = {k for k in want_table if sim_table.get(k) != real_table.get(k)}
    assert not differ, json.dumps({k: [sim_table.get(k), real_table.get(k)] for k in sorted(differ)})
    assert sim_outputs == real_outputs
    assert real_table == want_table
    assert real_outputs == want_outputs
