"""`detstream sim` from the command line: exit codes and messages."""

import hashlib
import re
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from detstream.cli.main import main

HASH_LINE = re.compile(r"^trace sha256=[0-9a-f]{64}$")


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write(tmp_path, name, source):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def test_clean_run_exits_0_and_ends_with_the_hash(tmp_path):
    trace = tmp_path / "run.trace"
    result = invoke("sim", "examples/word_count.py", "--seed", "3", "--duration", "10s", "--trace", str(trace))
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    assert HASH_LINE.match(last)
    header, body = trace.read_text().split("\n", 1)
    assert header.startswith("# detstream-trace ")  # how to replay it; not part of the hash
    assert last.endswith(hashlib.sha256(body.encode()).hexdigest())


def test_missing_file_is_exit_2_with_its_name():
    result = invoke("sim", "nowhere/app.py")
    assert result.exit_code == 2
    assert "nowhere/app.py" in result.output and "no such file" in result.output


def test_unknown_module_is_exit_2():
    result = invoke("sim", "no_such_project_module")
    assert result.exit_code == 2
    assert "no module named 'no_such_project_module'" in result.output


def test_module_without_app_is_exit_2(tmp_path):
    target = write(tmp_path, "plain.py", "x = 1\n")
    result = invoke("sim", target)
    assert result.exit_code == 2
    assert "defines no detstream.App" in result.output


def test_module_failing_to_import_is_exit_2_with_the_reason(tmp_path):
    target = write(tmp_path, "broken.py", "import detstream\napp = detstream.App('x')\n1 / 0\n")
    result = invoke("sim", target)
    assert result.exit_code == 2
    assert "failed to import: ZeroDivisionError" in result.output


def test_attribute_target(tmp_path):
    target = write(tmp_path, "named.py", "import detstream\nmy_app = detstream.App('named')\n")
    assert invoke("sim", f"{target}:my_app", "--duration", "1s").exit_code == 0
    result = invoke("sim", f"{target}:other")
    assert result.exit_code == 2 and "has no 'other'" in result.output


def test_up_to_a_thousand_workers_and_no_more():
    result = invoke("sim", "examples/word_count.py", "--workers", "1001")
    assert result.exit_code == 2 and "1<=x<=1000" in result.output
    result = invoke("sim", "bench/apps/keyed_counter.py", "--workers", "100", "--duration", "3")
    assert result.exit_code == 0, result.output
    assert "workers=100" in result.output and "checks: all passed" in result.output


def test_bad_duration_is_a_usage_error():
    result = invoke("sim", "examples/word_count.py", "--duration", "soon")
    assert result.exit_code == 2
    assert "'soon' is not a duration" in result.output


@pytest.mark.parametrize("text, seconds", [("30", "30s"), ("30s", "30s"), ("5m", "300s"), ("250ms", "0.25s")])
def test_duration_units(tmp_path, text, seconds):
    target = write(tmp_path, "idle.py", "import detstream\napp = detstream.App('idle')\n")
    result = invoke("sim", target, "--duration", text)
    assert f"duration={seconds}" in result.output


def test_failed_check_is_exit_1_with_replay_command(tmp_path):
    target = write(
        tmp_path,
        "failing.py",
        """
        import detstream
        app = detstream.App('failing')

        def sim_scenario(sim):
            @sim.check
            def always_fails(result):
                assert False, "planted failure"
        """,
    )
    result = invoke("sim", target, "--seed", "9", "--duration", "1s")
    assert result.exit_code == 1
    assert "FAILED always_fails: planted failure" in result.output
    assert f"replay: detstream sim {target} --seed 9" in result.output
    assert HASH_LINE.match(result.output.strip().splitlines()[-1])


def test_python_dash_m_runs_the_same_as_the_script():
    out = subprocess.run(
        [sys.executable, "-m", "detstream", "sim", "examples/word_count.py", "--seed", "5", "--duration", "5s"],
        capture_output=True, text=True, check=True,
    ).stdout
    again = invoke("sim", "examples/word_count.py", "--seed", "5", "--duration", "5s").output
    assert out.strip().splitlines()[-1] == again.strip().splitlines()[-1]


