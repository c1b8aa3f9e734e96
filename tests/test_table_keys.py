"""Table keys round-trip their changelog: a table keyed by raw bytes survives crashes in sim."""

from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run

BYTES_KEYS = "tests/apps/bytes_keys.py"


def test_bytes_keys_come_back_as_bytes_after_a_crash():
    # at 8 s: w2's changelog partitions hold flushed records by then (one per dirty key per commit)
    plan = FaultPlan("file", ("crash",), (Fault(8.0, "crash", "w2", 4.0),))
    report = run(BYTES_KEYS, SimOptions(seed=2, duration=20.0, plan=plan))  # w2 owns keyed data
    # table-equals-changelog compares each live table with the fold of its changelog:
    # with keys decoded as str it failed here; keys_stay_bytes checks the fold itself
    assert report.ok, report.violations
    kinds = [(e.actor, e.kind) for e in report.trace.events]
    assert ("w2", "crash") in kinds
    crash_at = next(e.time for e in report.trace.events if e.kind == "crash")
    assert any(e.kind == "recovery-start" and e.time > crash_at for e in report.trace.events)
