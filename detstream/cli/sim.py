"""``detstream sim``: run a project on the simulator. Parsing and printing only.

The simulator is imported inside the command, so ``import detstream`` (and
``detstream worker``) never load it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from detstream.errors import InvalidArgument, TargetError

from . import sim_json
from .faust_flags import enable, faust_compat_options
from .progress import sweep_progress

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}
_SEEDS = re.compile(r"^\s*(\d+)\s*(?:\.\.|-)\s*(\d+)\s*$")


def parse_duration(text: object) -> float:
    """Virtual seconds from ``30``, ``30s``, ``250ms``, ``5m`` or ``1h``; ValueError otherwise.

    One grammar for ``detstream sim --duration`` and the pytest plugin's
    ``--detstream-duration``, so a value copied from one works in the other.
    """
    if isinstance(text, (int, float)):
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration: use e.g. 30, 30s, 250ms, 5m or 1h")
    return float(match.group(1)) * _UNIT[match.group(2)]


def parse_seed_range(text: object) -> range:
    """The seeds of ``1..200`` (inclusive) or ``1-200``; ValueError otherwise."""
    if isinstance(text, range):
        return text
    match = _SEEDS.match(str(text))
    if not match or int(match.group(1)) > int(match.group(2)):
        raise ValueError(f"{text!r} is not a seed range: use e.g. 1..200")
    return range(int(match.group(1)), int(match.group(2)) + 1)


class Duration(click.ParamType):
    """Virtual seconds: ``30``, ``30s``, ``250ms``, ``5m``, ``1h``."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class SeedRange(click.ParamType):
    """``1..200`` (inclusive) or ``1-200``."""

    name = "range"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> range:
        try:
            return parse_seed_range(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.argument("target", required=False)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run.")
@click.option("--workers", type=click.IntRange(1, 1000), default=3, show_default=True)
@click.option("--brokers", type=click.IntRange(1, 16), default=3, show_default=True,
              help="Brokers of the simulated cluster (partition leaders, coordinators).")
@click.option("--duration", type=Duration(), default="30s", show_default=True,
              help="Virtual time of the main phase (clients and faults), before settling.")
@click.option("--faults", type=click.Choice(["none", "default", "chaos"]), default="default",
              show_default=True, help="Fault profile the seed draws a plan from.")
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False),
              help="Run this fault plan (JSON) instead of drawing one.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the trace (with a replay header) to this file.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, writable=True),
              help="Write a self-contained HTML page of the run: a lane per worker and broker over "
                   "virtual time (faults, crashes, assignments, commits, recoveries), failed checks "
                   "linked to the steps they cite, trace lines on hover. With --seeds: the page of "
                   "the first failing seed, rerun (none if every seed passes). With --replay: the "
                   "page of the rerun.")
@click.option("--seeds", type=SeedRange(), help="Run every seed in a range, e.g. 1..200.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --seeds: run the seeds in this many processes (same results and output).")
@click.option("--driver", type=click.Choice(["sim", "aiokafka"]), default="sim", show_default=True,
              help="What the workers' Apps talk to the simulated cluster with: the sim driver, or "
                   "the production aiokafka driver on the simulated brokers' wire.")
@click.option("--static-membership", is_flag=True,
              help="Each worker joins its group as a static member (consumer_group_instance_id = "
                   "its name, w1, w2, ...): restarts rejoin in place, twins fence each other.")
@click.option("--guided", type=click.IntRange(min=1),
              help="With --seeds: then N more runs of mutated plans of the runs that reached "
                   "rare coverage (coverage-guided search, sim/guided.py).")
@click.option("--zoo", is_flag=True,
              help="With --seeds and no TARGET: sweep every workload of the sim's zoo (sim/zoo.py).")
@click.option("--check-determinism", is_flag=True, help="Run the seed twice and compare traces.")
@click.option("--replay", "replay_path", type=click.Path(exists=True, dir_okay=False),
              help="Rerun a trace file and fail at the first line that differs.")
@click.option("--shrink", is_flag=True, help="If the run fails, search for a smaller failing plan.")
@click.option("--shuffle", is_flag=True,
              help="Explore interleavings: permute ready tasks each loop step (seeded).")
@click.option("--scenario", "scenario_path", type=click.Path(exists=True, dir_okay=False),
              help="A Python file whose sim_scenario(sim) replaces the target's own.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON Lines for machines instead of text: a record per seed, then a "
                   "summary per sweep (schema: docs/sim.md).")
