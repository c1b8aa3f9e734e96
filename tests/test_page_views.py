"""examples/page_views.py under `detstream sim`: exact per-minute counts, crashes included."""

import pytest
from click.testing import CliRunner

from detstream.cli.main import main
from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run

TARGET = "examples/page_views.py"


@pytest.fixture(scope="module")
def report():
    return run(TARGET, SimOptions(seed=1))


def test_run_passes_every_check(report):
    assert report.ok, report.violations
    assert any("produced 480 records" in line for line in report.summary)


def test_windows_of_the_table_are_minutes_of_event_time(report):
    writes = list(report.trace.of_kind("table-write"))
    assert writes
    windows = {tuple(w.fields["key"][1]) for w in writes}
    assert len(windows) >= 2
    assert all(round(end - start, 6) == 59.9 and start % 60 == 0 for start, end in windows)


def test_a_killed_worker_recovers_its_windows_exactly():
    """w1 is killed mid-stream; its windows come back from the changelog, counts stay exact."""
    plan = FaultPlan("file", ("crash",), (Fault(50.0, "crash", "w1", 5.0),))
    result = run(TARGET, SimOptions(seed=2, duration=130.0, plan=plan))
    assert result.ok, result.violations
    assert any(e.kind == "crash" and e.actor == "w1" for e in result.trace.events)
    assert any(e.kind == "recovery-start" for e in result.trace.events if e.time > 50.0)


def test_same_seed_same_trace(report):
    again = run(TARGET, SimOptions(seed=1))
    assert again.sha256 == report.sha256


def test_planted_bug_is_caught(tmp_path):
    source = open(TARGET).read().replace("page_views[view.id] += 1", "page_views[view.id] += 2")
    buggy = tmp_path / "buggy_views.py"
    buggy.write_text(source)
    result = run(str(buggy), SimOptions(seed=1, duration=10.0))
    assert not result.ok
    assert result.violations[0].check == "counts_per_minute_equal_input"


def test_the_cli_runs_and_checks_it():
    result = CliRunner().invoke(main, ["sim", TARGET, "--seed", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "checks: all passed" in result.output
