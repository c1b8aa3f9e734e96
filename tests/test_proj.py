"""examples/proj: the guide's package layout, autodiscovered, under `detstream sim`,
and its `python -m proj` entry point."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from detstream.cli.main import main
from detstream.loader import load_isolated
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run
from sim.testing import simulate

ROOT = Path(__file__).resolve().parents[1]
TARGET = "examples/proj"

NAMES = {"u1": "Ann", "u2": "Bob", "u3": "Cy", "u4": "Dee", "u5": "Eve", "u6": "Finn",
         "u7": "Gus", "u8": "Hal"}
COUNTS = {"u1": 7, "u2": 7, "u3": 8, "u4": 7, "u5": 8, "u6": 8, "u7": 7, "u8": 8}
SPENT = {"u1": 198, "u2": 211, "u3": 240, "u4": 189, "u5": 232, "u6": 264, "u7": 180, "u8": 256}


def run_capturing(options, extra=None):
    """Run proj with its own scenario plus a check that keeps the final tables."""
    module, _ = load_isolated(TARGET)
    tables = {}

    def scenario(sim):
        module.sim_scenario(sim)
        if extra is not None:
            extra(sim)

        @sim.check
        def keep_tables(result):
            for name in ("user-names", "order-counts", "spent"):
                tables[name] = result.table(name)

    return run(TARGET, options, scenario=scenario), tables


def test_autodiscovered_agents_of_both_packages_run():
    _, app = load_isolated(TARGET)
    assert sorted(app.agents) == ["proj.orders.agents.place_order",
                                  "proj.users.agents.record_spending",
                                  "proj.users.agents.register"]
    assert sorted(app.tables.tables) == ["order-counts", "spent", "user-names"]
    assert sorted(route.path for route in app.web.routes) == ["/orders/counts/", "/users/{user_id}/"]
    assert sorted(app.commands) == ["add-user"]
    assert app.conf.origin == "proj"


def test_sim_run_gives_exactly_the_fold_of_the_input_under_a_crash():
    crash = Fault(at=5.0, kind="crash", worker="w2", downtime=4.0)
    report, tables = run_capturing(SimOptions(seed=1, workers=3, duration=30.0,
                                              plan=FaultPlan("file", ("crash",), (crash,))))
    assert report.ok, report.violations
    assert tables == {"user-names": NAMES, "order-counts": COUNTS, "spent": SPENT}
    assert any(e.kind == "recovery-start" for e in report.trace.events)


def test_default_faults_seed_1_passes_and_replays():
    options = SimOptions(seed=1, workers=3, duration=30.0, faults="default")
    first, tables = run_capturing(options)
    again = run(TARGET, options)
    assert first.ok and again.ok, first.violations
    assert tables["spent"] == SPENT
    assert first.sha256 == again.sha256


def test_a_planted_double_spend_fails_the_check():
    def double_spend(sim):  # a second writer of the users' spending topic: a bug
        sim.producer("proj-proj.users.agents.record_spending",
                     [("u3", {"user_id": "u3", "order_id": "o999", "amount": 5})],
                     keyed=True, start=1.0, name="rogue")

    report, tables = run_capturing(SimOptions(seed=2, workers=2, duration=30.0), double_spend)
    assert not report.ok
    assert [v.check for v in report.violations] == ["orders_are_counted_once"]
    assert tables["spent"]["u3"] == SPENT["u3"] + 5


def test_the_user_page_answers_from_the_table():
    _, app = load_isolated(TARGET)
    register = app.agents["proj.users.agents.register"]
    user_type = register.channel.value_type

    async def main(cluster):
        cluster.create_topic("users", 4, by="test")
        app.transport = SimTransport(cluster=cluster, name="w1")  # instead of its kafka://
        await app.start()
        try:
            for user_id, name in [("u1", "Ann"), ("u2", "Bob")]:
                await register.channel.send(key=user_id, value=user_type(id=user_id, name=name))
            await asyncio.sleep(10)
            client = app.web.client()
            found, missing = await client.get("/users/u2/"), await client.get("/users/u9/")
            return found.status, found.json(), missing.status
        finally:
            await app.stop()

    result = simulate(main, seed=3, config=ClusterConfig(initial_rebalance_delay=0.1))
    assert result == (200, {"id": "u2", "name": "Bob", "spent": 0}, 404)


def python_m_proj(*args, broker=None):
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'examples'}{os.pathsep}{ROOT}"}
    if broker:
        env["BROKER_URL"] = broker
    return subprocess.run([sys.executable, "-m", "proj", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120, check=False)


def test_python_dash_m_proj_lists_its_command():
    out = python_m_proj("--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: python -m proj [OPTIONS] COMMAND")
    commands = out.stdout.split("Commands:")[1]
    assert "add-user" in commands and "Register user USER_ID called NAME" in commands
    assert "worker" in commands


def test_python_dash_m_proj_runs_its_command():
    help_out = python_m_proj("add-user", "--help")
    assert help_out.returncode == 0 and "--quiet" in help_out.stdout
    out = python_m_proj("add-user", "u1", "Ann", broker="sim://")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "user u1 sent to users[0]\n"


def test_dash_a_proj_finds_the_app_and_its_commands(monkeypatch):
    monkeypatch.chdir(ROOT / "examples")
    monkeypatch.setattr(sys, "path", list(sys.path))  # load() adds the working directory
    result = CliRunner().invoke(main, ["-A", "proj", "--help"])
    try:
        assert result.exit_code == 0, result.output
        assert "add-user" in result.output
    finally:
        for name in [n for n in sys.modules if n == "proj" or n.startswith("proj.")]:
            del sys.modules[name]


def test_partitions_lost_by_a_zombie_and_then_revoked_keep_their_parked_data():
    """Found by the simulator (chaos seed 14): a memory table dropped a partition twice
    (lost while a zombie, then revoked) and the second drop emptied the parked copy while
    its offset stayed, so the partition came back without its keys."""
    from sim.runner import SimOptions, run

    report = run("examples/proj", SimOptions(seed=14, duration=30.0, faults="chaos"))
    assert report.ok, report.violations
