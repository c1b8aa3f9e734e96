"""``detstream sim --json``: JSON Lines for machines, the same with any ``--jobs``, exit codes as text.

CliRunner's streams are not terminals, so these also check that no progress
line and no timing reaches the output.
"""

import json

import pytest
from click.testing import CliRunner

from detstream.cli.main import main

WORD_COUNT = "examples/word_count.py"
#: an at-least-once app that commits before processing: seed 4 of 1..4 fails at 10 s.
FAILING = "tests/apps/commit_before_processing.py"
SEED_KEYS = ["type", "workload", "target", "seed", "ok", "sha256", "violations", "coverage", "replay"]
SUMMARY_KEYS = ["type", "workload", "target", "faults", "first_seed", "last_seed", "seeds", "passed",
                "failed", "failed_seeds", "ok", "coverage", "reached", "never_reached"]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def records(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_one_seed_is_one_object_with_the_hash_of_the_text_run():
    args = ["sim", WORD_COUNT, "--seed", "2", "--duration", "3s"]
    text, as_json = invoke(*args), invoke(*args, "--json")
    assert as_json.exit_code == text.exit_code == 0
    [record] = records(as_json)
    assert list(record) == [*SEED_KEYS, "trace_lines", "trace_file", "html_file"]
    assert record["type"] == "seed" and record["seed"] == 2 and record["ok"] is True
    assert record["violations"] == [] and record["trace_file"] is None and record["html_file"] is None
    assert text.stdout.splitlines()[-1] == f"trace sha256={record['sha256']}"
    assert f"trace: {record['trace_lines']} lines" in text.stdout
    assert record["replay"] == (f"detstream sim {WORD_COUNT} --seed 2 --workers 3 --brokers 3 "
                                "--duration 3s --faults default")
    assert all(isinstance(count, int) for count in record["coverage"].values())
    assert list(record["coverage"]) == sorted(record["coverage"])


def test_a_failing_seed_is_ok_false_with_its_checks_and_exit_1(tmp_path):
    trace = tmp_path / "run.trace"
    result = invoke("sim", FAILING, "--seed", "4", "--duration", "10s", "--json", "--trace", str(trace))
    assert result.exit_code == 1
    [record] = records(result)
    assert record["ok"] is False and record["trace_file"] == str(trace) and trace.exists()
    assert record["html_file"] is None
    [violation] = record["violations"]
    assert violation["check"] == "no_update_lost" and "lost updates" in violation["message"]
    assert isinstance(violation["evidence"], list)


def test_a_sweep_is_a_line_per_seed_then_a_summary_the_same_with_jobs():
    args = ["sim", FAILING, "--seeds", "1..4", "--duration", "10s", "--json"]
    alone, shared = invoke(*args), invoke(*args, "--jobs", "2")
    assert alone.exit_code == shared.exit_code == 1
    assert shared.stdout == alone.stdout and "\r" not in alone.output  # no live line
    *seeds, summary = records(alone)
    assert [list(record) for record in seeds] == [SEED_KEYS] * 4
    assert [(r["seed"], r["ok"]) for r in seeds] == [(1, True), (2, True), (3, True), (4, False)]
    assert seeds[3]["violations"][0]["check"] == "no_update_lost"
    assert all(f"--seed {r['seed']} " in r["replay"] for r in seeds)
    assert list(summary) == SUMMARY_KEYS
    assert summary["type"] == "summary" and summary["workload"] is None
    assert (summary["first_seed"], summary["last_seed"], summary["seeds"]) == (1, 4, 4)
    assert (summary["passed"], summary["failed"], summary["failed_seeds"], summary["ok"]) == (3, 1, [4], False)
    assert summary["coverage"]["crash"] == sum(r["coverage"].get("crash", 0) for r in seeds)
    assert summary["reached"]["crash"] == sum(1 for r in seeds if r["coverage"].get("crash"))
    assert set(summary["reached"]) == set(summary["coverage"])
    assert "txn-aborted" in summary["never_reached"]  # at-least-once: it never aborts a transaction


def test_a_passing_sweep_exits_0_and_lists_nothing_never_reached_without_faults():
    result = invoke("sim", WORD_COUNT, "--seeds", "1..2", "--duration", "2s", "--faults", "none", "--json")
    assert result.exit_code == 0
    *_, summary = records(result)
    assert summary["ok"] is True and summary["failed_seeds"] == [] and summary["never_reached"] == []


def test_the_zoo_gives_each_workload_its_seeds_and_summary_then_one_verdict(monkeypatch):
    from sim import zoo

    relay = next(w for w in zoo.ZOO if w.name == "awaiting_relay")
    monkeypatch.setattr(zoo, "ZOO", (relay, zoo.Workload("relay_short", relay.path, 3.0)))
    result = invoke("sim", "--zoo", "--seeds", "1..2", "--faults", "chaos", "--json")
    assert result.exit_code == 0, result.output
    lines = records(result)
    assert [(r["type"], r.get("workload"), r.get("seed")) for r in lines] == [
        ("seed", "awaiting_relay", 1), ("seed", "awaiting_relay", 2), ("summary", "awaiting_relay", None),
        ("seed", "relay_short", 1), ("seed", "relay_short", 2), ("summary", "relay_short", None),
        ("zoo", None, None),
    ]
    assert lines[0]["target"].endswith(relay.path) and "--duration 3s" in lines[3]["replay"]
    assert lines[-1] == {"type": "zoo", "workloads": 2, "passed": 2, "failed": 0,
                         "failed_workloads": [], "ok": True}


@pytest.mark.parametrize("other", [
    ["--shrink"], ["--check-determinism"], ["--guided", "2", "--seeds", "1..2"], ["--replay", "README.md"],
])
def test_json_with_an_option_that_prints_only_text_is_a_usage_error_naming_both(other):
    result = invoke("sim", WORD_COUNT, "--json", *other)
    assert result.exit_code == 2
    assert f"--json cannot be combined with {other[0]}" in result.output
