"""How the simulator scales with workers: ``.venv/bin/python bench/sim_scale.py [10 30 100]``.

A keyed counter over 1,000 partitions (bench/apps/keyed_counter.py) on N
simulated workers, with a rebalance storm: a quarter of the workers leave
and as many join during the run. Per worker count: virtual seconds per wall
second (the peer: the run's own virtual duration against the wall time it
took), how long the group took to settle after the storm (virtual s, from
the last membership fault to the last ``taken``), and duplicate counts from
the final read. Issue 10's target: >= 100 virtual s per wall s at 100 workers.

The run's CPU time is printed too (``cpu_s``, ``virtual_per_cpu``): on a
shared machine the wall time also counts the other processes' share of it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rows import run_benches  # noqa: E402
from sim.faults import Fault, FaultPlan  # noqa: E402
from sim.runner import SimOptions, run  # noqa: E402

_clock = time.perf_counter  # noqa: TID251 - a benchmark measures real time
_cpu = time.process_time
APP = "bench/apps/keyed_counter.py"
DURATION = 30.0


def storm(workers: int) -> FaultPlan:
    """A quarter of the workers leave and as many new ones join, spread over the run."""
    moves = max(1, workers // 4)
    faults = []
    for i in range(moves):
        at = round(5.0 + 15.0 * i / moves, 3)
        faults.append(Fault(at, "leave", f"w{i + 1}"))
        faults.append(Fault(at + 0.5, "join", f"w{workers + i + 1}"))
    return FaultPlan("file", ("join", "leave"), tuple(faults))


def bench_scale(workers: int) -> dict[str, object]:
    plan = storm(workers)
    start, cpu_start = _clock(), _cpu()
    report = run(APP, SimOptions(seed=1, workers=workers, duration=DURATION, plan=plan))
    wall, cpu = _clock() - start, _cpu() - cpu_start
    events = report.trace.events
    end = max(e.time for e in events)
    storm_end = max(f.at for f in plan.faults)
    settled = max((e.time for e in events if e.kind == "taken"), default=storm_end)
    return {
        "bench": f"scale_{workers}_workers",
        "ok": report.ok,
        "virtual_s": round(end, 1),
        "wall_s": round(wall, 1),
        "virtual_per_wall": round(end / wall, 1),
        "cpu_s": round(cpu, 1),
        "virtual_per_cpu": round(end / cpu, 1),
        "rebalances": report.coverage["rebalance"],
        "settled_after_storm_s": round(settled - storm_end, 1),
        "duplicate_results": report.coverage["duplicate-result"],
        "duplicate_writes": report.coverage["duplicate-write"],
        "target_virtual_per_wall_at_100": 100,
    }


if __name__ == "__main__":
    counts = [int(arg) for arg in sys.argv[1:]] or [10, 30, 100]
    benches = []
    for count in counts:
        def bench(count: int = count) -> dict[str, object]:
            return bench_scale(count)
        bench.__name__ = f"scale_{count}"
        benches.append(bench)
    run_benches(benches)
