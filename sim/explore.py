"""Many runs of one target: seed sweeps, determinism self-check, replay, shrinking.

Each function calls ``runner.run`` and compares outcomes; printing is left to
the CLI.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from detstream.errors import InvalidArgument

from .checks import Violation
from .faults import FaultPlan
from .runner import SimOptions, SimReport, run

#: coverage counters a sweep expects to see at least once under faults.
INTERESTING = (
    "crash", "crash-with-uncommitted-work", "rebalance", "recovery",
    "rebalance-during-commit", "crash-mid-batch", "txn-aborted", "broker-failover",
    "request-dropped", "batch-deduped", "standby-promoted", "fetch-before-listener",
    "send-refused", "rebalance-interrupted", "recovery-interrupted",
)


@dataclass
class SeedOutcome:
    """What a sweep keeps of one seed's run: small and picklable (it may come from a worker process)."""

    seed: int
    sha256: str
    coverage: Counter[str]
    violations: list[Violation]
    #: CPU seconds the run took (outside it: the run's own clock is virtual).
    cpu: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.violations


def run_seed(target: str, options: SimOptions) -> SeedOutcome:
    """Run one seed of a sweep and keep its outcome (the trace and cluster are dropped)."""
    began = time.process_time()
    report = run(target, options)
    cpu = time.process_time() - began
    return SeedOutcome(options.seed, report.sha256, report.coverage, report.violations, cpu)


