"""Which drawn faults changed their run: ``python -m sim.fault_effect TARGET --seeds 1..20``.

A fault that never changes the trace never tested anything. Coverage counts
what the runs reached; this counts what the faults did. For each seed the
run with its plan is compared with one run per fault, of the plan less that
fault. A fault is

* *skipped* when the run did not apply it: its target was down or gone, or
  its trigger (the worker's next commit or assignment) never came;
* *inert* when the run applied it and the run without it has the same
  trace, apart from the lines of the fault plan itself (``fault``,
  ``fault-skipped``): nothing it did reached a step of the run;
* *effective* otherwise.

A plan of N faults costs N + 1 runs per seed, so this is a measurement to
run on demand (docs/sim.md, "What the faults do"), not a check.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from detstream.cli.sim import parse_seed_range

from .faults import PROFILES, Fault, plan_faults
from .runner import SimOptions, SimReport, run

__all__ = ["FaultEffect", "fault_effects", "main", "tally"]

VERDICTS = ("skipped", "inert", "effective")
#: the trace's actor of the fault plan's own lines.
PLAN_ACTOR = "faults"


@dataclass(frozen=True)
class FaultEffect:
    """What one fault of one seed's plan did."""

    seed: int
    fault: Fault
    verdict: str


def trace_without_plan(report: SimReport) -> str:
    """A digest of the run's trace without the fault plan's own lines."""
    digest = hashlib.sha256()
    for line, event in zip(report.trace.lines, report.trace.events, strict=True):
        if event.actor != PLAN_ACTOR:
            digest.update(line.encode())
            digest.update(b"\n")
    return digest.hexdigest()


def fault_effects(target: str, options: SimOptions) -> list[FaultEffect]:
    """The verdict on each fault of the plan ``options`` gives (its ``plan``, else the seed's)."""
    plan = options.plan or plan_faults(
        options.seed, options.faults, options.workers, options.duration, options.brokers)
    whole = run(target, replace(options, plan=plan))
    baseline = trace_without_plan(whole)
    effects = []
    for index, fault in enumerate(plan.faults):
        if fault not in whole.applied:
            verdict = "skipped"
        else:
            without = run(target, replace(options, plan=plan.without(index)))
            verdict = "inert" if trace_without_plan(without) == baseline else "effective"
        effects.append(FaultEffect(options.seed, fault, verdict))
    return effects


def tally(effects: Iterable[FaultEffect]) -> dict[str, Counter[str]]:
    """Per fault kind, how many faults got each verdict."""
    table: dict[str, Counter[str]] = {}
    for effect in effects:
        table.setdefault(effect.fault.kind, Counter())[effect.verdict] += 1
    return dict(sorted(table.items()))


def render(table: dict[str, Counter[str]]) -> list[str]:
    """The tally as aligned lines, a total last."""
    lines = [f"  {'kind':<14}{'drawn':>7}" + "".join(f"{v:>11}" for v in VERDICTS)]
    total: Counter[str] = Counter()
    for kind, counts in table.items():
        total.update(counts)
        lines.append(_row(kind, counts))
    lines.append(_row("all", total))
    drawn = sum(total.values())
    if drawn:
        idle = total["skipped"] + total["inert"]
        lines.append(f"  {idle} of {drawn} drawn faults ({idle / drawn:.0%}) changed nothing")
    return lines


def _row(name: str, counts: Counter[str]) -> str:
    return f"  {name:<14}{sum(counts.values()):>7}" + "".join(f"{counts[v]:>11}" for v in VERDICTS)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sim.fault_effect", description=__doc__.split("\n\n")[0])
    parser.add_argument("target", help="what `detstream sim` runs: a file, module or module:attr")
    parser.add_argument("--seeds", type=parse_seed_range, default=range(1, 11), help="e.g. 1..20")
    parser.add_argument("--faults", choices=tuple(p for p in PROFILES if p != "none"), default="chaos")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--list", action="store_true", help="also print every skipped and inert fault")
    args = parser.parse_args(argv)
    effects: list[FaultEffect] = []
    for seed in args.seeds:
        options = SimOptions(seed=seed, faults=args.faults, workers=args.workers, duration=args.duration)
        effects.extend(fault_effects(args.target, options))
    print(f"fault effect: {args.target} seeds={args.seeds.start}..{args.seeds.stop - 1} "
          f"faults={args.faults}")
    for line in render(tally(effects)):
        print(line)
    if args.list:
        for effect in effects:
            if effect.verdict != "effective":
                print(f"  seed {effect.seed}: {effect.verdict}: {effect.fault.describe()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
