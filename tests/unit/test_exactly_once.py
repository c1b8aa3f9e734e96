"""processing_guarantee='exactly_once' on the simulator: kill -9 mid-stream, restart, exact counts.

The worker is killed the way a process dies: its tasks are cancelled (no
graceful stop, no final commit) and its open files released. A second App of
the same code with the same ``client_name`` then starts: under exactly-once
its transactional producer fences the dead one's and aborts its open
transaction, so the changelog read read_committed holds every count exactly
once. The same scenario under at-least-once double counts, which shows the
test can fail.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from collections import Counter

import pytest

import detstream
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.loop import task_owner
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)
PARTITIONS = 4
SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a stream is an infinite async iterable",
    "same seed same trace byte for byte",
    "the table counts the lazy words",
] * 20
EXPECTED = Counter(w for s in SENTENCES for w in s.split())


def make_app(
    guarantee: str, store: str, datadir: str, name: str = "w1", **settings: object
) -> detstream.App:
    """Word count with a repartition hop: sentences -> words -> table."""
    app = detstream.App(
        "eos-wc", broker="sim://", processing_guarantee=guarantee, store=store,
        datadir=datadir, topic_partitions=PARTITIONS, **settings,
    )
    app.client_name = name  # the transactional id is "eos-wc-{name}"
    sentences = app.topic("sentences", value_type=str)
    counts = app.Table("counts", default=int)

    @app.agent(sentences)
    async def split(stream):
        async for sentence in stream:
            for word in sentence.split():
                await counts_words.send(key=word, value=word)
                await asyncio.sleep(0.01)  # I/O: a commit can come mid-event

    counts_words_topic = app.topic("eos-wc-words", value_type=str, internal=True)

    @app.agent(counts_words_topic)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    counts_words = count
    return app


async def start_owned(app: detstream.App, owner: str) -> None:
    """Start ``app`` so that every task it ever creates is owned by ``owner``."""
    context = contextvars.copy_context()
    context.run(task_owner.set, owner)
    await asyncio.get_running_loop().create_task(app.start(), context=context)


async def kill(app: detstream.App, owner: str) -> None:
    """kill -9: cancel every task of the app; no stop code runs, no commit is made."""
    tasks = asyncio.get_running_loop().tasks_owned_by(owner)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    app.tables.close()  # the process died: the OS releases its files (RocksDB locks)


def fold(cluster, topic: str) -> dict[str, int]:
    """The table the changelog describes, read as a read_committed consumer reads it."""
    table: dict[str, int] = {}
    for record in cluster.records(topic):
        key = json.loads(record.key)
        if record.value is None:
            table.pop(key, None)
        else:
            table[key] = json.loads(record.value)
    return table


def text_value(text: str) -> bytes:
    """A str value as a Faust producer writes it: JSON text (the app's default value_serializer)."""
    return json.dumps(text).encode()


def feeder(cluster, every: float) -> asyncio.Future[None]:
    """The input, from a client outside the workers (not restarted with them)."""
    client = SimTransport(cluster=cluster, name="client").create_producer(client_id="client")

    async def feed():
        for sentence in SENTENCES:
            await client.send("sentences", key=None, value=text_value(sentence))
            await asyncio.sleep(every)

    cluster.create_topic("sentences", PARTITIONS, by="test")
    return asyncio.ensure_future(feed())


async def settle(cluster, bound: float = 300.0) -> None:
    """Wait (virtual time) for the changelog to hold the expected counts, then a while more."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while fold(cluster, "eos-wc-counts-changelog") != EXPECTED and loop.time() < deadline:
        await asyncio.sleep(1.0)
    await asyncio.sleep(10.0)  # nothing more may arrive (a duplicate would)


def run_kill_scenario(guarantee: str, store: str, datadir: str, *, seed: int = 0):
    async def main(cluster):
        feeding = feeder(cluster, every=0.1)
        victim = make_app(guarantee, store, datadir)
        await start_owned(victim, "victim")
        await asyncio.sleep(7.0)  # mid-stream: two commits (2.8 s apart) done, more work in hand
        before = fold(cluster, "eos-wc-counts-changelog")
        await kill(victim, "victim")
        heir = make_app(guarantee, store, datadir)
        await heir.start()
        await feeding
        await settle(cluster)
        live = heir.tables.tables["counts"].as_dict()
        await heir.stop()
        trace = [e for e in cluster.trace.events if e.kind.startswith("txn-")]
        return before, fold(cluster, "eos-wc-counts-changelog"), live, trace

    return simulate(main, seed=seed, config=FAST)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_exactly_once_counts_every_word_once_after_kill9(store, tmp_path):
    before, table, live, trace = run_kill_scenario("exactly_once", store, str(tmp_path))
    assert 0 < sum(before.values()) < sum(EXPECTED.values())  # killed mid-stream
    assert table == EXPECTED
    assert live == EXPECTED  # the heir's own table (rocksdb: what it kept on disk + replay)
    aborts = [e for e in trace if e.kind == "txn-abort"]
    assert [e.fields.get("reason") for e in aborts] == ["fenced"]  # the victim's open transaction
    assert any(e.kind == "txn-commit" and e.fields["offsets"] for e in trace)


def test_the_same_kill_under_at_least_once_double_counts(tmp_path):
    _, table, _, _ = run_kill_scenario("at_least_once", "memory://", str(tmp_path))
    assert table.keys() == EXPECTED.keys()
    assert all(table[w] >= n for w, n in EXPECTED.items())
    assert table != EXPECTED  # the victim's uncommitted work was counted again


def test_exactly_once_run_is_deterministic(tmp_path):
    first = run_kill_scenario("exactly_once", "memory://", str(tmp_path / "a"), seed=3)
    second = run_kill_scenario("exactly_once", "memory://", str(tmp_path / "b"), seed=3)
    assert first[3] == second[3] and first[1] == second[1] == EXPECTED


def test_a_backlog_drains_through_the_repartition_hop_without_waiting_for_the_interval(tmp_path):
    """The words written in a transaction reach the counting stage only at its commit: with a
    60 s commit interval, the counts are complete long before the first interval ends, because
    a worker that runs out of input commits its transaction then."""

    async def main(cluster):
        await feeder(cluster, every=0.0)  # the whole input first: a backlog
        app = make_app("exactly_once", "memory://", str(tmp_path), broker_commit_interval=60.0)
        await app.start()
        loop = asyncio.get_running_loop()
        began = loop.time()
        while fold(cluster, "eos-wc-counts-changelog") != EXPECTED and loop.time() < began + 120:
            await asyncio.sleep(0.5)
        drained = loop.time() - began
        await app.stop()
        commits = [e for e in cluster.trace.events if e.kind == "txn-commit"]
        return drained, commits

    drained, commits = simulate(main, seed=2, config=FAST)
    assert drained < 20.0, drained  # not a 60 s interval per stage
    assert len(commits) >= 2  # the split stage's transaction, then the counting stage's


def test_a_zombie_is_fenced_by_the_group_generation(tmp_path):
    """A worker the group expelled (no heartbeats) but still processing may commit nothing.

    Its transactional id is its own, so only the group generation can stop
    it: its offsets are refused (KIP-447), its transaction aborts, it drops
    its partitions, and the survivor redoes that work once.
    """

    async def main(cluster):
        feeding = feeder(cluster, every=1.0)  # 80 s of input
        zombie = make_app("exactly_once", "memory://", str(tmp_path), name="w1")
        survivor = make_app("exactly_once", "memory://", str(tmp_path), name="w2")
        await zombie.start()
        await survivor.start()
        await asyncio.sleep(5.0)
        zombie.conductor.consumer._task.cancel()  # partitioned from the group coordinator only
        member = zombie.conductor.consumer.group_metadata().member_id
        await feeding
        await settle(cluster)
        lost = zombie.conductor.assignment()
        await survivor.stop()
        await zombie.stop()
        return fold(cluster, "eos-wc-counts-changelog"), cluster.trace.events, member, lost

    table, events, member, lost = simulate(main, config=FAST)
    assert table == EXPECTED
    assert lost == set()  # it dropped its partitions when its transaction aborted
    expired = [e for e in events if e.kind == "member-expired"]
    assert [e.fields["member"] for e in expired] == [member]
    rejected = [e for e in events if e.kind == "commit-rejected" and e.time > expired[0].time]
    assert rejected, "the zombie never tried to commit after it was expelled"
    zombie_aborts = [e for e in events if e.kind == "txn-abort" and e.actor == "eos-wc-w1"]
    assert zombie_aborts and zombie_aborts[0].fields["tps"], "its transaction had records"


PROJECT = '''
"""Word count, exactly-once, as a ``detstream sim`` project."""
from collections import Counter

import detstream

app = detstream.App(
    "eos-sim-wc", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="exactly_once", store={store!r},
)
sentences = app.topic("sentences", value_type=str)
words = app.topic("words", value_type=str, internal=True)
counts = app.Table("counts", default=int)


@app.agent(sentences, sink=[words])
async def split(stream):
    async for sentence in stream:
        for word in sentence.split():
            yield word


@app.agent(words)
async def count(stream):
    async for word in stream.group_by(lambda w: w, name="word"):
        counts[word] += 1


def sim_scenario(sim):
    sim.topic("sentences", partitions=4)
    sim.producer("sentences", {sentences!r}, every=0.1, name="feed")

    @sim.check
    def exact_counts(result):
        expected = Counter(w for s in result.produced("sentences") for w in s.split())
        assert result.table("counts") == dict(expected), result.table("counts")
'''


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_runner_crashes_and_shuffled_schedules_keep_counts_exact(store, tmp_path):
    """Crashes, restarts and rebalances from seeded plans, interleavings permuted: every check holds.

    Also the runner's own: no lost input, committed offsets at the end of every
    consumed partition (positions past transaction markers), tables equal to
    their changelogs.
    """
    from sim.runner import SimOptions, run

    project = tmp_path / f"eos_wc_{store[:-3]}.py"
    project.write_text(PROJECT.format(store=store, sentences=SENTENCES[:40]))
    failures = {}
    for seed in range(1, 5):
        report = run(str(project), SimOptions(seed=seed, duration=15.0, faults="chaos", shuffle=True))
        if not report.ok:
            failures[seed] = [str(v) for v in report.violations]
    assert failures == {}


def test_a_stuck_agent_aborts_the_transaction_and_crashes_the_app(tmp_path):
    """Its partial output must never commit: the next owner redoes the event."""

    async def main(cluster):
        cluster.create_topic("in", 1, by="test")
        app = detstream.App("eos-stuck", broker="sim://", processing_guarantee="exactly_once",
                            producer_transaction_timeout=20.0)
        source = app.topic("in", value_type=str)
        out = app.topic("out", value_type=str, internal=True, partitions=1)
        forever = asyncio.Event()

        @app.agent(source)
        async def relay(stream):
            async for value in stream:
                await out.send(value=f"{value}-1")
                if value == "stuck":
                    await forever.wait()
                await out.send(value=f"{value}-2")

        client = SimTransport(cluster=cluster, name="client").create_producer(client_id="client")
        await app.start()
        await client.send("in", key=None, value=text_value("ok"), partition=0)
        await asyncio.sleep(5.0)  # "ok" committed
        await client.send("in", key=None, value=text_value("stuck"), partition=0)
        await asyncio.sleep(30.0)  # the bound is min(0.95 * 60, 0.5 * 20) = 10 s
        crashed = app.crashed
        committed = [json.loads(r.value) for r in cluster.records("out")]
        uncommitted = [json.loads(r.value) for r in cluster.records("out", read_committed=False)]
        forever.set()
        await app.stop()
        return crashed, committed, uncommitted, dict(cluster.group("eos-stuck").committed)

    crashed, committed, uncommitted, offsets = simulate(main, config=FAST)
    assert crashed
    assert committed == ["ok-1", "ok-2"]
    assert "stuck-1" in uncommitted  # produced, then aborted
    assert offsets[detstream.TP("in", 0)] == 1  # "stuck" (offset 1) is not committed
