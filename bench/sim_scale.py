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

Where the CPU goes: each worker count also runs without the feed (the same
workers and storm, no input), and the difference over the fed records is the
CPU per record (``us_per_record``). Each record is alone on its partition when
it comes, so each pays a whole round of the simulated protocol (the feed's
produce request, the fetch that wakes for it, the agent, the changelog record
and its ack at the next commit). While the feed runs, one record comes every
``FEED_EVERY`` virtual seconds, so the run cannot go faster than
``FEED_EVERY / us_per_record`` virtual seconds per CPU second there, whatever
else it costs (``feed_bound``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.apps.keyed_counter import FEED_EVERY, PARTITIONS, RECORDS  # noqa: E402
from bench.rows import run_benches  # noqa: E402
from sim.faults import Fault, FaultPlan  # noqa: E402
from sim.runner import SimOptions, run  # noqa: E402
from sim.scenario import Scenario  # noqa: E402

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


def no_feed(sim: Scenario) -> None:
    """The app's scenario without its input: what the workers and the storm cost alone."""
    sim.topic("clicks", partitions=PARTITIONS)


def bench_scale(workers: int) -> dict[str, object]:
    plan = storm(workers)
    options = SimOptions(seed=1, workers=workers, duration=DURATION, plan=plan)
    start, cpu_start = _clock(), _cpu()
    report = run(APP, options)
    wall, cpu = _clock() - start, _cpu() - cpu_start
    cpu_start = _cpu()
    run(APP, options, scenario=no_feed)
    per_record = (cpu - (_cpu() - cpu_start)) / RECORDS
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
        "us_per_record": round(per_record * 1e6, 1),
        "feed_bound": round(FEED_EVERY / per_record, 1),
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
