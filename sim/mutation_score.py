"""The mutation score: which planted engine bugs the simulator catches, how soon, how small.

``scripts/mutation-score [--seeds N] [--jobs J] [--mutants a,b] [--clean]``

Every mutant in ``detstream.mutants`` re-opens one real bug. For each, the
zoo's workloads are swept in order (seeds 1..N under ``chaos``, the mutant
on) until one catches it; the row says which workload, which checks failed
at the first failing seed, how many of the N seeds failed, the fewest
faults any of the first four failing plans shrinks to (``explore.shrink``),
with its seed, and how long it all took. A mutant no workload catches gets a second chance: the property suites
(``pytest properties``) run with it on, and the row names the failing
properties. A mutant neither catches is a gap in what the runs reach or
what the checks look at: the row says ``NOT CAUGHT``.

``--clean`` sweeps the zoo without mutants instead (under ``--faults``,
``chaos`` by default): every failure there is a false alarm (or a real
bug), and the score means nothing until there is none.

The workloads are ``sim.zoo``'s (``detstream sim --zoo --seeds A..B`` sweeps
them without mutants).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

from detstream import mutants

from .explore import Sweep, shrink, sweep
from .runner import SimOptions
from .zoo import ROOT, ZOO, Workload


@dataclass
class Score:
    """One row: a mutant and what caught it (``workload`` None: nothing did)."""

    mutant: str
    workload: str | None
    checks: tuple[str, ...]
    first_seed: int | None
    caught: int
    seeds: int
    shrunk_faults: int | None
    seconds: float
    #: the failing seed whose plan shrank smallest (``shrunk_faults``).
    shrunk_seed: int | None = None

    def row(self) -> str:
        if self.workload is None:
            return f"| `{self.mutant}` | NOT CAUGHT | - | 0/{self.seeds} per workload | - | {self.seconds:.0f} |"
        if self.first_seed is None:  # caught by the property suites, not by a seed of the zoo
            checks = ", ".join(f"`{c}`" for c in self.checks)
            return (f"| `{self.mutant}` | {self.workload}: {checks} | - | 0/{self.seeds} per workload "
                    f"| - | {self.seconds:.0f} |")
        checks = ", ".join(f"`{c}`" for c in self.checks)
        shrunk = f"{self.shrunk_faults} (seed {self.shrunk_seed})" if self.shrunk_seed is not None else "-"
        return (f"| `{self.mutant}` | {self.workload}: {checks} | {self.first_seed} | "
                f"{self.caught}/{self.seeds} | {shrunk} | {self.seconds:.0f} |")


HEADER = ("| mutant | caught by | first seed | seeds caught | faults after shrinking | seconds |\n"
          "|---|---|---|---|---|---|")


def known_mutants() -> list[str]:
    """Every registered mutant (importing the modules that register them)."""
    import detstream.agent  # noqa: F401
    import detstream.app  # noqa: F401  - registers the engine's mutants on import
    import detstream.stream  # noqa: F401
    import detstream.tables.expiry  # noqa: F401
    import sim.runner  # noqa: F401  - and the simulated cluster's

    return sorted(mutants.KNOWN)


@contextmanager
def active(mutant: str | None) -> Iterator[None]:
    """``mutant`` on, here and in the worker processes a sweep spawns (they read the environment)."""
    saved = os.environ.get("DETSTREAM_MUTANTS")
    if mutant is None:
        os.environ.pop("DETSTREAM_MUTANTS", None)
        yield
    else:
        os.environ["DETSTREAM_MUTANTS"] = mutant
        with mutants.enabled(mutant):
            yield
    if saved is None:
        os.environ.pop("DETSTREAM_MUTANTS", None)
    else:
        os.environ["DETSTREAM_MUTANTS"] = saved


def _options(workload: Workload, faults: str = "chaos") -> SimOptions:
    return workload.options(SimOptions(seed=0, faults=faults))


def score(
    mutant: str, seeds: int, *, jobs: int = 1, zoo: Sequence[Workload] = ZOO, properties: bool = True,
) -> Score:
    """Sweep the zoo with ``mutant`` on until a workload catches it; shrink its first failures."""
    started = time.perf_counter()  # noqa: TID251 - the score reports real seconds
    with active(mutant):
        for workload in zoo:
            target = str(ROOT / workload.path)
            result = sweep(target, _options(workload), range(1, seeds + 1), jobs=jobs)
            failures = result.failures
            if not failures:
                continue
            first, outcome = failures[0]
            faults, seed = _smallest_reproduction(target, _options(workload), [s for s, _ in failures])
            return Score(mutant, workload.name, tuple(sorted({v.check for v in outcome.violations})),
                         first, len(failures), seeds, faults,
                         time.perf_counter() - started, seed)  # noqa: TID251
        failed = failing_properties() if properties else ()
    if failed:
        return Score(mutant, "properties", failed, None, 0, seeds, None,
                     time.perf_counter() - started)  # noqa: TID251
    return Score(mutant, None, (), None, 0, seeds, None, time.perf_counter() - started)  # noqa: TID251


#: failing seeds shrunk per mutant: the smallest of their plans is the reproduction reported.
SHRUNK_SEEDS = 4


def _smallest_reproduction(target: str, options: SimOptions, failing: list[int]) -> tuple[int | None, int | None]:
    """Shrink the first ``SHRUNK_SEEDS`` failing seeds; the fewest faults any still fails with, and its seed.

    Shrinking removes one fault at a time while the run still fails, so a
    plan ends 1-minimal, not minimum: another seed's failure may need
    fewer faults. The smallest is the one worth reading first.
    """
    best: tuple[int | None, int | None] = (None, None)
    for seed in failing[:SHRUNK_SEEDS]:
        shrunk, _ = shrink(target, replace(options, seed=seed), budget=20)
        faults = len(shrunk.plan.faults) if shrunk.plan is not None else None
        if faults is not None and (best[0] is None or faults < best[0]):
            best = (faults, seed)
    return best


def failing_properties() -> tuple[str, ...]:
    """The property tests (``pytest properties``) that fail now, in a process of their own.

    The zoo's runs are one seed's interleaving each; the property suites
    explore the small machines (supervisors, offset tracking, ordering) with
    Hypothesis. A mutant the zoo never catches gets this second chance.
    """
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-ra", "-p", "no:cacheprovider", str(ROOT / "properties")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    failed = [line.split()[1].rpartition("::")[2] for line in result.stdout.splitlines()
              if line.startswith("FAILED ")]
    return tuple(sorted(failed))


def false_alarms(
    seeds: int, *, jobs: int = 1, zoo: Sequence[Workload] = ZOO, faults: str = "chaos",
) -> dict[str, Sweep]:
    """Each workload's sweep without any mutant (a failing seed: a false alarm or a real bug)."""
    with active(None):
        return {
            workload.name: sweep(
                str(ROOT / workload.path), _options(workload, faults), range(1, seeds + 1), jobs=jobs
            )
            for workload in zoo
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation-score", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=50, help="seeds per workload (default 50)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--mutants", help="comma-separated names (default: every known mutant)")
    parser.add_argument("--clean", action="store_true", help="sweep the zoo without mutants")
    parser.add_argument("--faults", choices=("none", "default", "chaos"), default="chaos",
                        help="fault profile of --clean's sweeps (default chaos; mutants: chaos)")
    args = parser.parse_args(argv)
    if args.clean:
        alarms = false_alarms(args.seeds, jobs=args.jobs, zoo=ZOO, faults=args.faults)
        for name, swept in alarms.items():
            failed = [seed for seed, _ in swept.failures]
            verdict = "OK" if not failed else f"FAILED seeds {failed}"
            print(f"{name}: {verdict} ({args.seeds} {args.faults} seeds, "
                  f"{swept.seeds_per_cpu_minute:.0f} seeds per CPU-minute)")
        return 1 if any(swept.failures for swept in alarms.values()) else 0
    known = known_mutants()
    names = args.mutants.split(",") if args.mutants else known
    unknown = sorted(set(names) - set(known))
    if unknown:
        parser.error(f"unknown mutant(s) {unknown}; known: {', '.join(known)}")
    print(HEADER, flush=True)
    scores = []
    for name in names:
        scores.append(score(name, args.seeds, jobs=args.jobs, zoo=ZOO))
        print(scores[-1].row(), flush=True)
    caught = sum(1 for s in scores if s.workload is not None)
    print(f"\nmutation score: {caught}/{len(scores)} caught within {args.seeds} chaos seeds of the zoo")
    return 0 if caught == len(scores) else 1


if __name__ == "__main__":
    raise SystemExit(main())
