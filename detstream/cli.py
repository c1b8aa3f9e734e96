"""The ``detstream`` command line. Parsing and printing only; work happens elsewhere."""

from __future__ import annotations

import re
import sys

import click

from .errors import TargetError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


class Duration(click.ParamType):
    """Virtual seconds: ``30``, ``30s``, ``250ms``, ``5m``, ``1h``."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        match = _DURATION.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a duration: use e.g. 30, 30s, 250ms, 5m or 1h", param, ctx)
        return float(match.group(1)) * _UNIT[match.group(2)]


@click.group()
@click.version_option(package_name="detstream")
def main() -> None:
    """detstream: the Faust App API on a deterministic simulator and on Kafka."""


@main.command()
@click.argument("target")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the run.")
@click.option("--workers", type=click.IntRange(1, 64), default=3, show_default=True)
@click.option("--duration", type=Duration(), default="30s", show_default=True,
              help="Virtual time the clients and workers run before the run settles.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False, writable=True),
              help="Write the trace to this file.")
def sim(target: str, seed: int, workers: int, duration: float, trace_path: str | None) -> None:
    """Run TARGET (file, module or module:attr) on a simulated cluster."""
    from sim.runner import SimOptions, run

    options = SimOptions(seed=seed, workers=workers, duration=duration)
    click.echo(f"detstream sim {target} seed={seed} workers={workers} duration={duration:g}s")
    try:
        report = run(target, options)
    except TargetError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for line in report.summary:
        click.echo(f"  {line}")
    if trace_path:
        report.trace.write(trace_path)
        click.echo(f"  trace written to {trace_path}")
    if report.ok:
        click.echo("  checks: all passed")
    else:
        for violation in report.violations:
            click.echo(f"  FAILED {violation.check}: {violation.message}")
            for line in violation.evidence:
                click.echo(f"    {line}")
        click.echo(
            f"  replay: detstream sim {target} --seed {seed} --workers {workers} "
            f"--duration {duration:g}s --trace run.trace"
        )
    click.echo(f"trace sha256={report.sha256}")
    if not report.ok:
        sys.exit(1)
