"""The detstream pytest plugin: a ``sim`` fixture, ``--detstream-*`` options, hypothesis profiles.

pytest loads it through the ``pytest11`` entry point ``detstream`` (or with
``-p detstream.pytest_plugin``); ``import detstream`` never does. The
simulator itself is imported only when a test runs it, so a project whose
tests never use the ``sim`` fixture does not load it.

A test asks for the fixture and runs its project::

    def test_no_check_fails(sim):
        sim.sweep("myproj/app.py")            # every --detstream-seeds seed

    def test_one_seed(sim):
        report = sim.run("myproj/app.py", seed=7, duration=10.0)
        assert report.summary

A failed check fails the test with the violations, the seed, the
``detstream sim`` command that replays the run and the end of its trace.
See docs/testing.md, "Testing your project with pytest".

PYTEST_DONT_REWRITE: it has no asserts, and a test may import it before pytest loads it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.control import currently_in_test_context, note

from detstream.cli.sim import command_line, parse_duration, parse_seed_range

if TYPE_CHECKING:
    from sim.runner import SimOptions, SimReport

__all__ = ["SimFixture", "PROFILE", "EXPLORE_PROFILE", "failure_text"]

#: the hypothesis profile for agent tests: ``--hypothesis-profile detstream``.
PROFILE = "detstream"
#: the same, searching more and with fresh randomness, for hunting bugs.
EXPLORE_PROFILE = "detstream-explore"
FAULT_PROFILES = ("none", "default", "chaos")
DEFAULT_SEEDS = "1..20"
#: trace lines a failure shows; the replay command gives the whole trace.
TRACE_TAIL = 20

# Registered when pytest loads the plugin, before any conftest or
# ``--hypothesis-profile`` can ask for them. A simulated run is CPU-bound and
# takes tenths of a second to seconds, so no deadline and no too_slow health
# check; derandomize makes a red build red on every machine and every rerun
# (so the example database adds nothing). No explain phase: its extra runs
# name lines of the simulator, not of the test.
settings.register_profile(
    PROFILE,
    max_examples=30,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    EXPLORE_PROFILE,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class SimFixture:
    """What the ``sim`` fixture is: runs of a target on the simulator, failing the test on a failed check.

    ``seeds``, ``faults`` and ``duration`` come from the command line
    (``--detstream-seeds``, ``--detstream-faults``, ``--detstream-duration``)
    and are defaults: a keyword given in the test wins, since the test knows
    what its scenario needs.
    """

    def __init__(self, seeds: range, faults: str, duration: float | None) -> None:
        self.seeds = seeds
        self.faults = faults
        #: None: each target's run uses ``SimOptions``' own duration (30 s).
        self.duration = duration
        #: the test's last run, for the failure report (reset before each test).
        self.last: tuple[str, SimReport, bool] | None = None

    def __repr__(self) -> str:  # hypothesis prints it in a failing example's arguments
        return (f"SimFixture(seeds={_range_text(self.seeds)}, faults={self.faults!r}, "
                f"duration={self.duration!r})")

    def options(self, seed: int, **overrides: Any) -> SimOptions:
        """The ``SimOptions`` of a run of ``seed``: the command line's defaults, then ``overrides``."""
        from sim.runner import SimOptions

        values: dict[str, Any] = {"faults": self.faults}
        if self.duration is not None:
            values["duration"] = self.duration
        values.update(overrides)
        return SimOptions(seed=seed, **values)

    def run(
        self,
        target: str,
        seed: int | None = None,
        *,
        scenario: Callable[[Any], None] | None = None,
        check: bool = True,
        **options: Any,
    ) -> SimReport:
        """Run ``target`` once (``seed`` defaults to the first configured seed) and return its report.

        ``options`` are ``SimOptions`` fields (``workers``, ``duration``,
        ``faults``, ``plan``, ``shuffle``, ...); ``scenario`` replaces the
        target's ``sim_scenario``. With ``check`` (the default) a failed check
        fails the test with the replay command; without, the test reads
        ``report.ok`` and ``report.violations`` itself.
        """
        __tracebackhide__ = True  # a failure points at the test's line, not this one
        from sim.runner import run

        chosen = self.seeds[0] if seed is None else seed
        report = run(target, self.options(chosen, **options), scenario=scenario)
        self._record(target, report, scenario is not None)
        if check and not report.ok:
            self.last = None  # the failure shows the run in full
            pytest.fail(failure_text(target, report, custom_scenario=scenario is not None))
        return report

    def sweep(
        self,
        target: str,
        *,
        seeds: Iterable[int] | None = None,
        scenario: Callable[[Any], None] | None = None,
        check: bool = True,
        **options: Any,
    ) -> list[SimReport]:
        """Run ``target`` for every seed (``--detstream-seeds`` unless given) and return the reports.

        Every seed runs even after one fails, so the failure names them all;
        the first failing seed is shown in full, with its replay command.
        """
        __tracebackhide__ = True
        reports = [
            self.run(target, seed, scenario=scenario, check=False, **options)
            for seed in (self.seeds if seeds is None else seeds)
        ]
        failed = [report for report in reports if not report.ok]
        if check and failed:
            self.last = None
            pytest.fail(_sweep_text(target, reports, failed, scenario is not None))
        return reports

    def replay_command(self, target: str, report: SimReport) -> str:
        """The ``detstream sim`` command line that reruns ``report``'s run, as the CLI prints it."""
        return f"{command_line(target, report.options)} --trace run.trace"

    def _record(self, target: str, report: SimReport, custom_scenario: bool) -> None:
        """Remember the run for the failure report, and as a hypothesis note inside ``@given``."""
        self.last = (target, report, custom_scenario)
        if currently_in_test_context():
            note(f"detstream sim: seed {report.options.seed} {_verdict(report)}; "
                 f"replay: {self.replay_command(target, report)}")


