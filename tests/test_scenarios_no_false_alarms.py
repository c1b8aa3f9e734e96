"""No false alarms (issue 9, part 3): correct programs pass every built-in check.

At every fault profile, duration and worker count: apps that feed themselves
from timers, tasks and crontabs until the run ends (tests/scenarios/app_sources.py),
Faust's windowed examples (windowed_tumbling.py, windowed_hopping.py), and
runs whose planned crash restarts a worker after the main phase ended.
"""

from dataclasses import replace

import pytest

from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run

from .test_scenarios import SCENARIOS, sweep

APPS = ["app_sources", "windowed_tumbling", "windowed_hopping", "two_agents_one_topic"]


@pytest.mark.parametrize("faults", ["none", "default", "chaos"])
@pytest.mark.parametrize("name", APPS)
def test_correct_apps_pass_every_check_over_seeds(name, faults):
    assert sweep(name, SimOptions(seed=0, duration=15.0, faults=faults), range(1, 11)) == []


@pytest.mark.parametrize(("duration", "workers"), [(4.0, 1), (40.0, 2)])
@pytest.mark.parametrize("name", APPS)
def test_correct_apps_pass_at_other_durations_and_worker_counts(name, duration, workers):
    options = SimOptions(seed=0, duration=duration, workers=workers, faults="chaos")
    assert sweep(name, options, range(1, 3)) == []


@pytest.mark.parametrize("after_commit", [None, 0.1])
@pytest.mark.parametrize("name", ["app_sources", "windowed_hopping"])
def test_a_crash_whose_restart_lands_after_the_main_phase(name, after_commit):
    """w1 is killed near the end and comes back ~20 s after --duration: still no violation."""
    for duration, workers in [(5.0, 1), (10.0, 3)]:
        crash = Fault(round(0.79 * duration, 3), "crash", "w1", 19.9, after_commit=after_commit)
        plan = FaultPlan("file", ("crash",), (crash,))
        report = run(f"{SCENARIOS}/{name}.py", SimOptions(seed=1, duration=duration, workers=workers, plan=plan))
        assert report.ok, (duration, workers, report.violations)
        back = [e for e in report.trace.of_kind("start") if e.actor == "w1"]
        assert back and back[0].time > duration  # the restart really landed after the main phase


def test_sources_stop_when_the_main_phase_ends_and_stay_stopped_after_a_restart():
    plan = FaultPlan("file", ("crash",), (Fault(8.0, "crash", "w2", 10.0),))
    report = run(f"{SCENARIOS}/app_sources.py", SimOptions(seed=2, duration=10.0, plan=plan))
    assert report.ok, report.violations
    stopped = list(report.trace.of_kind("sources-stopped"))
    assert {e.actor for e in stopped} == {"w1", "w3"}  # w2 was down; it starts with none running
    end = stopped[0].time  # --duration after the workers started
    assert all(e.time == end for e in stopped) and 10.0 <= end < 10.5
    assert "timer:tests.scenarios.app_sources.every_tenth" in stopped[0].fields["names"]
    timers = list(report.trace.of_kind("timer"))
    assert timers and all(e.time <= end for e in timers)
    restart = next(e for e in report.trace.of_kind("start") if e.actor == "w2")
    assert restart.time > end
    sends = [e for e in report.trace.of_kind("produce") if e.fields["tp"].topic == "ticks"]
    assert sends and all(e.time <= end + 0.1 for e in sends)  # a send in flight may land just after
    assert report.trace.events[-1].time < end + 60.0  # it settled at once, not at SETTLE_BOUND


def test_same_seed_same_trace_with_sources_stopped():
    options = SimOptions(seed=4, duration=10.0, faults="chaos")
    first = run(f"{SCENARIOS}/app_sources.py", options)
    assert first.sha256 == run(f"{SCENARIOS}/app_sources.py", replace(options)).sha256


def test_tables_are_compared_only_once_every_worker_took_its_assignment():
    # Word count, chaos seed 54: the last rebalance left the group stable while w2 was
    # still in its listener (its link delayed), its tables not recovering yet. The
    # settle phase took that for a consistent cut and compared w2's empty table with
    # the changelog: a false alarm. Settling now also waits for every worker to take
    # the group's generation.
    report = run("examples/word_count.py", SimOptions(seed=54, duration=20.0, faults="chaos"))
    assert report.ok, report.violations
    last_generation = max(e.fields["generation"] for e in report.trace.of_kind("rebalance"))
    taken = {e.actor for e in report.trace.of_kind("taken") if e.fields["generation"] == last_generation}
    assert {actor.rstrip("'") for actor in taken} == {"w1", "w2", "w3"}  # w2': a twin's replacement


#: standby_takeover, chaos seed 116 (found by bench/wire_reach.py): w3's listener fails on a
#: refused offset lookup as a planned restart stops it.
PLAN_116 = FaultPlan("file", ('crash', 'restart', 'broker_crash', 'delay', 'drop', 'refuse'), (
    Fault(1.904, "refuse", "w3", 3.165),
    Fault(2.25, "crash", "w1", 7.912),
    Fault(3.036, "restart", "w3", 0.0),
    Fault(3.166, "broker_crash", "b2", 3.19),
    Fault(3.898, "drop", "w1", 4.125, loss=0.13),
    Fault(3.974, "drop", "w2", 2.534, loss=0.48),
    Fault(5.617, "restart", "w1", 0.0),
    Fault(7.018, "broker_crash", "b1", 9.706),
    Fault(8.25, "crash", "w3", 13.769, after_commit=0.244),
    Fault(11.445, "crash", "w1", 7.301, after_commit=0.067),
))


def test_a_crash_meeting_a_restart_releases_the_crashed_incarnations_stores():
    """The app crash and the restart's start ran at once: the crash then closed the new
    incarnation's tables, not its own, and the old standby store kept its RocksDB LOCK in the
    simulator's one process. Every later incarnation of w3 failed to open it, and words[2]
    was never processed: a false alarm, since a process's locks die with it. With this plan
    about one seed in ten puts the crash on the restart (13, 14, 22, 26, 47 in session 42)."""
    met = 0
    for seed in (13, 14, 22, 26, 47):
        report = run(f"{SCENARIOS}/standby_takeover.py", SimOptions(seed=seed, duration=15.0, plan=PLAN_116))
        assert report.ok, (seed, report.violations)
        crashed = {round(e.time, 3) for e in report.trace.of_kind("app-crashed")}
        restarts = {round(e.time, 3) for e in report.trace.of_kind("fault")
                    if e.fields.get("fault") == "restart"}
        met += bool(crashed & restarts)
    assert met >= 2  # still schedules that meet the bug


def test_a_twins_zombie_stops_its_sources_when_the_main_phase_ends():
    """timer_producer, chaos seed 51: a twin's zombie (stalled 79 s, its host then shut down)
    was not among the workers whose timers stop at the end of the main phase; its last tick
    landed after the group had left, and was never processed: a false alarm."""
    report = run("sim/workloads/timer_producer.py", SimOptions(seed=51, duration=20.0, faults="chaos"))
    assert report.ok, report.violations
    stopped = {e.actor for e in report.trace.of_kind("sources-stopped")}
    assert {"w3", "w3'"} <= stopped  # the zombie and its replacement