SCENARIO = """
def sim_scenario(sim):
    sim.topic("sentences", partitions=2)
    sim.producer("sentences", ["one two", "two"], name="side-feed")

    @sim.check
    def two_twos(result):
        assert result.table("word_counts") == {"one": 1, "two": 3}, "expected three twos"
"""


def test_a_scenario_file_replaces_the_targets_own_and_appears_in_the_replay_line(tmp_path):
    scenario = write(tmp_path, "other_load.py", SCENARIO)
    result = invoke("sim", "examples/word_count.py", "--seed", "2", "--duration", "5s",
                    "--faults", "none", "--scenario", scenario)
    assert result.exit_code == 1, result.output  # the file's check, on the file's input
    assert "client side-feed: produced 2 records" in result.output
    assert "expected three twos" in result.output
    assert f"--scenario {scenario}" in result.output


def test_a_scenario_file_without_the_hook_is_exit_2(tmp_path):
    scenario = write(tmp_path, "empty_load.py", "X = 1\n")
    result = invoke("sim", "examples/word_count.py", "--scenario", scenario)
    assert result.exit_code == 2
    assert "defines no sim_scenario(sim) function" in result.output


def test_sim_zoo_sweeps_every_workload_and_gives_one_verdict(monkeypatch):
    from sim import zoo

    relay = next(w for w in zoo.ZOO if w.name == "awaiting_relay")
    monkeypatch.setattr(zoo, "ZOO", (relay, zoo.Workload("relay_short", relay.path, 3.0)))
    result = invoke("sim", "--zoo", "--seeds", "1..2", "--faults", "chaos")
    assert result.exit_code == 0, result.output
    assert result.output.count("2 passed, 0 failed") == 2
    assert "zoo: 2 of 2 workloads passed" in result.output


@pytest.mark.parametrize("args", [["--zoo"], ["--zoo", "--seeds", "1..2", "examples/word_count.py"]])
def test_sim_zoo_needs_seeds_and_no_target(args):
    result = CliRunner().invoke(main, ["sim", *args])
    assert result.exit_code == 2 and "--zoo sweeps the zoo's workloads" in result.output


def test_html_writes_the_page_of_the_run_and_says_so(tmp_path):
    page = tmp_path / "run.html"
    result = invoke("sim", "examples/word_count.py", "--seed", "3", "--duration", "5s", "--html", str(page))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-3].startswith(f"  page written to {page} (") and lines[-2] == "  checks: all passed"
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_html_with_seeds_writes_the_page_of_the_first_failing_seed(tmp_path):
    import sim.mutation_score
    from detstream import mutants

    sim.mutation_score.known_mutants()
    page = tmp_path / "first.html"
    with mutants.enabled("standby-skips-record"):  # fails seed 1 with no fault (pinned)
        result = invoke("sim", "examples/word_count.py", "--seeds", "1..2", "--duration", "20s",
                        "--faults", "none", "--html", str(page))
    assert result.exit_code == 1
    assert f"  page of seed 1, the first that failed, written to {page} (" in result.output
    assert "changelog-applied-in-order" in page.read_text()


def test_html_with_seeds_that_all_pass_writes_no_page(tmp_path):
    page = tmp_path / "none.html"
    result = invoke("sim", "examples/word_count.py", "--seeds", "1..2", "--duration", "3s",
                    "--faults", "none", "--html", str(page))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"  no seed failed: no page written to {page}"
    assert not page.exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--zoo", "--seeds", "1..2"], "the zoo is many workloads"),
    (["examples/word_count.py", "--seeds", "1..2", "--guided", "3"], "not with --guided"),
    (["examples/word_count.py", "--check-determinism"], "not with --check-determinism"),
    (["examples/word_count.py", "--seeds", "1..2", "--json"], "not with --json"),
])
def test_html_of_many_runs_is_a_usage_error(tmp_path, args, message):
    result = CliRunner().invoke(main, ["sim", *args, "--html", str(tmp_path / "x.html")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "x.html").exists()
