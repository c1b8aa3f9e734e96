"""The live progress line of ``detstream sim --seeds`` as the command wires it.

The command's progress goes to a fake terminal here (CliRunner's stderr is
not one); what stdout prints must not change.
"""

import io
import re
from functools import partial

from click.testing import CliRunner

from detstream.cli import progress as progress_module
from detstream.cli import sim as sim_command
from detstream.cli.main import main
from sim import explore
from sim.runner import SimOptions

FAILING = "tests/apps/commit_before_processing.py"
ARGS = ["sim", FAILING, "--seeds", "3..4", "--duration", "10s"]  # seed 4 fails
CLEAR = re.compile(r"\r +\r")


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def on_terminal(monkeypatch):
    terminal = FakeTerminal()
    live = partial(progress_module.sweep_progress, stream=terminal, columns=lambda: 120)
    monkeypatch.setattr(sim_command, "sweep_progress", live)
    return terminal


def test_a_sweep_on_a_terminal_shows_each_seed_and_clears_the_line_stdout_unchanged(monkeypatch):
    plain = invoke(*ARGS)
    terminal = on_terminal(monkeypatch)
    live = invoke(*ARGS)
    assert (live.exit_code, live.stdout) == (plain.exit_code, plain.stdout) == (1, plain.stdout)
    shown = terminal.getvalue()
    assert shown.startswith("\rcommit_before_processing.py  seeds 0/2  passed 0  failed 0")
    assert "seeds 1/2  passed 1  failed 0" in shown and "seeds 2/2  passed 1  failed 1" in shown
    assert re.search(r"seeds/s|s/seed", shown) and "ETA " in shown
    assert CLEAR.search(shown) and CLEAR.search(shown).end() == len(shown)  # cleared at the end
    assert "\r" not in plain.output  # not a terminal: no live line at all


def test_with_json_the_line_is_cleared_before_each_record(monkeypatch):
    terminal = on_terminal(monkeypatch)
    result = invoke(*ARGS, "--json")
    assert result.exit_code == 1 and len(result.stdout.splitlines()) == 3
    assert len(CLEAR.findall(terminal.getvalue())) == 3  # before seed 3's and 4's records, and at the end


def test_the_zoo_labels_each_workload(monkeypatch):
    from sim import zoo

    relay = next(w for w in zoo.ZOO if w.name == "awaiting_relay")
    monkeypatch.setattr(zoo, "ZOO", (zoo.Workload("relay_short", relay.path, 3.0),))
    terminal = on_terminal(monkeypatch)
    assert invoke("sim", "--zoo", "--seeds", "1..1").exit_code == 0
    assert "\rrelay_short (zoo 1/1)  seeds 1/1  passed 1  failed 0" in terminal.getvalue()


def test_sweep_hands_each_outcome_over_in_seed_order():
    seen = []
    result = explore.sweep(FAILING, SimOptions(seed=0, duration=10.0), range(3, 5), on_outcome=seen.append)
    assert seen == result.outcomes and [o.seed for o in seen] == [3, 4]
