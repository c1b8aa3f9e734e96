"""sim.fault_effect: which faults of a plan were skipped, inert or effective."""

from __future__ import annotations

from sim.fault_effect import fault_effects, main, render, tally
from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions

WORD_COUNT = "examples/word_count.py"


def test_each_fault_is_judged_by_the_run_without_it():
    plan = FaultPlan("file", ("crash", "delay", "restart"), (
        Fault(4.0, "crash", "w1", downtime=2.0),  # loses work: the run goes otherwise
        Fault(6.0, "delay", "w2", downtime=1.0, latency=0.0),  # adds nothing to any request
        Fault(8.0, "restart", "w9"),  # no such worker: never applied
    ))
    effects = fault_effects(WORD_COUNT, SimOptions(seed=1, duration=12.0, plan=plan))
    assert [(e.fault.kind, e.verdict) for e in effects] == [
        ("crash", "effective"), ("delay", "inert"), ("restart", "skipped")]
    table = tally(effects)
    assert table["crash"]["effective"] == 1 and table["delay"]["inert"] == 1
    assert render(table)[-1] == "  2 of 3 drawn faults (67%) changed nothing"


def test_the_command_prints_a_row_per_kind_and_lists_what_changed_nothing(capsys):
    assert main([WORD_COUNT, "--seeds", "2..2", "--faults", "default", "--duration", "10", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"fault effect: {WORD_COUNT} seeds=2..2 faults=default"
    assert out[1].split() == ["kind", "drawn", "skipped", "inert", "effective"]
    assert any(line.split()[0] == "all" for line in out)
    assert any("drawn faults" in line for line in out)
