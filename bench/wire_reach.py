"""The sim driver next to the production driver on the wire: speed and what each run reaches.

Run: ``.venv/bin/python bench/wire_reach.py --seeds 5 --faults chaos --jobs 2`` (seeds 1..5;
``--seeds 11..30`` looks at seeds an earlier run did not).

Every workload of the zoo, the same seeds and fault profile, once with
``--driver sim`` and once with ``--driver aiokafka`` (aiokafka in the loop on
the simulated brokers' wire). For each driver: seeds per CPU-minute and
failures; then, per trace kind (an ``error=``, ``reason=`` or ``step=``
field's type is part of the kind: ``app-crashed error=NodeNotReadyError``),
how many runs reached it under each driver. A kind only one driver reaches
is a behaviour the other never shows (the row names the first run that
reached it, to run again with ``--trace``): when only the wire reaches it, aiokafka
did something the sim driver's contract does not produce yet (a gap to add to
docs/transport-contract.md and to the sim driver), or the engine met a
production-only path (a bug to fix, as ``KafkaAdmin._to_any_broker`` was).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detstream.cli.sim import parse_seed_range  # noqa: E402
from sim.runner import SimOptions, run  # noqa: E402
from sim.zoo import ROOT, ZOO  # noqa: E402

DRIVERS = ("sim", "aiokafka")
#: fields whose value's first word (an error type, a reason, a step) refines a trace kind.
_REFINING = ("error", "reason", "step")
_FIRST_WORD = re.compile(r"[^:(\s]*")


def reach_of(workload: str, seed: int, faults: str, driver: str) -> tuple[str, float, str, set[str]]:
    """One run: its driver, CPU seconds, failed checks ("" if it passed), trace kinds reached."""
    found = next(w for w in ZOO if w.name == workload)
    began = time.process_time()
    report = run(str(ROOT / found.path), found.options(SimOptions(seed=seed, faults=faults, driver=driver)))
    cpu = time.process_time() - began
    kinds = set()
    for event in report.trace.events:
        kind = event.kind
        for name in _REFINING:
            value = event.fields.get(name)
            if value is not None:
                kind += f" {name}={_FIRST_WORD.match(str(value)).group()}"  # type: ignore[union-attr]
        kinds.add(kind)
    failed = ", ".join(sorted({v.check for v in report.violations}))
    return driver, cpu, failed and f"{workload} seed {seed} --driver {driver}: {failed}", kinds


def _seeds(text: str) -> range:
    """``N`` (seeds 1..N) or a range ``A..B``."""
    return range(1, int(text) + 1) if text.isdigit() else parse_seed_range(text)


def main(argv: list[str] | None = None) -> dict[str, Counter[str]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=_seeds, default=range(1, 4),
                        help="N (seeds 1..N) or a range A..B, of each workload")
    parser.add_argument("--faults", default="chaos", choices=["none", "default", "chaos"])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    jobs = [(w.name, seed, args.faults, driver) for w in ZOO for seed in args.seeds
            for driver in DRIVERS]
    reached = {driver: Counter[str]() for driver in DRIVERS}
    first_run: dict[str, dict[str, str]] = {driver: {} for driver in DRIVERS}
    cpu, failures = Counter[str](), Counter[str]()
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = pool.map(reach_of, *zip(*jobs, strict=True))
        for (workload, seed, _, _), (driver, seconds, failed, kinds) in zip(jobs, results, strict=True):
            cpu[driver] += seconds
            failures[driver] += bool(failed)
            reached[driver].update(kinds)
            for kind in kinds:
                first_run[driver].setdefault(kind, f"{workload} seed {seed}")
            if failed:
                print("FAILED", failed, flush=True)
    runs = len(jobs) // len(DRIVERS)
    for driver in DRIVERS:
        print(f"driver={driver} runs={runs} failures={failures[driver]} cpu_s={cpu[driver]:.1f} "
              f"seeds_per_cpu_minute={60 * runs / cpu[driver]:.1f}")
    print(f"wire/sim CPU ratio: {cpu['aiokafka'] / cpu['sim']:.2f}")
    print(f"\n{'trace kind':62s} {'sim':>5s} {'wire':>5s}  (runs reaching it, of {runs})")
    for kind in sorted(set(reached["sim"]) | set(reached["aiokafka"])):
        sim, wire = reached["sim"][kind], reached["aiokafka"][kind]
        only = (f"  only wire (first: {first_run['aiokafka'][kind]})" if not sim
                else f"  only sim (first: {first_run['sim'][kind]})" if not wire else "")
        print(f"{kind:62s} {sim:5d} {wire:5d}{only}")
    return reached


if __name__ == "__main__":
    main()