@faust_compat_options
def sim(target: str | None, seed: int, workers: int, brokers: int, duration: float, faults: str,
        plan_path: str | None, trace_path: str | None, html_path: str | None, seeds: range | None, jobs: int,
        driver: str, static_membership: bool, guided: int | None, zoo: bool, check_determinism: bool, replay_path: str | None, shrink: bool, shuffle: bool,
        scenario_path: str | None, as_json: bool, faust_compat: str | None) -> None:
    """Run TARGET (file, module or module:attr) on a simulated cluster."""
    from sim import explore
    from sim.faults import FaultPlan
    from sim.runner import SimOptions

    if as_json:
        _json_combines_with(replay=replay_path, guided=guided, check_determinism=check_determinism,
                            shrink=shrink)
    if html_path:
        _html_combines_with(zoo=zoo, guided=guided is not None, check_determinism=check_determinism,
                            json_sweep=as_json and seeds is not None)
    try:
        if replay_path:
            _replay(replay_path, html_path)
            return
        if zoo:
            if target or seeds is None:
                raise click.UsageError("--zoo sweeps the zoo's workloads: give --seeds A..B and no TARGET")
            options = SimOptions(seed=seed, workers=workers, duration=duration, faults=faults,
                                 shuffle=shuffle, brokers=brokers, driver=driver,
                                 static_membership=static_membership)
            _zoo(options, seeds, jobs, as_json)
            return
        if not target:
            raise click.UsageError("missing TARGET (a file, module or module:attr)")
        if jobs != 1 and seeds is None:
            raise click.UsageError("--jobs runs the seeds of a sweep: use it with --seeds A..B")
        if guided is not None and seeds is None:
            raise click.UsageError("--guided searches on from a sweep: use it with --seeds A..B")
        plan = FaultPlan.load(plan_path) if plan_path else None
        enable(faust_compat)  # refused here, before any run, when a real faust is installed
        options = SimOptions(seed=seed, workers=workers, duration=duration, faults=faults,
                             plan=plan, shuffle=shuffle, brokers=brokers, scenario=scenario_path,
                             driver=driver, static_membership=static_membership,
                             faust_compat=faust_compat)
        if seeds is not None and guided is not None:
            _guided(target, options, seeds, guided, jobs)
        elif seeds is not None:
            _sweep(target, options, seeds, jobs, as_json, html_path)
        elif check_determinism:
            _determinism(target, options)
        elif as_json:
            _single_json(target, options, trace_path, html_path, explore)
        else:
            _single(target, options, trace_path, html_path, shrink, explore)
    except (TargetError, InvalidArgument) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


#: the options --json cannot stand with: what they print has no JSON form (yet).
_NOT_WITH_JSON = {"replay": "--replay", "guided": "--guided",
                  "check_determinism": "--check-determinism", "shrink": "--shrink"}


def _json_combines_with(**given: object) -> None:
    """A usage error naming ``--json`` and the first given option it cannot be combined with."""
    for name, value in given.items():
        if value not in (None, False):
            raise click.UsageError(f"--json cannot be combined with {_NOT_WITH_JSON[name]}: "
                                   "it prints text only; drop one of the two")


#: what --html cannot stand with: each shows many runs, or (JSON sweeps) has nowhere to say which.
_NOT_WITH_HTML = {
    "zoo": "--html shows one run: the zoo is many workloads; give one TARGET with --seeds",
    "guided": "--html shows one run: not with --guided (replay a failing run with --plan and --html)",
    "check_determinism": "--html shows one run: not with --check-determinism (run the seed with --html)",
    "json_sweep": "--html with --seeds writes the first failing seed's page and says which in "
                  "the text output: not with --json",
}


def _html_combines_with(**given: bool) -> None:
    """A usage error for the first mode given that has no single run to draw."""
    for name, value in given.items():
        if value:
            raise click.UsageError(_NOT_WITH_HTML[name])


def _write_page(report: Any, path: str, replay: str, what: str = "page") -> None:
    """The run's HTML page to ``path`` (``sim.run_page``), and a line saying so."""
    from sim import run_page

    size = run_page.write(report, path, replay)
    click.echo(f"  {what} written to {path} ({size // 1024} KiB)")


def command_line(target: str, options: Any) -> str:
    """The ``detstream sim`` command that reruns ``target`` with ``options`` (a ``SimOptions``).

    A fixed plan is named ``--plan PLAN.json``: the caller prints the plan to save there.
    """
    text = (f"detstream sim {target} --seed {options.seed} --workers {options.workers} "
            f"--brokers {options.brokers} --duration {options.duration:g}s --faults {options.faults}")
    text += " --shuffle" if options.shuffle else ""
    text += f" --driver {options.driver}" if options.driver != "sim" else ""
    text += " --static-membership" if getattr(options, "static_membership", False) else ""
    text += f" --scenario {options.scenario}" if options.scenario else ""
    if getattr(options, "faust_compat", None):
        text += " --faust-compat-force" if options.faust_compat == "force" else " --faust-compat"
    return text + (" --plan PLAN.json" if options.plan is not None else "")


