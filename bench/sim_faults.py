"""Speed of fault-injecting simulation.  Run: ``.venv/bin/python bench/sim_faults.py``.

Word count with 3 workers under ``--faults chaos``: simulated seconds per wall
second and seeds per minute (what ``--seeds`` sweeps can afford), against a
peer measured in the same run: the same seeds with ``--faults none``, so the
ratio is the cost of the faults themselves (crashes, restarts, rebalances,
recoveries).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim.runner import SimOptions, run  # noqa: E402

_clock = time.perf_counter  # noqa: TID251 - a benchmark measures real time

TARGET = "examples/word_count.py"


def measure(faults: str, seeds: range) -> dict[str, object]:
    options = SimOptions(seed=0, workers=3, duration=30.0, faults=faults)
    virtual = 0.0
    failures = 0
    start = _clock()
    for seed in seeds:
        report = run(TARGET, replace(options, seed=seed))
        virtual += report.trace.events[-1].time
        failures += not report.ok
    wall = _clock() - start
    return {
        "faults": faults,
        "seeds": len(seeds),
        "failures": failures,
        "wall_s": round(wall, 2),
        "virtual_s_per_wall_s": round(virtual / wall, 1),
        "seeds_per_minute": round(60 * len(seeds) / wall, 1),
    }


def main(count: int = 20) -> list[dict[str, object]]:
    seeds = range(1, count + 1)
    rows = [measure("chaos", seeds), measure("none", seeds)]
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    print(f"chaos/none wall-time ratio: {rows[0]['wall_s'] / rows[1]['wall_s']:.2f}")
    return rows


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
