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

import pytest

from detstream import mutants
from sim import transactions
from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run

TAKE_BATCHES = "sim/workloads/take_batches.py"
#: w2 leaves at t=6 s while its host is cut off from the cluster for 70 s.
CUT_OFF_LEAVE = FaultPlan("file", ("leave",), (Fault(6.0, "leave", "w2", 70.0, unreachable=True),))
OPTIONS = SimOptions(seed=9, duration=20.0, plan=CUT_OFF_LEAVE)


def test_the_final_read_comes_after_the_gone_producers_transaction_is_aborted() -> None:
    report = run(TAKE_BATCHES, OPTIONS)
    assert report.ok, report.violations
    timed_out = [e for e in report.trace.of_kind("txn-abort") if e.fields.get("reason") == "timeout"]
    assert [e.actor for e in timed_out] == ["take-batches-w2"]
    assert not report.cluster.transactions.open_ids()


def test_without_the_wait_the_final_read_falls_inside_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the wait prevents (so the test above can fail): the run settled, and read its output,
    with the gone producer's transaction still open (when the wait was added, in session 28,
    this run's checks then reported every_reading_in_exactly_one_batch and
    table_counts_committed_batches: its committed output hidden behind that transaction)."""
    open_ids = transactions.TransactionCoordinator.open_ids
    monkeypatch.setattr(transactions.TransactionCoordinator, "open_ids", lambda self: [])
    report = run(TAKE_BATCHES, OPTIONS)
    assert open_ids(report.cluster.transactions) == ["take-batches-w2"]
    assert not [e for e in report.trace.of_kind("txn-abort") if e.fields.get("reason") == "timeout"]


def test_a_stopping_worker_does_not_take_the_assignment_its_stop_let_through() -> None:
    """take_batches chaos seed 33: w3 restarts during the first join; its consumer's stop lets
    the rebalance in flight run to the listener (``rebalance-at-stop``), and the conductor,
    stopping, records ``assigned-while-stopping`` and starts nothing (no recovery, no standby
    reader after its stop stopped them). With the ``assigned-while-stopping-taken`` mutant it
    takes the assignment: the zoo's checks see no harm in that (the run passes since the final
    read waits for open transactions), so this pins the behaviour itself."""
    options = SimOptions(seed=33, duration=20.0, faults="chaos")

    def stopping_steps() -> list[tuple[str, str]]:
        report = run(TAKE_BATCHES, options)
        assert report.ok, report.violations
        return [(e.actor, e.kind) for e in report.trace.events
                if e.kind in ("rebalance-at-stop", "assigned-while-stopping") or (
                    e.actor == "w3" and e.kind == "taken" and e.fields.get("generation") == 1)]

    assert stopping_steps() == [("w3", "rebalance-at-stop"), ("w3", "assigned-while-stopping")]
    with mutants.enabled("assigned-while-stopping-taken"):
        assert ("w3", "assigned-while-stopping") not in stopping_steps()
