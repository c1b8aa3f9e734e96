"""The pytest plugin (detstream/pytest_plugin.py), as a user's project sees it.

Each test writes a tiny project into pytester's directory and runs an inner
pytest session on it: the ``sim`` fixture, the ``--detstream-*`` options and
the ``detstream`` hypothesis profile. Runs are a few virtual seconds long.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import settings

from detstream.cli.main import main
from detstream.pytest_plugin import SimFixture

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
#: load the plugin by module; ``no:detstream`` keeps an installed entry point from loading it twice.
PLUGIN = ("-p", "no:detstream", "-p", "detstream.pytest_plugin")

APP = '''
import detstream

app = detstream.App("adder", broker="sim://", topic_partitions=1,
                    processing_guarantee="exactly_once")
numbers = app.topic("numbers", value_type=int)
totals = app.Table("totals", default=int, key_type=str, value_type=int)


@app.agent(numbers)
async def add(stream):
    async for value in stream:
        {body}


def sim_scenario(sim):
    sim.topic("numbers", partitions=1)
    sim.producer("numbers", [0, 1, 2, 3, 4, 5], every=0.2)

    @sim.check
    def total_is_the_sum(result):
        total = result.table("totals").get("total", 0)
        assert total == sum(result.produced("numbers")), f"total {{total}}"
'''
CORRECT = 'totals["total"] += value'
#: the planted bug: one value is dropped.
DROPS_THREE = 'if value != 3:\n            totals["total"] += value'

SWEEP = """
def test_no_check_fails(sim):
    reports = sim.sweep("app.py")
    assert [report.options.seed for report in reports] == [1, 2]
"""

PROPERTY = """
from hypothesis import given
from sim.strategies import inputs


@given(values=inputs(max_size=6))
def test_total_is_the_sum(sim, values):
    def scenario(s):
        s.topic("numbers", partitions=1)
        s.producer("numbers", values, every=0.1)

        @s.check
        def total_is_the_sum(result):
            assert result.table("totals").get("total", 0) == sum(values)

    sim.run("app.py", seed=1, scenario=scenario, workers=1, faults="none")
"""


@pytest.fixture
def project(pytester):
    """pytester's directory, with ``app.py`` written by ``project(body)``."""

    def write(body: str = CORRECT) -> pytest.Pytester:
        pytester.makepyfile(app=APP.format(body=body))
        return pytester

    return write


@pytest.fixture(autouse=True)
def keep_hypothesis_profile():
    """An inner session's ``--hypothesis-profile`` loads it for the whole process: put it back."""
    name = settings.get_current_profile_name()
    yield
    settings.load_profile(name)


def run_inner(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", *args)


# -- the sim fixture ---------------------------------------------------------------------
def test_a_passing_sweep_passes(project):
    pytester = project(CORRECT)
    pytester.makepyfile(test_app=SWEEP)
    result = run_inner(pytester, "--detstream-seeds", "1..2", "--detstream-duration", "3s")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["detstream: sim seeds 1..2, faults default, duration 3s"])


def test_a_planted_bug_fails_with_the_replay_command_and_the_command_replays_it(project):
    pytester = project(DROPS_THREE)
    pytester.makepyfile(test_app=SWEEP)
    result = run_inner(pytester, "--detstream-seeds", "1..2", "--detstream-duration", "3s")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*detstream sim: 2 of 2 seeds failed (faults default)",
        "*seed 1: FAILED total_is_the_sum: total 12*",
        "*seed 2: FAILED total_is_the_sum: total 12*",
        "*detstream sim: app.py seed 1 failed 1 check",
        "*replay: detstream sim app.py --seed 1 --workers 3 --brokers 3 --duration 3s "
        "--faults default --trace run.trace",
        "*last 20 of * trace lines:",
    ])
    output = result.stdout.str()
    command = re.search(r"replay: detstream sim (.*)", output).group(1)
    sha = re.search(r"it prints trace sha256=([0-9a-f]{64})", output).group(1)
    replayed = CliRunner().invoke(main, ["sim", *shlex.split(command)], catch_exceptions=False)  # in pytester.path
    assert replayed.exit_code == 1
    assert "FAILED total_is_the_sum: total 12" in replayed.output
    assert replayed.output.strip().splitlines()[-1] == f"trace sha256={sha}"
    assert (pytester.path / "run.trace").exists()