def failure_text(target: str, report: SimReport, *, custom_scenario: bool = False) -> str:
    """Why the run of ``report`` failed, and how to rerun it: what the test failure shows."""
    lines = [f"detstream sim: {target} seed {report.options.seed} {_verdict(report)}"]
    for violation in report.violations:
        lines.append(f"  FAILED {violation.check}: {violation.message}")
        lines.extend(f"    {line}" for line in violation.evidence)
    lines.extend(f"  {line}" for line in report.setup)
    lines.extend(_replay_lines(target, report, custom_scenario))
    tail = report.trace.lines[-TRACE_TAIL:]
    lines.append(f"  last {len(tail)} of {len(report.trace.lines)} trace lines:")
    lines.extend(f"    {line}" for line in tail)
    return "\n".join(lines)


def _verdict(report: SimReport) -> str:
    count = len(report.violations)
    return "passed its checks" if report.ok else f"failed {count} check{'s' * (count != 1)}"


def _range_text(seeds: range) -> str:
    return f"{seeds.start}..{seeds.stop - 1}"


def _replay_lines(target: str, report: SimReport, custom_scenario: bool) -> list[str]:
    """The replay command, and what it cannot carry: a fixed plan's file, the test's scenario."""
    lines = [f"  replay: {command_line(target, report.options)} --trace run.trace"]
    if report.options.plan is not None:
        lines.append("  with PLAN.json:")
        lines.append("    " + report.options.plan.to_json().replace("\n", "\n    "))
    if custom_scenario:
        lines.append("  (the test gave scenario=..., which the command cannot: it runs the target's "
                     "own sim_scenario; rerun the test for this exact input)")
    else:
        lines.append(f"  (it prints trace sha256={report.sha256}, as this run had)")
    return lines


def _sweep_text(target: str, reports: list[SimReport], failed: list[SimReport], custom_scenario: bool) -> str:
    """A sweep's failure: the count, each failed seed's first violation, the first one in full."""
    lines = [f"detstream sim: {len(failed)} of {len(reports)} seeds failed "
             f"(faults {reports[0].options.faults})"]
    for report in failed:
        first = report.violations[0]
        lines.append(f"  seed {report.options.seed}: FAILED {first.check}: {first.message}")
    lines.append("")
    lines.append(failure_text(target, failed[0], custom_scenario=custom_scenario))
    return "\n".join(lines)


# -- pytest hooks ---------------------------------------------------------------------------
_FIXTURE = pytest.StashKey[SimFixture]()


def _seeds_option(text: str) -> range:
    try:
        return parse_seed_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _duration_option(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the duration must be more than 0 seconds")
    return seconds


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("detstream", "detstream simulator (the sim fixture)")
    group.addoption(
        "--detstream-seeds", type=_seeds_option, default=DEFAULT_SEEDS, metavar="A..B",
        help=f"seeds sim.sweep() runs; sim.run() defaults to the first (default: {DEFAULT_SEEDS})",
    )
    group.addoption(
        "--detstream-faults", choices=FAULT_PROFILES, default="default",
        help="fault profile each seed draws its plan from (default: default)",
    )
    group.addoption(
        "--detstream-duration", type=_duration_option, default=None, metavar="DURATION",
        help="virtual time of each run's main phase, e.g. 5s (default: the runner's, 30s)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FIXTURE] = SimFixture(
        config.getoption("detstream_seeds"),
        config.getoption("detstream_faults"),
        config.getoption("detstream_duration"),
    )


def pytest_report_header(config: pytest.Config) -> str:
    fixture = config.stash[_FIXTURE]
    duration = "30s" if fixture.duration is None else f"{fixture.duration:g}s"
    return f"detstream: sim seeds {_range_text(fixture.seeds)}, faults {fixture.faults}, duration {duration}"


@pytest.fixture(scope="session")
def sim(request: pytest.FixtureRequest) -> SimFixture:
    """Run a detstream project on the simulator: ``sim.run(target, seed=...)``, ``sim.sweep(target)``.

    Session-scoped (it holds only the options), so ``@given`` tests may use it.
    """
    return request.config.stash[_FIXTURE]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.config.stash[_FIXTURE].last = None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """A failed test that ran the simulator gets a section with its last run's replay command.

    The failure may be the test's own assertion on a run that passed its
    checks (a table read after the run, say): the command reruns it still.
    """
    outcome = yield
    report = outcome.get_result()
    last = item.config.stash[_FIXTURE].last
    if report.when != "call" or not report.failed or last is None:
        return
    target, run, custom_scenario = last
    lines = [f"the test's last run: {target} seed {run.options.seed} {_verdict(run)}"]
    lines.extend(f"  FAILED {violation.check}: {violation.message}" for violation in run.violations)
    lines.extend(_replay_lines(target, run, custom_scenario))
    report.sections.append(("detstream sim", "\n".join(lines)))
