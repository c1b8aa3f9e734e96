"""A ``kill -9``ed worker restarted at once, with and without static membership (real broker).

Two ``detstream worker`` processes relay an input topic to an output topic
(at-least-once, 4 partitions, ``broker_session_timeout=10``). Once every input
record is relayed and its offset committed, worker 1 is SIGKILLed and started
again at once; then more input is produced. The test measures how long the
restarted worker takes from its spawn to "ready:" (its first assignment), and
checks the output holds every input record exactly once (nothing was
uncommitted at the kill, so at-least-once has nothing to redo).

- dynamic members: the restart's JoinGroup starts a rebalance that waits for
  the dead member until its session expires (~10 s after the kill); the
  restarted worker says so in its log once it has waited 5 s;
- static members (``CONSUMER_GROUP_INSTANCE_ID`` per worker): the restart
  takes its previous instance's place at once, with its partitions, and the
  group does not rebalance (the other worker revokes nothing).

Also: two workers given one instance id: the first is fenced and stops with
``FencedInstanceIdError`` (exit 1), the second keeps the partitions.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.helpers import WorkerProcess, fold_topic, now, produce

SESSION_TIMEOUT = 10.0
PARTITIONS = 4

APP_SOURCE = f'''
import os

import detstream

app = detstream.App(
    os.environ["IT_APP_ID"],
    broker=os.environ["DETSTREAM_IT_BROKER"],
    topic_partitions={PARTITIONS},
    broker_session_timeout={SESSION_TIMEOUT},
    broker_heartbeat_interval=1.0,
    broker_commit_interval=0.5,
)
source = app.topic(os.environ["IT_APP_ID"] + "-in", value_type=str, internal=True)
output = app.topic(os.environ["IT_APP_ID"] + "-out", value_type=str, internal=True)


@app.agent(source, sink=[output])
async def relay(stream):
    async for value in stream:
        yield value


@app.on_partitions_revoked.connect
async def revoked(app, revoked, **kwargs):
    print(f"rebalance: revoked {{len(revoked)}} partitions", flush=True)
'''

ARGS = ["-m", "detstream", "worker", "relay_app.py", "-l", "info", "--without-web"]


class Workers:
    def __init__(self, cwd: Path, bootstrap: str) -> None:
        self.cwd = cwd
        self.bootstrap = bootstrap
        self.app_id = f"it-static-{secrets.token_hex(4)}"
        self.spawned: list[WorkerProcess] = []
        (cwd / "relay_app.py").write_text(APP_SOURCE)

    def spawn(self, name: str, instance: str | None) -> WorkerProcess:
        env = {**os.environ, "DETSTREAM_IT_BROKER": f"kafka://{self.bootstrap}",
               "IT_APP_ID": self.app_id, "PYTHONUNBUFFERED": "1"}
        env.pop("CONSUMER_GROUP_INSTANCE_ID", None)
        if instance is not None:
            env["CONSUMER_GROUP_INSTANCE_ID"] = instance  # the setting, from the environment
        worker = WorkerProcess(self.cwd, env, ARGS, name)
        self.spawned.append(worker)
        return worker

    async def committed_to_the_end(self) -> None:
        """Wait until the group's committed offsets of the input reach its end."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            from aiokafka import AIOKafkaConsumer

            reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
            await reader.start()
            try:
                tps = [TopicPartition(f"{self.app_id}-in", p) for p in range(PARTITIONS)]
                ends = await reader.end_offsets(tps)
            finally:
                await reader.stop()
            deadline = now() + 30
            while True:
                offsets = await admin.list_consumer_group_offsets(self.app_id)
                if all(tp in offsets and offsets[tp].offset >= ends[tp] for tp in tps):
                    return
                assert now() < deadline, f"offsets not committed to {ends}: {offsets}"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()

    def relayed(self, values: list[str]) -> Counter[str]:
        """The output, once every value in ``values`` is in it (each value's count)."""
        wanted = set(values)
        found: Counter[str] = asyncio.run(fold_topic(
            self.bootstrap, f"{self.app_id}-out", lambda c: wanted <= set(c), "the relayed values",
            state=Counter(), apply=lambda c, r: c.update([json.loads(r.value)]),  # value_type=str
            partitions=PARTITIONS, timeout=60,
        ))
        return found

    def kill(self) -> None:
        for worker in self.spawned:
            worker.kill()


@pytest.fixture
def workers(tmp_path: Path, kafka_bootstrap: str):
    made = Workers(tmp_path, kafka_bootstrap)
    yield made
    made.kill()


def kill9_and_restart(workers: Workers, *, static: bool) -> tuple[float, str, str]:
    """Run the two workers, kill -9 the first once all is committed, restart it.

    How long the restart took to its first assignment, its log, and what the other
    worker printed since the kill.
    """
    first = workers.spawn("w1", "worker-1" if static else None)
    second = workers.spawn("w2", "worker-2" if static else None)
    first.wait_for("ready:")
    second.wait_for("ready:")
    before = [f"a-{i}" for i in range(200)]
    asyncio.run(produce(workers.bootstrap, f"{workers.app_id}-in", before))
    workers.relayed(before)
    asyncio.run(workers.committed_to_the_end())
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(10)
    seen = len(second.output())
    began = now()
    restarted = workers.spawn("w1-restarted", "worker-1" if static else None)
    restarted.wait_for("ready:", timeout=SESSION_TIMEOUT + 30)
    took = now() - began
    after = [f"b-{i}" for i in range(200)]
    asyncio.run(produce(workers.bootstrap, f"{workers.app_id}-in", after))
    relayed = workers.relayed(before + after)
    assert relayed == Counter(before + after), {v: n for v, n in relayed.items() if n != 1}
    print(f"{'static' if static else 'dynamic'} members: the restarted worker was ready "
          f"{took:.1f}s after its spawn (session timeout {SESSION_TIMEOUT:g}s)")
    return took, restarted.log(), second.output()[seen:]


def test_a_restarted_dynamic_member_waits_for_the_dead_ones_session_and_says_so(workers) -> None:
    took, log, survivor = kill9_and_restart(workers, static=False)
    assert took > SESSION_TIMEOUT / 2, took  # the rebalance waited for the dead member
    assert "rebalance: revoked" in survivor, survivor  # the group rebalanced
    assert "has waited 5s for its partitions: the group coordinator is rebalancing" in log, log[-3000:]
    assert "broker_session_timeout=10s" in log and "consumer_group_instance_id" in log
    assert log.count("has waited") == 1  # once


def test_a_restarted_static_member_takes_its_place_at_once_without_a_rebalance(workers) -> None:
    took, log, survivor = kill9_and_restart(workers, static=True)
    assert took < SESSION_TIMEOUT / 2, took
    assert "has waited" not in log
    # the other worker was not disturbed: no rebalance, nothing revoked
    assert "rebalance: revoked" not in survivor, survivor


def test_two_workers_with_one_instance_id_the_first_is_fenced_and_stops(workers) -> None:
    first = workers.spawn("w1", "worker-1")
    first.wait_for("ready:")
    second = workers.spawn("w1-twin", "worker-1")
    second.wait_for("ready:", timeout=15)
    assert first.wait(20) == 1, first.tail()
    out = first.output()
    assert "crashed: FencedInstanceIdError: another consumer joined group" in out, out
    assert "Each worker needs its own consumer_group_instance_id" in out, out
    values = [f"c-{i}" for i in range(50)]
    asyncio.run(produce(workers.bootstrap, f"{workers.app_id}-in", values))
    assert workers.relayed(values) == Counter(values)  # the second one has every partition
    assert second.proc.poll() is None, second.tail()
