"""Issue 9: tables and outputs keep every update through repeated ``kill -9`` (real broker).

Three ``detstream worker`` processes run ``apps/kill9_counter.py`` (``counts[key] += 1``
per input record, each record forwarded to an output topic), each with its own
``--datadir`` and web port. While the input is produced, in chunks, a seeded
schedule SIGKILLs a random worker every 2-5 s and restarts it at once under the
same name and datadir, so partitions keep moving between workers and every
takeover recovers tables. When the input is done and every worker is up, the
test waits (bounded polls) until the committed offsets of the input topic reach
its end, then checks.

Under exactly_once, exactly:

(a) the table folded from its changelog, read read_committed, equals the input
    counts per key (a takeover that lets records reach the agent before the
    partition's table is recovered restarts those keys near 1: issue 9);
(b) the output topic, read read_committed, holds each input record exactly once;
(c) the union of the workers' ``/table/counts/`` web views equals the input counts.

Under at_least_once a record processed after its worker's last commit is
processed again after the kill, so counts and outputs may be higher, never lower:

(a) the changelog fold counts each key at least as often as the input holds it;
(b) the output holds every input record at least once, and nothing else;
(c) the union of the web views equals the changelog fold: what the workers
    serve is what their changelogs say (no write kept only locally, as a
    RocksDB store that kept an uncommitted increment across the kill would).

With ``faults="kill+pause"`` half of the schedule's faults SIGSTOP a worker instead,
for 7-10 s, longer than its 6 s session timeout, then SIGCONT it: the group expels
it meanwhile and another worker takes its partitions over, so when it goes on it
is a zombie (its cached table writes, its open transaction, its next commit) until
it hears of it. Under exactly_once the same exact checks hold: the group
coordinator refuses the zombie's transactional offsets (TxnOffsetCommit v3, KIP-447)
and its transaction aborts. A pause longer than ``producer_transaction_timeout``
(5 s here) also lets the broker abort the open transaction and fence the
producer; the worker then crashes (exit 1, as Faust's does on ``ProducerFenced``)
and the test restarts it, as a process supervisor would. At least once, a worker
woken with a commit's writes unacknowledged and its membership still in doubt
crashes too (``MembershipInDoubtError``) and is restarted. Any other exit fails
the test. Half of the pauses end with a SIGTERM sent while the worker is stopped: it
wakes to a graceful stop with its membership in doubt, gives its final commit and its
producer's flush up at once (a write landing after the new owner's would undo it), must
exit cleanly within TERM_EXIT_S, and is started again.

``DETSTREAM_KILL9_SEED`` picks another kill schedule (the seed is printed).
Under at_least_once with pauses the zombie must not flush the table writes it
cached when it wakes: its commits wait while no heartbeat was answered for half
its session (``Consumer.membership_in_doubt``), and it hears it was expelled
first. The at-least-once checks hold as with kills.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.helpers import WorkerProcess, apply_changelog, fold_topic, now

APP = Path(__file__).resolve().parent / "apps" / "kill9_counter.py"
SEED = int(os.environ.get("DETSTREAM_KILL9_SEED", "9"))
PARTITIONS = 8
KEYS = [f"key-{i:02d}" for i in range(50)]
RECORDS = 6000
WORKERS = 3
RUN_S = 60.0  # the input is produced over this long, while the workers are killed
CHUNK_EVERY_S = 0.5
KILL_EVERY_S = (2.0, 5.0)
PAUSE_S = (7.0, 10.0)  # a SIGSTOP lasts longer than the app's 6 s broker_session_timeout
#: the crash of a worker whose transaction the broker aborted while it was paused
FENCED = "ProducerFencedError: producer"
#: the crash of an at-least-once worker woken with a commit's writes unacknowledged and its
#: membership still in doubt (it ends so that they die with its connections)
IN_DOUBT = "MembershipInDoubtError"
#: a worker TERMed while paused exits within this (its shutdown timeout is 60 s; in doubt
#: its stop gives up the broker at once)
TERM_EXIT_S = 20.0
#: what a worker logs when its stop gave its final commit up because it was in doubt
DOUBT_GIVE_UP = "final commit given up while stopping: no heartbeat answered"
DRAIN_S = 90.0  # bound on the wait for the committed offsets to reach the input's end


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Slot:
    """One of the three workers: a stable name, datadir and web port across restarts."""

    name: str
    datadir: Path
    port: int
    process: WorkerProcess | None = None
    starts: int = 0
    paused: bool = False


@dataclass
class Cluster:
    cwd: Path
    env: dict[str, str]
    slots: list[Slot]
    spawned: list[WorkerProcess] = field(default_factory=list)
    kills: list[tuple[float, str]] = field(default_factory=list)
    pauses: list[tuple[float, str, float]] = field(default_factory=list)
    crashes: list[tuple[float, str]] = field(default_factory=list)
    #: pauses ended by a TERM: (t, worker, seconds to exit, exit code, final commit given up
    #: for the doubt)
    terms: list[tuple[float, str, float, int, bool]] = field(default_factory=list)

    def start(self, slot: Slot) -> None:
        slot.starts += 1
        args = ["-m", "detstream", "worker", str(APP), "-l", "info", "--datadir",
                str(slot.datadir), "-b", "127.0.0.1", "-p", str(slot.port)]
        env = {**self.env, "IT_WORKER_NAME": slot.name}
        slot.process = WorkerProcess(self.cwd, env, args, f"{slot.name}-{slot.starts}")
        self.spawned.append(slot.process)

    def kill_and_restart(self, slot: Slot, at: float) -> None:
        assert slot.process is not None
        slot.process.proc.send_signal(signal.SIGKILL)
        slot.process.proc.wait(10)
        self.kills.append((round(at, 1), slot.name))
        self.start(slot)

    def restart_crashed(self, at: float) -> None:
        """The process supervisor: restart a worker that exited, if its log says its
        producer was fenced or its commit's writes were unacknowledged in doubt (the only
        crashes a pause may cause); fail on any other exit."""
        for slot in self.slots:
            if slot.paused or slot.process is None or slot.process.proc.poll() is None:
                continue
            log = slot.process.log()
            assert FENCED in log or IN_DOUBT in log, (
                f"{slot.name} exited {slot.process.proc.returncode}, not fenced:\n{slot.process.tail()}")
            self.crashes.append((round(at, 1), slot.name))
            self.start(slot)

    async def pause(self, slot: Slot, at: float, seconds: float, *, term: bool = False) -> None:
        """SIGSTOP ``slot``'s worker for ``seconds`` (past its session timeout), then SIGCONT.

        With ``term``, a SIGTERM comes during the pause: the worker wakes to a
        graceful stop with its membership in doubt (no heartbeat answered for
        half its session), so it gives its final commit and its producer's
        flush up at once; it must exit cleanly (or, under exactly_once, as
        fenced) well within its shutdown timeout, and it is started again.
        """
        process = slot.process
        assert process is not None
        slot.paused = True
        process.proc.send_signal(signal.SIGSTOP)
        self.pauses.append((round(at, 1), slot.name, round(seconds, 1)))
        try:
            await asyncio.sleep(seconds)  # the length of the pause is the fault itself
            if term:
                process.proc.send_signal(signal.SIGTERM)
        finally:
            process.proc.send_signal(signal.SIGCONT)
        if term:
            woke = now()
            code = await asyncio.to_thread(process.wait, TERM_EXIT_S)
            assert code == 0 or FENCED in process.log() or IN_DOUBT in process.log(), (
                f"{slot.name} exited {code} after TERM during a pause:\n{process.tail()}")
            gave_up = DOUBT_GIVE_UP in process.log()
            self.terms.append((round(at, 1), slot.name, round(now() - woke, 1), code, gave_up))
            self.start(slot)
        slot.paused = False


@dataclass
class Changelog:
    """The changelog fold, and every record that does not add exactly 1 to its key."""

    table: dict[str, int] = field(default_factory=dict)
    jumps: list[str] = field(default_factory=list)
    records: int = 0


def fold_changelog(state: Changelog, record) -> None:
    key = json.loads(record.key)
    before = state.table.get(key, 0)
    apply_changelog(state.table, record)
    state.records += 1
    after = state.table.get(key, 0)
    if after != before + 1:
        state.jumps.append(f"{key}: {before} -> {after} at partition {record.partition} "
                           f"offset {record.offset}")


def collect(state: Counter, record) -> None:
    state[json.loads(record.value)] += 1


async def produce_and_kill(bootstrap: str, topic: str, records: list[tuple[str, str]],
                           cluster: Cluster, rng: random.Random, faults: str) -> None:
    """Produce ``records`` in chunks over RUN_S seconds; meanwhile kill -9 and restart
    workers (``faults == "kill"``), or with ``"kill+pause"`` also pause some past their
    session timeout; every paused worker goes on again before this returns."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks = int(RUN_S / CHUNK_EVERY_S)
    size = -(-len(records) // chunks)

    async def feed() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for i in range(0, len(records), size):
                sends = [await producer.send(topic, json.dumps(value).encode(), key=key.encode())
                         for key, value in records[i:i + size]]
                await asyncio.gather(*sends)
                await asyncio.sleep(CHUNK_EVERY_S)  # pacing of the input, not a synchronisation
        finally:
            await producer.stop()

    async def chaos() -> None:
        pauses = []
        while True:
            await asyncio.sleep(rng.uniform(*KILL_EVERY_S))  # the kill schedule
            if loop.time() - start > RUN_S:
                break
            cluster.restart_crashed(loop.time() - start)
            pause = faults == "kill+pause" and rng.random() < 0.5
            running = [slot for slot in cluster.slots if not slot.paused]
            slot, at = rng.choice(running), loop.time() - start
            if pause and len(running) > 1:  # one worker at least keeps running
                seconds, term = rng.uniform(*PAUSE_S), rng.random() < 0.5
                pauses.append(asyncio.ensure_future(cluster.pause(slot, at, seconds, term=term)))
            else:
                cluster.kill_and_restart(slot, at)
        await asyncio.gather(*pauses)
        cluster.restart_crashed(loop.time() - start)

    await asyncio.gather(feed(), chaos())


async def committed_input(bootstrap: str, group: str, topic: str) -> tuple[dict, dict]:
    """(committed, end) offsets of ``topic``'s partitions for the consumer group ``group``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        end = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    committed = {tp.partition: offsets[tp].offset if tp in offsets else None for tp in tps}
    return committed, {tp.partition: end[tp] for tp in tps}


def wait_for_committed_end(bootstrap: str, group: str, topic: str, cluster: Cluster) -> None:
    deadline = now() + DRAIN_S
    while True:
        committed, end = asyncio.run(committed_input(bootstrap, group, topic))
        if committed == end:
            return
        cluster.restart_crashed(now())
        assert now() < deadline, (
            f"input offsets committed (partition: committed, end) still short after {DRAIN_S}s: "
            f"{ {p: (committed[p], end[p]) for p in end if committed[p] != end[p]} }")
        time.sleep(0.5)  # poll interval of the bounded wait


def web_assignment(cluster: Cluster, topic: str) -> dict[str, list[int]]:
    """Each worker's active partitions of ``topic``, once every worker says it is ready.

    Ready (``/ready/``): it took an assignment and recovered its tables. (The
    index page said "running" in between too, until session 38: a worker
    restarted just before the check served its RocksDB store's older counts
    while it was still looking up the changelog offsets to recover from.)
    """
    owned = {}
    for slot in cluster.slots:
        assert slot.process is not None
        base = f"http://127.0.0.1:{slot.port}"
        slot.process.get(f"{base}/ready/", until=lambda s, b: s == 200 and b["status"] == "ready")
        _, _, body = slot.process.get(f"{base}/assignment/", until=lambda s, b: s == 200)
        owned[slot.name] = sorted(body["actives"].get(topic, []))
    return owned


def web_tables(cluster: Cluster, topic: str) -> tuple[dict[str, int], list[str]]:
    """The union of every worker's ``/table/counts/`` once the group is settled.

    Settled: every worker running (not recovering), and their active input
    partitions together are every partition, each once, the same before and
    after the tables are read. Returns (union, keys served by two workers).
    """
    deadline = now() + 60.0
    while True:
        before = web_assignment(cluster, topic)
        if sorted(p for parts in before.values() for p in parts) == list(range(PARTITIONS)):
            tables = {slot.name: slot.process.get(f"http://127.0.0.1:{slot.port}/table/counts/",
                                                  until=lambda s, b: s == 200)[2]
                      for slot in cluster.slots if slot.process is not None}
            if web_assignment(cluster, topic) == before:
                union: dict[str, int] = {}
                twice = []
                for name, table in tables.items():
                    for key, value in table.items():
                        if key in union:
                            twice.append(f"{key} ({union[key]} and {value} on {name})")
                        union[key] = value
                print(f"web views: assignment {before}, keys per worker "
                      f"{ {n: len(t) for n, t in tables.items()} }")
                return union, twice
        assert now() < deadline, f"the group did not settle in 60s: {before}"
        time.sleep(0.2)  # poll interval of the bounded wait


def short_of(table: dict[str, int], expected: dict[str, int]) -> dict[str, tuple[int | None, int]]:
    """Keys whose (table, input) counts differ."""
    return {k: (table.get(k), n) for k, n in sorted(expected.items()) if table.get(k) != n} | {
        k: (v, 0) for k, v in sorted(table.items()) if k not in expected}


def first(items: dict | list, n: int = 8) -> str:
    """The first ``n`` entries of ``items``, and how many more there are."""
    shown = [f"{k}: {v}" for k, v in items.items()] if isinstance(items, dict) else list(map(str, items))
    more = f" ... (+{len(shown) - n} more)" if len(shown) > n else ""
    return ", ".join(shown[:n]) + more


@pytest.mark.parametrize("guarantee, store, faults", [
    ("exactly_once", "rocksdb://", "kill"), ("exactly_once", "memory://", "kill"),
    ("at_least_once", "rocksdb://", "kill"), ("at_least_once", "memory://", "kill"),
    ("exactly_once", "rocksdb://", "kill+pause"),
    ("at_least_once", "rocksdb://", "kill+pause"),
])
def test_kill9_every_few_seconds_keeps_every_count(
    kafka_bootstrap: str, new_topic, tmp_path: Path, guarantee: str, store: str, faults: str
) -> None:
    rng = random.Random(SEED)
    print(f"\nkill9 {guarantee} {faults}: seed={SEED} store={store} partitions={PARTITIONS} "
          f"records={RECORDS} keys={len(KEYS)} workers={WORKERS}")
    records = []
    for n in range(RECORDS):
        key = rng.choice(KEYS)
        records.append((key, f"{key}#{n:05d}"))
    expected = dict(Counter(key for key, _ in records))

    source, sink = new_topic(partitions=PARTITIONS), new_topic(partitions=PARTITIONS)
    app_id = f"it-kill9-{secrets.token_hex(4)}"
    env = {**os.environ, "DETSTREAM_IT_BROKER": f"kafka://{kafka_bootstrap}", "IT_APP_ID": app_id,
           "IT_INPUT": source, "IT_OUTPUT": sink, "IT_PARTITIONS": str(PARTITIONS),
           "IT_STORE": store, "IT_GUARANTEE": guarantee, "PYTHONUNBUFFERED": "1"}
    env.pop("PYTHONHASHSEED", None)
    slots = [Slot(f"w{i + 1}", tmp_path / f"w{i + 1}-data", free_port()) for i in range(WORKERS)]
    cluster = Cluster(tmp_path, env, slots)
    started = now()
    try:
        for slot in slots:
            cluster.start(slot)
        for slot in slots:
            slot.process.wait_for("ready:")
        assert guarantee in slots[0].process.output()

        asyncio.run(produce_and_kill(kafka_bootstrap, source, records, cluster, rng, faults))
        chaos_s = now() - started
        for slot in slots:
            slot.process.wait_for("ready:")
        wait_for_committed_end(kafka_bootstrap, app_id, source, cluster)
        drained_s = now() - started

        changelog = asyncio.run(fold_topic(
            kafka_bootstrap, f"{app_id}-counts-changelog", lambda s: True, "the changelog",
            state=Changelog(), apply=fold_changelog, partitions=PARTITIONS, at_end=True,
            isolation_level="read_committed"))
        output = asyncio.run(fold_topic(
            kafka_bootstrap, sink, lambda s: True, "the output", state=Counter(), apply=collect,
            partitions=PARTITIONS, at_end=True, isolation_level="read_committed"))
        web, twice = web_tables(cluster, source)

        ids = {value for _, value in records}
        duplicates = {v: n for v, n in sorted(output.items()) if n > 1}
        lost = sorted(ids - output.keys())
        unknown = sorted(output.keys() - ids)
        table_diff, web_diff = short_of(changelog.table, expected), short_of(web, expected)
        print(f"kills: {len(cluster.kills)} (t, worker): {cluster.kills}")
        print(f"pauses: {len(cluster.pauses)} (t, worker, s): {cluster.pauses}")
        print(f"crashed (fenced) and restarted: {len(cluster.crashes)} (t, worker): "
              f"{cluster.crashes}")
        print(f"TERMed while paused, restarted: {len(cluster.terms)} (t, worker, exit s, code, "
              f"gave up in doubt): {cluster.terms}")
        print(f"records: {RECORDS} in, output read_committed: {sum(output.values())} "
              f"({len(duplicates)} duplicated, {len(lost)} lost, {len(unknown)} unknown): "
              f"duplicated {first(duplicates)}; lost {first(lost)}")
        print(f"changelog: {changelog.records} committed records, "
              f"{sum(changelog.table.values())} counted of {RECORDS}; "
              f"{len(table_diff)} keys differ (table, input): {first(table_diff)}")
        print(f"changelog records not adding exactly 1: {len(changelog.jumps)}: "
              f"{changelog.jumps[:8]}")
        print(f"web views: {sum(web.values())} counted; {len(web_diff)} keys differ "
              f"(web, input): {first(web_diff)}; served twice: {twice[:8]}; "
              f"{len(short_of(web, changelog.table))} keys differ from the changelog")
        print(f"duration: {now() - started:.1f}s (chaos {chaos_s:.1f}s, drained at "
              f"{drained_s:.1f}s)")

        assert faults != "kill" or not cluster.crashes, "a worker crashed without a pause"
        if guarantee == "exactly_once":
            assert_exact(cluster, changelog, table_diff, duplicates, lost, unknown, web_diff, twice)
        else:
            assert_at_least_once(cluster, changelog, expected, lost, unknown, web, twice)
    finally:
        for worker in cluster.spawned:
            worker.kill()


def assert_exact(cluster: Cluster, changelog: Changelog, table_diff: dict, duplicates: dict,
                 lost: list, unknown: list, web_diff: dict, twice: list) -> None:
    """exactly_once: the changelog, the output and the web views each match the input exactly."""
    assert not table_diff, (
        f"(a) changelog fold != input counts after {len(cluster.kills)} kills: "
        f"{len(table_diff)} keys differ (table, input), "
        f"{RECORDS - sum(changelog.table.values())} increments lost: {first(table_diff, 20)}; "
        f"first changelog records not adding 1: {changelog.jumps[:10]}")
    assert not (duplicates or lost or unknown), (
        f"(b) output != input: duplicated {first(duplicates, 20)}, lost {lost[:20]}, "
        f"unknown {unknown[:20]}")
    assert not web_diff and not twice, (
        f"(c) web views != input counts: {first(web_diff, 20)}; served twice {twice[:20]}")


def assert_at_least_once(cluster: Cluster, changelog: Changelog, expected: dict[str, int],
                         lost: list, unknown: list, web: dict[str, int], twice: list) -> None:
    """at_least_once: nothing lost (counts and outputs at least the input's), and the web
    views serve exactly what the changelog holds."""
    low = {k: (changelog.table.get(k), n) for k, n in sorted(expected.items())
           if changelog.table.get(k, 0) < n}
    stray = sorted(changelog.table.keys() - expected.keys())
    assert not (low or stray), (
        f"(a) changelog fold counts less than the input after {len(cluster.kills)} kills: "
        f"{len(low)} keys (table, input): {first(low, 20)}; keys never sent: {stray[:20]}")
    assert not (lost or unknown), f"(b) output lost {lost[:20]}, unknown {unknown[:20]}"
    web_vs_changelog = short_of(web, changelog.table)
    assert not web_vs_changelog and not twice, (
        f"(c) web views != changelog fold (web, changelog): {first(web_vs_changelog, 20)}; "
        f"served twice {twice[:20]}")
