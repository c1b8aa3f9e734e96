"""A rebalance listener that fails crashes the app: a worker never runs half assigned (issue 9).

aiokafka logs and swallows an exception of the listener; the engine's
``GuardedListener`` (detstream/engine/listener_guard.py) does not: on the simulator
as on Kafka, the app drops its partitions uncommitted and crashes with a
``RebalanceListenerError`` naming the step and the cause.
"""

import asyncio

import detstream
from detstream.errors import RebalanceListenerError
from detstream.tables.table import Table
from sim.cluster import ClusterConfig
from sim.testing import simulate
from tests.unit.test_table_recovery import feed

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class BrokenStoreTable(Table):
    """A table whose store cannot open its partitions (a full or read-only disk)."""

    def on_partitions_assigned(self, tps):
        if any(tp.topic == self.changelog_name for tp in tps):
            raise OSError(f"cannot open the store of {self.name!r}: No space left on device")
        super().on_partitions_assigned(tps)


def counting_app(cluster, name, *, table_class=Table, **settings):
    app = detstream.App("lst", broker="sim://", topic_partitions=2, **settings)
    app.client_name = name
    app.trace_hook = cluster.trace.record
    words = app.topic("words", partitions=2, internal=True, value_type=str)
    counts = table_class(app, "counts", default=int)
    app.tables.add(counts)
    seen = []

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            seen.append(word)
            counts[word] += 1

    return app, seen


async def until(condition, *, within: float = 30.0) -> None:
    """Wait (virtual time) until ``condition()`` holds; fail past ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


def test_a_failing_listener_step_crashes_the_app_naming_the_error():
    async def main(cluster):
        app, seen = counting_app(cluster, "w1", table_class=BrokenStoreTable)
        await app.start()
        try:
            await feed(cluster, ["a", "b", "c", "d"])
            await until(lambda: app.crashed)
            await asyncio.sleep(2.0)  # the consumer goes on fetching: nothing may reach the agent
            return app.crash_reason, list(seen), app.conductor.assignment(), cluster
        finally:
            await app.stop()

    reason, seen, assignment, cluster = simulate(main, seed=1, config=FAST)
    assert isinstance(reason, RebalanceListenerError)
    assert reason.step == "on_partitions_assigned"
    assert "could not take its assignment" in str(reason)
    assert "OSError: cannot open the store of 'counts': No space left on device" in str(reason)
    assert isinstance(reason.__cause__, OSError)
    assert "lst-counts-changelog[0]" in str(reason) and "words[1]" in str(reason)
    assert seen == [] and assignment == set()  # never ran with the assignment half taken
    errors = [e.fields for e in cluster.trace.of_kind("engine-error") if e.actor == "w1"]
    assert errors == [{"error": "OSError", "step": "on_partitions_assigned"}]
    assert not any(e.actor == "w1" for e in cluster.trace.of_kind("commit"))


def test_two_workers_sharing_a_rocksdb_datadir_crash_instead_of_skipping_recovery(tmp_path):
    """The issue's case: a clear "locked" error, and the worker it hit stops (not half assigned)."""

    async def main(cluster):
        shared = str(tmp_path / "shared")
        first, _ = counting_app(cluster, "w1", store="rocksdb://", datadir=shared)
        second, _ = counting_app(cluster, "w2", store="rocksdb://", datadir=shared)
        await first.start()
        await feed(cluster, ["a", "b", "c", "d"])
        await asyncio.sleep(2.0)
        await second.start()
        try:
            await until(lambda: first.crashed or second.crashed)
            return [app.crash_reason for app in (first, second) if app.crashed]
        finally:
            for app in (second, first):
                await app.stop()

    reasons = simulate(main, seed=1, config=FAST)
    assert reasons and all(isinstance(r, RebalanceListenerError) for r in reasons)
    message = str(reasons[0])
    assert "is locked by another worker" in message, message
    assert str(tmp_path / "shared") in message and "own datadir" in message, message
