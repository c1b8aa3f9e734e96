"""scripts/mutation-score: planted bugs against the zoo, and the zoo without them."""

import os

from sim import mutation_score
from sim.mutation_score import ZOO, Workload, false_alarms, known_mutants, score

RELAY = next(w for w in ZOO if w.name == "awaiting_relay")


def test_every_registered_mutant_is_scored():
    assert {"ack-before-processing", "commit-before-flush", "flush-before-settling",
            "send-failure-ignored", "delivery-before-recovery"} <= set(known_mutants())


def test_a_caught_mutant_names_its_workload_first_seed_and_shrunk_plan():
    row = score("commit-before-flush", 5, zoo=[RELAY])
    assert row.workload == "awaiting_relay" and row.first_seed is not None and row.first_seed <= 5
    assert 1 <= row.caught <= 5 and row.shrunk_faults is not None and row.shrunk_faults <= 3
    assert row.row().startswith("| `commit-before-flush` | awaiting_relay: ")
    assert "DETSTREAM_MUTANTS" not in os.environ  # the mutant is off again


def test_a_mutant_no_workload_catches_is_reported_as_such():
    quiet = Workload("relay_short", RELAY.path, 3.0)
    row = score("changelog-decode-unchecked", 2, zoo=[quiet], properties=False)  # the relay has no table
    assert row.workload is None and "NOT CAUGHT" in row.row()


def test_the_unmutated_zoo_has_no_false_alarm_here():
    swept = false_alarms(3, zoo=[RELAY])
    assert list(swept) == ["awaiting_relay"] and not swept["awaiting_relay"].failures
    assert swept["awaiting_relay"].seeds_per_cpu_minute > 0


def test_the_command_prints_the_table_and_the_score(capsys, monkeypatch):
    monkeypatch.setattr(mutation_score, "ZOO", (RELAY,))
    code = mutation_score.main(["--mutants", "commit-before-flush", "--seeds", "3", "--jobs", "1"])
    out = capsys.readouterr().out
    assert "| mutant | caught by |" in out and "mutation score: 1/1" in out
    assert code == 0


def test_the_clean_sweep_takes_a_fault_profile(capsys, monkeypatch):
    monkeypatch.setattr(mutation_score, "ZOO", (RELAY,))
    assert mutation_score.main(["--clean", "--faults", "none", "--seeds", "2", "--jobs", "1"]) == 0
    assert "awaiting_relay: OK (2 none seeds, " in capsys.readouterr().out
