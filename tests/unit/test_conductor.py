"""The conductor opens a new assignment's partitions only after their tables are recovered.

Kafka clients may fetch records of a new assignment before (and while) the
rebalance listener runs; the sim's consumer does so when its listener lag is
drawn. These tests force the lag and check the transport contract's promise:
no record reaches an agent before recovery, and none of the records fetched
early is lost (the partition is sought back to its committed offset).
"""

from collections import Counter

from sim.checks import no_delivery_during_recovery
from sim.cluster import ClusterConfig
from sim.testing import simulate
from tests.unit.test_table_recovery import FIRST, SECOND, feed, run_worker

#: enough changelog records that recovery takes several fetches (500 records each).
HISTORY = FIRST * 250
EXPECTED = dict(Counter(HISTORY + SECOND))

LAGGING = ClusterConfig(initial_rebalance_delay=0.1, listener_lag_share=1.0, listener_lag=0.5)


def takeover(tmp_path, store):
    async def main(cluster):
        await run_worker(cluster, "w1", store=store, datadir=tmp_path / "w1", words=HISTORY)
        await feed(cluster, SECOND)  # waits for the next owner, behind the table to recover
        _, table, _ = await run_worker(cluster, "w2", store=store, datadir=tmp_path / "w2")
        return table, cluster

    return simulate(main, seed=4, config=LAGGING)


def test_early_fetched_records_wait_for_recovery_and_are_not_lost(tmp_path):
    table, cluster = takeover(tmp_path, "memory://")
    assert table == EXPECTED
    assert cluster.stats["fetch-before-listener"] >= 1  # the situation was reached
    opened = [e.fields for e in cluster.trace.of_kind("opened") if e.actor == "w2"]
    assert opened and opened[0]["sought"] >= 1  # early records dropped, partition sought back
    assert no_delivery_during_recovery(cluster.trace) is None


def test_rocksdb_takeover_with_listener_lag_is_exact(tmp_path):
    table, cluster = takeover(tmp_path, "rocksdb://")
    assert table == EXPECTED
    assert no_delivery_during_recovery(cluster.trace) is None


def test_the_listener_races_a_fetch_of_its_new_assignment(tmp_path):
    """With a lag drawn, the listener is mostly called as the consumer's first, second or third
    fetch of the new assignment is on its way back (``GroupMember._lag``): in the step that
    fetch went out, so its records come back while the listener awaits."""
    _, cluster = takeover(tmp_path, "memory://")
    races = list(cluster.trace.of_kind("listener-race"))
    assert races and cluster.stats["listener-race"] == len(races)
    for race in races:  # (one consumer at a time here: the next assignment taken is its own)
        assigned = next(e for e in cluster.trace.of_kind("assigned") if e.time >= race.time)
        assert assigned.time == race.time and 1 <= race.fields["fetches"] <= 3
