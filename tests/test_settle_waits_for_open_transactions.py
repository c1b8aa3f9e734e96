"""A run's final read waits until no transaction is open, a gone producer's included.

A worker that leaves while cut off from the cluster (its graceful stop gives
up) leaves its transaction open at the coordinator. Until the coordinator
aborts it on its timeout, the partitions it wrote are stuck at their last
stable offset for read_committed readers: the output other workers commit
meanwhile is invisible, not lost. Before the run waited for that, its final
read ran inside the window and the checks called a correct program's output
lost (take_batches under this plan, seed 9; the same false alarm was the only
catch of the ``assigned-while-stopping-taken`` mutant, take_batches chaos seed 33).
"""

from __future__ import annotations

import asyncio

import pytest

from detstream import mutants
from detstream._types import TP
from sim import checks
from sim import runner as sim_runner
from sim.cluster import SimCluster
from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run
from sim.testing import simulate

TAKE_BATCHES = "sim/workloads/take_batches.py"
#: w2 leaves at t=6 s while its host is cut off from the cluster for 70 s. (Seed 9 left its
#: transaction open until session 32, when the sim driver began to hold requests as TCP does:
#: its writes are now held and discarded; seed 1 left it open until session 41, when listeners
#: began to race fetches; seeds 2 to 7 do now.)
CUT_OFF_LEAVE = FaultPlan("file", ("leave",), (Fault(6.0, "leave", "w2", 70.0, unreachable=True),))
OPTIONS = SimOptions(seed=2, duration=20.0, plan=CUT_OFF_LEAVE)


def test_the_final_read_comes_after_the_gone_producers_transaction_is_aborted() -> None:
    """The whole run (with today's schedule its group settles after the timeout anyway: the next
    test isolates the wait)."""
    report = run(TAKE_BATCHES, OPTIONS)
    assert report.ok, report.violations
    timed_out = [e for e in report.trace.of_kind("txn-abort") if e.fields.get("reason") == "timeout"]
    assert [e.actor for e in timed_out] == ["take-batches-w2"]
    assert not report.cluster.transactions.open_ids()


def test_the_settle_phase_waits_for_the_open_transaction_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every other settle condition made true at once (convergence, the live apps' sends): only the
    gone producer's open transaction still holds the final read back, until its timeout."""
    monkeypatch.setattr(checks, "converged", lambda *args, **kwargs: None)
    monkeypatch.setattr(sim_runner, "_nothing_in_flight", lambda app: True)
    report = run(TAKE_BATCHES, OPTIONS)
    timed_out = [e for e in report.trace.of_kind("txn-abort") if e.fields.get("reason") == "timeout"]
    assert [e.actor for e in timed_out] == ["take-batches-w2"]
    assert not report.cluster.transactions.open_ids()


def test_a_transaction_nobody_ends_stays_open_until_the_coordinator_times_it_out() -> None:
    """What the settle phase waits for: ``open_ids`` lists a gone producer's transaction until the
    coordinator aborts it. (When the wait was added, in session 28, the run above read its output
    inside that window without it and its checks reported every_reading_in_exactly_one_batch and
    table_counts_committed_batches; the exactly-once idle commit then moved that run's schedule
    so that its group settles only after the timeout, wait or not.)"""

    async def main(cluster: SimCluster) -> tuple[list[str], list[str], list[str]]:
        cluster.create_topic("out", 1, by="test")
        _, epoch = cluster.transactions.init_producer("gone", timeout=60.0)
        cluster.transactions.add_partitions("gone", epoch, [TP("out", 0)])
        opened = cluster.transactions.open_ids()
        await asyncio.sleep(59.0)
        still = cluster.transactions.open_ids()
        await asyncio.sleep(2.0)
        return opened, still, cluster.transactions.open_ids()

    assert simulate(main) == (["gone"], ["gone"], [])


def test_a_stopping_worker_does_not_take_the_assignment_its_stop_let_through() -> None:
    """take_batches chaos seed 33: w3 restarts during the first join; its consumer's stop lets
    the rebalance in flight run to the listener (``rebalance-at-stop``), and the conductor,
    stopping, records ``assigned-while-stopping`` and starts nothing (no recovery, no standby
    reader after its stop stopped them). With the ``assigned-while-stopping-taken`` mutant it
    takes the assignment: the final read, which waits for open transactions, sees no harm in
    it; the ``stopped-app-idle`` check does (tests/test_planted_mutants.py), and this pins the
    step itself."""
    options = SimOptions(seed=33, duration=20.0, faults="chaos")

    def stopping_steps() -> tuple[bool, list[tuple[str, str]]]:
        report = run(TAKE_BATCHES, options)
        return report.ok, [(e.actor, e.kind) for e in report.trace.events
                           if e.kind in ("rebalance-at-stop", "assigned-while-stopping") or (
                               e.actor == "w3" and e.kind == "taken" and e.fields.get("generation") == 1)]

    assert stopping_steps() == (True, [("w3", "rebalance-at-stop"), ("w3", "assigned-while-stopping")])
    with mutants.enabled("assigned-while-stopping-taken"):
        ok, steps = stopping_steps()
        assert ("w3", "assigned-while-stopping") not in steps and not ok