@dataclass
class Sweep:
    """A sweep's outcomes and summed coverage: all the command line prints of it."""

    #: one outcome per seed, in seed order.
    outcomes: list[SeedOutcome] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)
    #: per coverage counter, how many seeds reached it at least once (reach, not volume: a
    #: planted bug on a path only 1 seed in 50 reaches is caught in at most that one).
    reached: Counter[str] = field(default_factory=Counter)

    @property
    def runs(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> list[tuple[int, SeedOutcome]]:
        return [(outcome.seed, outcome) for outcome in self.outcomes if not outcome.ok]

    @property
    def cpu(self) -> float:
        """CPU seconds of the runs (in whichever processes ran them)."""
        return sum(outcome.cpu for outcome in self.outcomes)

    @property
    def seeds_per_cpu_minute(self) -> float:
        return 60.0 * self.runs / self.cpu if self.cpu else 0.0

    def never_reached(self) -> list[str]:
        return [name for name in INTERESTING if not self.coverage[name]]


def sweep(
    target: str, options: SimOptions, seeds: range, *, jobs: int = 1,
    on_outcome: Callable[[SeedOutcome], None] | None = None,
) -> Sweep:
    """Run every seed in ``seeds`` with otherwise equal options, in ``jobs`` processes.

    Each seed's run is deterministic on its own, so where it runs does not
    change its outcome; outcomes are kept in seed order either way.
    ``on_outcome`` sees each outcome as it arrives, in seed order, so the
    command line can show progress and stream results during a long sweep;
    it is called in this process, between runs, never inside one.
    """
    if jobs < 1:
        raise InvalidArgument(f"jobs must be at least 1, got {jobs}")
    if jobs == 1 or len(seeds) < 2:
        outcomes: Iterable[SeedOutcome] = (run_seed(target, replace(options, seed=s)) for s in seeds)
    else:
        from .parallel import run_seeds

        outcomes = run_seeds(target, options, seeds, jobs)
    result = Sweep()
    for outcome in outcomes:
        result.outcomes.append(outcome)
        result.coverage.update(outcome.coverage)
        result.coverage.update({name: 0 for name in outcome.coverage})  # named, even if 0
        result.reached.update(name for name, count in outcome.coverage.items() if count)
        if on_outcome is not None:
            on_outcome(outcome)
    return result


def first_divergence(a: Sequence[str], b: Sequence[str]) -> tuple[int, str, str] | None:
    """The first line index where two traces differ (with both lines), or None."""
    for index, (left, right) in enumerate(zip(a, b, strict=False)):
        if left != right:
            return index, left, right
    if len(a) != len(b):
        index = min(len(a), len(b))
        return index, (a[index] if index < len(a) else "<end>"), (b[index] if index < len(b) else "<end>")
    return None


def check_determinism(target: str, options: SimOptions) -> tuple[SimReport, tuple[int, str, str] | None]:
    """Run the same seed twice; the first divergence, if any."""
    first = run(target, options)
    second = run(target, options)
    return first, first_divergence(first.trace.lines, second.trace.lines)


# -- trace files with a header that says how to rerun them ----------------------------
def write_trace(report: SimReport, path: str | Path) -> None:
    """Write the trace with a header (not hashed) naming target, options and plan."""
    options = report.options
    header = {
        "target": report.target, "seed": options.seed, "workers": options.workers,
        "duration": options.duration, "faults": options.faults, "shuffle": options.shuffle,
        "brokers": options.brokers, "plan": report.plan.to_dict(), "scenario": options.scenario,
    }
    if options.static_membership:
        header["static_membership"] = True
    if options.faust_compat:
        header["faust_compat"] = options.faust_compat
    body = "".join(line + "\n" for line in report.trace.lines)
    Path(path).write_text(f"# detstream-trace {json.dumps(header, sort_keys=True)}\n{body}")


def read_trace(path: str | Path) -> tuple[str, SimOptions, list[str]]:
    """Target, options and lines of a trace file written by ``write_trace``."""
    text = Path(path).read_text().splitlines()
    if not text or not text[0].startswith("# detstream-trace "):
        raise InvalidArgument(f"{path}: not a detstream trace file (no '# detstream-trace' header)")
    try:
        header = json.loads(text[0].removeprefix("# detstream-trace "))
        plan = FaultPlan.from_dict(header["plan"])
    except (ValueError, KeyError) as exc:
        raise InvalidArgument(f"{path}: the trace header is damaged: {exc}") from exc
    options = SimOptions(
        seed=header["seed"], workers=header["workers"], duration=header["duration"],
        faults=header["faults"], plan=plan, shuffle=header.get("shuffle", False),
        brokers=header.get("brokers", 3), scenario=header.get("scenario"),
        static_membership=header.get("static_membership", False),
        faust_compat=header.get("faust_compat"),
    )
    return header["target"], options, text[1:]


def replay(path: str | Path) -> tuple[SimReport, tuple[int, str, str] | None]:
    """Rerun a recorded trace; the first line where the new run differs, if any."""
    target, options, lines = read_trace(path)
    report = run(target, options)
    return report, first_divergence(lines, report.trace.lines)


# -- shrinking -------------------------------------------------------------------------
def shrink(target: str, options: SimOptions, *, budget: int = 40) -> tuple[SimOptions, SimReport]:
    """A smaller failing run: drop faults one at a time, then shorten the run.

    Greedy delta debugging over the fault plan (the seed's other random
    streams are independent of the plan, so removing a fault keeps the rest
    of the run as it was). Returns the smallest failing options found within
    ``budget`` runs, and its report.
    """
    from .faults import plan_faults

    plan = options.plan or plan_faults(
        options.seed, options.faults, options.workers, options.duration, options.brokers
    )
    best = replace(options, plan=plan)
    best_report = run(target, best)
    if best_report.ok:
        raise ValueError("the run passes: there is nothing to shrink")
    runs = 1
    index = 0
    while index < len(best.plan.faults) and runs < budget:  # type: ignore[union-attr]
        candidate = replace(best, plan=best.plan.without(index))  # type: ignore[union-attr]
        report = run(target, candidate)
        runs += 1
        if not report.ok:
            best, best_report = candidate, report
        else:
            index += 1
    while runs < budget and best.duration > 1.0:
        candidate = replace(best, duration=round(best.duration / 2, 3))
        last_fault = max((f.at for f in best.plan.faults), default=0.0)  # type: ignore[union-attr]
        if candidate.duration <= last_fault:
            break
        report = run(target, candidate)
        runs += 1
        if report.ok:
            break
        best, best_report = candidate, report
    return best, best_report
