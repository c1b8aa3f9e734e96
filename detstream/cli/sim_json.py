"""``detstream sim --json``: the records a run, a sweep and the zoo print for machines.

One JSON object per line (JSON Lines): a ``seed`` record per run, a
``summary`` record after each sweep, a ``zoo`` record after the zoo. The
schema is documented in docs/sim.md ("Machine-readable output"). Records hold
only what the runs computed, in a fixed key order, so equal inputs give equal
bytes with any ``--jobs``: no timings (a run's CPU time stays out).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sim.checks import Violation
    from sim.explore import SeedOutcome, Sweep

__all__ = ["dumps", "seed_record", "summary_record", "zoo_record"]


def dumps(record: Mapping[str, Any]) -> str:
    """One line of JSON: keys in the record's own (fixed) order, ASCII only."""
    return json.dumps(record, separators=(", ", ": "))


def seed_record(outcome: SeedOutcome, target: str, replay: str, workload: str | None = None) -> dict[str, Any]:
    """A run's verdict: what failed, what it reached, its trace hash and how to rerun it."""
    return {
        "type": "seed",
        "workload": workload,
        "target": target,
        "seed": outcome.seed,
        "ok": outcome.ok,
        "sha256": outcome.sha256,
        "violations": _violations(outcome.violations),
        "coverage": _sorted(outcome.coverage),
        "replay": replay,
    }


def summary_record(result: Sweep, target: str, seeds: range, faults: str,
                   workload: str | None = None) -> dict[str, Any]:
    """A sweep's totals, as its text output's last lines give them."""
    failed = [outcome.seed for outcome in result.outcomes if not outcome.ok]
    return {
        "type": "summary",
        "workload": workload,
        "target": target,
        "faults": faults,
        "first_seed": seeds.start,
        "last_seed": seeds.stop - 1,
        "seeds": result.runs,
        "passed": result.runs - len(failed),
        "failed": len(failed),
        "failed_seeds": failed,
        "ok": not failed,
        "coverage": _sorted(result.coverage),
        "reached": {name: result.reached[name] for name in sorted(result.coverage)},
        # as the text output: counters no seed reached matter only when faults were drawn
        "never_reached": result.never_reached() if faults != "none" else [],
    }


def zoo_record(workloads: int, failed: Sequence[str]) -> dict[str, Any]:
    """The zoo's verdict: how many workloads passed, and which failed (in sweep order)."""
    return {
        "type": "zoo",
        "workloads": workloads,
        "passed": workloads - len(failed),
        "failed": len(failed),
        "failed_workloads": list(failed),
        "ok": not failed,
    }


def _violations(violations: Sequence[Violation]) -> list[dict[str, Any]]:
    return [{"check": v.check, "message": v.message, "evidence": list(v.evidence)} for v in violations]


def _sorted(counts: Mapping[str, int]) -> dict[str, int]:
    return {name: counts[name] for name in sorted(counts)}
