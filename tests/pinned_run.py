"""A zoo run pinned to the schedule it was found with: in a fresh process, ``PYTHONHASHSEED=0``.

A run under ``--driver aiokafka`` is the same for a seed in every process
only with the same hash seed (aiokafka iterates sets of strings; docs/sim.md),
which ``detstream sim`` sets to 0 and pytest leaves random. A test that pins
the schedule a bug was found on (a leak, a late write) runs it here, or it
would test another schedule in every CI run: one that may not reach the bug
at all, so the test could not fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

_SCRIPT = """
import dataclasses, json, sys
from sim import runner, zoo
from sim.faults import plan_faults
from sim.runner import RunResult
name, faults, seed, driver, topics, later_kinds = json.loads(sys.argv[1])
workload = next(w for w in zoo.ZOO if w.name == name)
options = dataclasses.replace(
    workload.options(runner.SimOptions(seed=seed, faults=faults)), driver=driver)
plan = plan_faults(seed, faults, options.workers, options.duration, options.brokers)
options = dataclasses.replace(options, plan=plan.without_kinds(tuple(later_kinds)))
report = runner.run(workload.path, options)
history = report.cluster.history.writes
result = RunResult(report.cluster, [], {}, [])
print(json.dumps({
    "ok": report.ok,
    "violations": [[v.check, v.message, v.evidence[:3]] for v in report.violations],
    "kinds": sorted({e.kind for e in report.trace.events}),
    "overtaken": {t: sorted(k.decode() for k in result.overtaken_keys(t)) for t in topics},
    "appended_all_acked": all(w.acked for w in history if w.offsets),
    "refused": sorted({w.refused for w in history if w.refused}),
}))
"""


#: fault kinds whose late groups the chaos profile drew after these pins were found (``cut``:
#: session 40): left out of a pinned seed's plan, it runs the schedule it was found on.
LATER_KINDS = ("cut",)


def run_pinned(
    workload: str, faults: str, seed: int, *, driver: str = "aiokafka", topics: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Run zoo ``workload`` with ``faults`` and ``seed`` as ``detstream sim`` would; its outcome.

    The seed's plan leaves out the faults of ``LATER_KINDS`` (``FaultPlan.without_kinds``).

    The outcome: ``ok``, ``violations`` (check, message, evidence), the trace
    ``kinds`` seen, the ``overtaken`` keys of each of ``topics``
    (``RunResult.overtaken_keys``), whether every appended write was
    acknowledged, and the refusals met.
    """
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(REPO)}
    argument = json.dumps([workload, faults, seed, driver, list(topics), list(LATER_KINDS)])
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, argument], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return outcome