def _single(target: str, options: Any, trace_path: str | None, html_path: str | None, shrink: bool,
            explore: Any) -> None:
    from sim.runner import run

    click.echo(f"detstream sim {target} seed={options.seed} workers={options.workers} "
               f"brokers={options.brokers} duration={options.duration:g}s")
    report = run(target, options)
    for line in report.setup + report.summary:
        click.echo(f"  {line}")
    if trace_path:
        explore.write_trace(report, trace_path)
        click.echo(f"  trace written to {trace_path}")
    if html_path:
        _write_page(report, html_path, command_line(target, options))
    if report.ok:
        click.echo("  checks: all passed")
    else:
        _print_violations(report)
        click.echo(f"  replay: {command_line(target, options)} --trace run.trace")
        if shrink:
            smaller, _ = explore.shrink(target, options)
            click.echo(f"  shrunk to {len(smaller.plan.faults)} fault(s), duration {smaller.duration:g}s:")
            click.echo("  " + smaller.plan.to_json().replace("\n", "\n  "))
            click.echo(f"  save it as plan.json and run: {command_line(target, smaller)}")
    click.echo(f"trace sha256={report.sha256}")
    if not report.ok:
        sys.exit(1)


def _single_json(target: str, options: Any, trace_path: str | None, html_path: str | None,
                 explore: Any) -> None:
    """One run as one JSON object: the seed record, its trace's length and file, its page."""
    from sim import run_page
    from sim.runner import run

    report = run(target, options)
    if trace_path:
        explore.write_trace(report, trace_path)
    if html_path:
        run_page.write(report, html_path, command_line(target, options))
    outcome = explore.SeedOutcome(options.seed, report.sha256, report.coverage, report.violations)
    record = sim_json.seed_record(outcome, target, command_line(target, options))
    record.update(trace_lines=len(report.trace.lines), trace_file=trace_path, html_file=html_path)
    click.echo(sim_json.dumps(record))
    if not report.ok:
        sys.exit(1)


def _print_violations(report: Any) -> None:
    for violation in report.violations:
        click.echo(f"  FAILED {violation.check}: {violation.message}")
        for line in violation.evidence:
            click.echo(f"    {line}")


def _zoo(options: Any, seeds: range, jobs: int, as_json: bool) -> None:
    """Every zoo workload over ``seeds``, each at its own duration and worker count; one verdict."""
    from sim.zoo import ROOT, ZOO

    failed = []
    for number, workload in enumerate(ZOO, 1):
        target, label = str(ROOT / workload.path), f"{workload.name} (zoo {number}/{len(ZOO)})"
        sweep_one = _sweep_json if as_json else _sweep_text
        if sweep_one(target, workload.options(options), seeds, jobs, label, workload.name):
            failed.append(workload.name)
    if as_json:
        click.echo(sim_json.dumps(sim_json.zoo_record(len(ZOO), failed)))
    else:
        click.echo(f"zoo: {len(ZOO) - len(failed)} of {len(ZOO)} workloads passed"
                   + (f"; failed: {', '.join(failed)}" if failed else ""))
    if failed:
        sys.exit(1)


def _sweep(target: str, options: Any, seeds: range, jobs: int, as_json: bool, html_path: str | None) -> None:
    sweep_one = _sweep_json if as_json else _sweep_text
    failed = sweep_one(target, options, seeds, jobs, Path(target).name or target, None)
    if html_path:
        _first_failure_page(target, options, failed, html_path)
    if failed:
        sys.exit(1)


def _first_failure_page(target: str, options: Any, failed: list[int], path: str) -> None:
    """The page of the sweep's first failing seed, run again here (a sweep keeps no traces)."""
    if not failed:
        click.echo(f"  no seed failed: no page written to {path}")
        return
    from sim.runner import run

    rerun = replace(options, seed=failed[0])
    _write_page(run(target, rerun), path, command_line(target, rerun),
                f"page of seed {failed[0]}, the first that failed,")


def _swept(target: str, options: Any, seeds: range, jobs: int, label: str,
           emit: Callable[[Any], None] | None = None) -> Any:
    """The sweep, with a live progress line on a terminal; ``emit`` gets each outcome as it comes.

    The progress line is cleared before ``emit`` writes, in case stdout and
    stderr are the same terminal.
    """
    from sim import explore

    with sweep_progress(label, len(seeds)) as progress:
        def seen(outcome: Any) -> None:
            if emit is not None:
                progress.clear()
                emit(outcome)
            progress.seed_done(outcome.ok)

        return explore.sweep(target, options, seeds, jobs=jobs, on_outcome=seen)