def test_a_failed_assertion_after_a_run_shows_that_runs_replay_command(project):
    pytester = project(CORRECT)
    pytester.makepyfile(test_app="""
        def test_reads_the_report(sim):
            report = sim.run("app.py", seed=4, faults="none")
            assert len(report.violations) == 1, "planted: the run passed"
    """)
    result = run_inner(pytester, "--detstream-duration", "2s")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*planted: the run passed*",
        "*- detstream sim -*",
        "the test's last run: app.py seed 4 passed its checks",
        "  replay: detstream sim app.py --seed 4 --workers 3 --brokers 3 --duration 2s --faults none "
        "--trace run.trace",
    ])


def test_a_property_prints_the_shrunk_input_and_the_replay_command(project):
    pytester = project(DROPS_THREE)
    pytester.makepyfile(test_app=PROPERTY)
    result = run_inner(pytester, "--hypothesis-profile", "detstream", "--detstream-duration", "2s")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert re.search(r"(Falsifying example|Failing test case)", output), output
    assert "values=[3]," in output  # shrunk: the one value the app drops
    result.stdout.fnmatch_lines([
        "*FAILED total_is_the_sum: assert 0 == 3*",
        "*the test gave scenario=..., which the command cannot*",
        "*detstream sim: seed 1 failed 1 check; replay: detstream sim app.py --seed 1 --workers 1 *",
    ])


# -- options ------------------------------------------------------------------------------
OPTIONS = """
def test_options(sim):
    assert (sim.seeds, sim.faults, sim.duration) == {expected!r}
"""


