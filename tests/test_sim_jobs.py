"""``detstream sim --seeds A..B --jobs N``: seeds in worker processes, same results as one process."""

import pytest
from click.testing import CliRunner

from detstream.cli.main import main
from sim import explore

explore_sweep = explore.sweep

WORD_COUNT = "examples/word_count.py"
#: an at-least-once app that commits before processing: some seeds of a sweep fail.
FAILING = "tests/apps/commit_before_processing.py"


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_jobs_2_prints_the_same_and_gives_every_seed_the_same_trace(monkeypatch):
    sweeps = []

    def recording_sweep(*args, **kwargs):
        sweeps.append(explore_sweep(*args, **kwargs))
        return sweeps[-1]

    monkeypatch.setattr(explore, "sweep", recording_sweep)
    args = ["sim", WORD_COUNT, "--seeds", "1..4", "--duration", "3s", "--faults", "chaos"]
    alone = invoke(*args)
    shared = invoke(*args, "--jobs", "2")

    assert (shared.exit_code, shared.output) == (alone.exit_code, alone.output)
    assert alone.exit_code == 0 and alone.output.splitlines()[-1] == "4 passed, 0 failed"
    first, second = (
        [(o.seed, o.sha256, o.violations, dict(o.coverage)) for o in result.outcomes]
        for result in sweeps
    )
    assert second == first and [seed for seed, *_ in first] == [1, 2, 3, 4]


def test_failing_seeds_print_the_same_lines_and_exit_1_with_jobs():
    args = ["sim", FAILING, "--seeds", "1..8", "--duration", "10s"]
    alone = invoke(*args)
    shared = invoke(*args, "--jobs", "3")
    assert alone.exit_code == shared.exit_code == 1
    assert shared.output == alone.output
    assert "FAILED" in alone.output and alone.output.splitlines()[-1].endswith("failed")


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_jobs_must_be_a_positive_integer(value):
    result = invoke("sim", WORD_COUNT, "--seeds", "1..2", "--jobs", value)
    assert result.exit_code == 2
    assert "Invalid value for '--jobs'" in result.output


def test_jobs_without_seeds_is_a_usage_error():
    result = invoke("sim", WORD_COUNT, "--jobs", "2")
    assert result.exit_code == 2 and "use it with --seeds" in result.output
