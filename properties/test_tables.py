"""Tables: after any fault plan, the table holds each input operation applied exactly once.

Hypothesis generates keyed operations and a fault plan; the simulator runs the
table-ops app on three workers, kills, restarts and stalls them per the plan,
and the built-in checks (including: every live table equals the fold of its
changelog, i.e. recovery is exact) run before these assertions.

- exactly_once: ``add`` is not idempotent, so any update applied twice or lost
  shows in the final table.
- at_least_once with RocksDB: a replay after a crash re-applies operations, so
  only idempotent ``set``/``delete`` keep the table exact; the property is that
  replaying in order from the committed offset, on top of what the store and the
  changelog already hold, converges to the same table.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from properties.apps.table_ops import fold
from sim.runner import SimOptions, run
from sim.strategies import fault_plans, seeds

KINDS = ("crash", "restart", "stall", "join", "leave")
DURATION = 20.0
PLANS = fault_plans(duration=DURATION, kinds=KINDS, min_faults=1)
KEYS = st.sampled_from(["k1", "k2", "k3", "k4", "k5", "k6"])


def spread(count: int) -> float:
    """Space the input over most of the run, so faults land while it is processed."""
    return round(0.7 * DURATION / max(count, 1), 3)


def ops(actions: tuple[str, ...]) -> st.SearchStrategy[list[dict[str, Any]]]:
    op = st.fixed_dictionaries(
        {"key": KEYS, "action": st.sampled_from(actions), "amount": st.integers(-5, 9)}
    )
    return st.lists(op, min_size=1, max_size=60)


def scenario_for(operations: list[dict[str, Any]], final: dict[str, Any]):
    def scenario(sim):
        sim.topic("ops", partitions=4)
        sim.producer("ops", [(op["key"], op) for op in operations], keyed=True, every=spread(len(operations)))

        @sim.check
        def read_table(result):
            final.update(result.table("state"))

    return scenario


def run_ops(target: str, operations, plan, seed) -> dict[str, Any]:
    final: dict[str, Any] = {}
    options = SimOptions(seed=seed, duration=DURATION, plan=plan)
    report = run(target, options, scenario=scenario_for(operations, final))
    assert report.ok, report.violations
    for kind in sorted({line.split()[2] for line in report.summary if line.startswith("fault:")}):
        event(f"fault happened: {kind}")
    return final


@settings(max_examples=50)
@given(operations=ops(("set", "add", "delete")), plan=PLANS, seed=seeds())
def test_exactly_once_table_applies_every_operation_once(operations, plan, seed):
    final = run_ops("properties/apps/table_ops_exactly_once.py", operations, plan, seed)
    assert final == fold(operations)


@settings(max_examples=30)
@given(operations=ops(("set", "delete")), plan=PLANS, seed=seeds())
def test_at_least_once_rocksdb_table_converges_for_idempotent_operations(operations, plan, seed):
    final = run_ops("properties/apps/table_ops_rocksdb.py", operations, plan, seed)
    assert final == fold(operations)