@pytest.mark.parametrize("args, expected, header", [
    ((), (range(1, 21), "default", None), "detstream: sim seeds 1..20, faults default, duration 30s"),
    (("--detstream-seeds", "3..5", "--detstream-faults", "chaos", "--detstream-duration", "2500ms"),
     (range(3, 6), "chaos", 2.5), "detstream: sim seeds 3..5, faults chaos, duration 2.5s"),
    (("--detstream-seeds=7-7", "--detstream-faults=none", "--detstream-duration=1m"),
     (range(7, 8), "none", 60.0), "detstream: sim seeds 7..7, faults none, duration 60s"),
])
def test_options_reach_the_fixture(pytester, args, expected, header):
    pytester.makepyfile(test_options=OPTIONS.format(expected=expected))
    result = run_inner(pytester, *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([header])


@pytest.mark.parametrize("args, message", [
    (("--detstream-seeds", "9..1"), "argument --detstream-seeds: '9..1' is not a seed range: use e.g. 1..200"),
    (("--detstream-seeds", "many"), "argument --detstream-seeds: 'many' is not a seed range*"),
    (("--detstream-faults", "sometimes"), "argument --detstream-faults: invalid choice: 'sometimes'*"),
    (("--detstream-duration", "soon"), "argument --detstream-duration: 'soon' is not a duration*"),
    (("--detstream-duration", "0s"), "argument --detstream-duration: '0s': the duration must be more than 0*"),
])
def test_bad_option_values_are_usage_errors(pytester, args, message):
    pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = run_inner(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_the_options_are_in_help(pytester):
    result = run_inner(pytester, "--help")
    result.stdout.fnmatch_lines([
        "detstream simulator (the sim fixture):",
        "*--detstream-seeds=A..B*",
        "*--detstream-faults=*",
        "*--detstream-duration=DURATION*",
    ])


def test_keywords_in_the_test_win_over_the_command_line():
    fixture = SimFixture(range(1, 3), "chaos", 5.0)
    options = fixture.options(2, faults="none", workers=1)
    assert (options.seed, options.faults, options.duration, options.workers) == (2, "none", 5.0, 1)
    assert fixture.options(1).faults == "chaos"
    assert SimFixture(range(1, 3), "default", None).options(1).duration == 30.0  # the runner's default
    with pytest.raises(TypeError):
        fixture.options(1, wrokers=2)


# -- the hypothesis profile ----------------------------------------------------------------
def test_the_profile_is_selectable_by_name(pytester):
    pytester.makepyfile(test_profile="""
        from hypothesis import HealthCheck, Phase, settings

        def test_profile():
            current = settings()
            assert settings.get_current_profile_name() == "detstream"
            assert current.derandomize and current.deadline is None and current.database is None
            assert HealthCheck.too_slow in current.suppress_health_check
            assert current.max_examples == 30
            assert Phase.explain not in current.phases
    """)
    result = run_inner(pytester, "--hypothesis-profile", "detstream")
    result.assert_outcomes(passed=1)


# -- registration --------------------------------------------------------------------------
def test_the_entry_point_is_declared():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["entry-points"]["pytest11"] == {"detstream": "detstream.pytest_plugin"}


def test_pytest_loads_the_plugin_by_its_entry_point(pytester, monkeypatch, tmp_path_factory):
    """As after ``pip install detstream``: no ``-p``; a distribution's entry_points.txt names it."""
    site = tmp_path_factory.mktemp("site")
    dist = site / "detstream_plugin_probe-0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: detstream-plugin-probe\nVersion: 0\n")
    (dist / "entry_points.txt").write_text("[pytest11]\ndetstream = detstream.pytest_plugin\n")
    monkeypatch.setenv("PYTHONPATH", f"{site}:{ROOT}")
    pytester.makepyfile(test_fixture="def test_fixture(sim):\n    assert sim.faults == 'default'\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["detstream: sim seeds 1..20*"])


# -- the example of docs/testing.md ----------------------------------------------------------
def docs_example() -> dict[str, str]:
    """The files of "Testing your project with pytest": each python block whose first line names its path."""
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text[text.index("## Testing your project with pytest"):text.index("## Supervisor strategies")]
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", section, re.S)
    return {path: source for path, source in blocks}


@pytest.fixture
def example(pytester):
    """pytester's directory holding the docs' example project; ``example(app_source)`` writes it."""

    def write(replace: tuple[str, str] | None = None) -> pytest.Pytester:
        for path, source in docs_example().items():
            if replace is not None and path == "myproj/app.py":
                assert replace[0] in source
                source = source.replace(*replace)
            target = pytester.path / path
            target.parent.mkdir(exist_ok=True)
            target.write_text(source)
        pytester.syspathinsert()  # as `python -m pytest` from the project's directory
        return pytester

    return write


def test_the_docs_example_is_a_project_and_its_tests():
    assert sorted(docs_example()) == ["myproj/app.py", "tests/test_app.py"]


def test_the_docs_example_passes(example):
    pytester = example()
    result = run_inner(pytester, "tests", "--hypothesis-profile", "detstream", "--detstream-seeds", "1..3")
    result.assert_outcomes(passed=3)


def test_the_docs_example_finds_the_planted_off_by_one(example):
    pytester = example(replace=("if amount >= LIMIT:\n            large", "if amount > LIMIT:\n            large"))
    result = run_inner(pytester, "tests", "--hypothesis-profile", "detstream", "--detstream-seeds", "1..3")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([
        "*records=[[]('ann', 3)[]],*",  # shrunk to the edge value
    ])
    assert "replay: detstream sim myproj/app.py --seed 1 --workers 1 --brokers 3 --duration 30s" in result.stdout.str()