def _sweep_json(target: str, options: Any, seeds: range, jobs: int, label: str,
                workload: str | None) -> list[int]:
    """Sweep ``target``: a JSON line per seed as it arrives, then the summary; the failed seeds."""
    def emit(outcome: Any) -> None:
        replay = command_line(target, replace(options, seed=outcome.seed))
        click.echo(sim_json.dumps(sim_json.seed_record(outcome, target, replay, workload)))

    result = _swept(target, options, seeds, jobs, label, emit)
    click.echo(sim_json.dumps(sim_json.summary_record(result, target, seeds, options.faults, workload)))
    return [seed for seed, _ in result.failures]


def _sweep_text(target: str, options: Any, seeds: range, jobs: int, label: str,
                workload: str | None) -> list[int]:
    """Sweep and print ``target``; the failed seeds, in order.

    ``workload`` is unused: the text names a zoo workload by its path, as it
    always has, so that the output stays as it was.
    """
    click.echo(f"detstream sim {target} seeds={seeds.start}..{seeds.stop - 1} faults={options.faults}")
    result = _swept(target, options, seeds, jobs, label)
    for seed, outcome in result.failures:
        first = outcome.violations[0]
        click.echo(f"  seed {seed}: FAILED {first.check}: {first.message}")
    shown = " ".join(f"{k}={v}" for k, v in sorted(result.coverage.items()))
    click.echo(f"  coverage: {shown}")
    reach = " ".join(f"{k}={result.reached[k]}" for k in sorted(result.coverage))
    click.echo(f"  seeds reaching each (of {result.runs}): {reach}")
    if options.faults != "none" and result.never_reached():
        click.echo(f"  never reached: {', '.join(result.never_reached())}")
    click.echo(f"{result.runs - len(result.failures)} passed, {len(result.failures)} failed")
    return [seed for seed, _ in result.failures]


def _guided(target: str, options: Any, seeds: range, runs: int, jobs: int) -> None:
    """A sweep, then ``runs`` runs of mutated plans; each failure with its plan, to replay."""
    from sim.guided import guided_search

    click.echo(f"detstream sim {target} seeds={seeds.start}..{seeds.stop - 1} faults={options.faults} "
               f"guided={runs}")
    search = guided_search(target, options, seeds, runs, jobs=jobs)
    for number, probe in enumerate(search.probes, 1):
        if probe.outcome.ok:
            continue
        first = probe.outcome.violations[0]
        how = (f"seed {probe.seed}" if probe.parent is None else
               f"run {number} (seed {probe.seed}, plan mutated from run {probe.parent + 1})")
        click.echo(f"  {how}: FAILED {first.check}: {first.message}")
        if probe.parent is not None:
            click.echo(f"    replay: {command_line(target, replace(options, seed=probe.seed, plan=probe.plan))}"
                       " with PLAN.json:")
            click.echo("    " + probe.plan.to_json().replace("\n", "\n    "))
    reach = " ".join(f"{k}={search.reached[k]}" for k in sorted(search.reached))
    click.echo(f"  runs reaching each (of {len(search.probes)}): {reach}")
    click.echo(f"  kept {len(search.corpus)} runs that reached rare coverage")
    failed = len(search.failures)
    click.echo(f"{len(search.probes) - failed} passed, {failed} failed")
    if failed:
        sys.exit(1)


def _determinism(target: str, options: Any) -> None:
    from sim.explore import check_determinism

    report, divergence = check_determinism(target, options)
    if divergence is None:
        click.echo(f"deterministic: seed {options.seed} twice gave the same {len(report.trace.lines)} lines")
        click.echo(f"trace sha256={report.sha256}")
        return
    index, first, second = divergence
    click.echo(f"NOT DETERMINISTIC: seed {options.seed} diverged at trace line {index + 1}:")
    click.echo(f"  run 1: {first}\n  run 2: {second}")
    sys.exit(1)


def _replay(path: str, html_path: str | None) -> None:
    from sim.explore import replay

    report, divergence = replay(path)
    if divergence is None:
        click.echo(f"replay of {path}: identical ({len(report.trace.lines)} lines)")
        if not report.ok:
            _print_violations(report)
        if html_path:
            _write_page(report, html_path, f"detstream sim --replay {path}")
        click.echo(f"trace sha256={report.sha256}")
        if not report.ok:
            sys.exit(1)
        return
    index, recorded, now = divergence
    click.echo(f"REPLAY DIFFERS from {path} at line {index + 2}:")  # +1 for 1-based, +1 header
    click.echo(f"  recorded: {recorded}\n  now:      {now}")
    if html_path:  # the run as today's code makes it
        _write_page(report, html_path, f"detstream sim --replay {path}")
    sys.exit(1)
