"""Fault injection under `detstream sim`: plans, app-visible effects, replay, shrinking."""

import json
from dataclasses import replace

import pytest

from sim import explore
from sim.fault_effects import EFFECTS
from sim.faults import KINDS, Fault, FaultPlan, plan_faults
from sim.group import member_client
from sim.runner import SimOptions, run

WORD_COUNT = "examples/word_count.py"
PLANTED = "tests/apps/commit_before_processing.py"
POISON = "tests/apps/poison_pill.py"


def crash_plan(at=6.0, worker="w2", downtime=5.0):
    return FaultPlan("file", ("crash",), (Fault(at, "crash", worker, downtime),))


def test_same_seed_same_plan_and_plans_vary_by_seed():
    assert plan_faults(7, "default", 3, 30) == plan_faults(7, "default", 3, 30)
    assert len({plan_faults(s, "chaos", 3, 30) for s in range(20)}) > 15
    assert plan_faults(7, "none", 3, 30).faults == ()


def test_every_kind_a_plan_may_hold_has_one_effect():
    assert set(EFFECTS) == set(KINDS)


def test_a_fault_whose_target_cannot_take_it_is_skipped_in_the_trace():
    plan = FaultPlan("file", ("crash", "leave", "join"), (
        Fault(1.0, "leave", "w1"),   # the only worker: it stays
        Fault(2.0, "crash", "w7"),   # no such worker
        Fault(3.0, "join", "w1"),    # already there
    ))
    report = run("examples/word_count.py", SimOptions(seed=1, workers=1, duration=4.0, plan=plan))
    skipped = [(e.fields["fault"], e.fields["worker"]) for e in report.trace.of_kind("fault-skipped")]
    assert skipped == [("leave", "w1"), ("crash", "w7"), ("join", "w1")]
    assert not list(report.trace.of_kind("fault"))
    assert report.ok, report.violations


def test_swarm_switches_kinds_per_seed():
    kinds = {plan_faults(s, "chaos", 3, 30).kinds for s in range(40)}
    assert len(kinds) > 3  # different seeds enable different subsets of fault kinds


def test_crash_moves_partitions_and_table_rebuilds_from_changelog():
    report = run(WORD_COUNT, SimOptions(seed=3, duration=20.0, plan=crash_plan()))
    assert report.ok, report.violations
    kinds = [(e.actor, e.kind) for e in report.trace.events]
    assert ("w2", "crash") in kinds
    crash_at = next(e.time for e in report.trace.events if e.kind == "crash")
    after = [e for e in report.trace.events if e.time > crash_at]
    # survivors get w2's partitions at the next generation and recover its table partitions
    assert any(e.kind == "rebalance" for e in after)
    assert any(e.kind == "recovery-start" and e.actor in ("w1", "w3") for e in after)
    # the restarted incarnation rejoins
    assert any(e.kind == "start" and e.actor == "w2" for e in after)


def test_graceful_restart_loses_nothing_and_duplicates_nothing():
    plan = FaultPlan("file", ("restart",), (Fault(5.0, "restart", "w1"),))
    report = run(WORD_COUNT, SimOptions(seed=4, duration=20.0, plan=plan))
    assert report.ok, report.violations  # exact counts: a graceful stop commits first


def test_join_and_leave_rebalance_the_group():
    plan = FaultPlan("file", ("join", "leave"), (Fault(4.0, "join", "w4"), Fault(8.0, "leave", "w1")))
    report = run(WORD_COUNT, SimOptions(seed=1, duration=20.0, plan=plan))
    assert report.ok, report.violations
    generations = [e.fields["generation"] for e in report.trace.of_kind("rebalance")]
    assert len(generations) >= 3
    assert any(e.actor == "w4" and e.kind == "deliver" for e in report.trace.events)


def test_planted_commit_before_processing_bug_is_caught_within_50_seeds():
    # A crash must land in the <= 0.4 s between a commit and the end of the event. Half of
    # the drawn crashes fire just after a commit of their worker: 15 of seeds 1..60 catch it
    # (3 when every crash fired at a uniform time).
    options = SimOptions(seed=0, duration=20.0, faults="default")
    for seed in range(1, 51):
        report = run(PLANTED, replace(options, seed=seed))
        if not report.ok:
            assert report.violations[0].check == "no_update_lost"
            return
    pytest.fail("the planted lost-update bug survived 50 seeds")


def test_replay_detects_a_changed_trace(tmp_path):
    options = SimOptions(seed=2, duration=10.0, faults="default")
    path = tmp_path / "run.trace"
    explore.write_trace(run(WORD_COUNT, options), path)
    assert explore.replay(path)[1] is None
    lines = path.read_text().splitlines()
    lines[40] = lines[40] + " tampered=1"
    path.write_text("\n".join(lines) + "\n")
    report, divergence = explore.replay(path)
    assert divergence is not None and divergence[0] == 39


def test_check_determinism_finds_no_divergence():
    report, divergence = explore.check_determinism(WORD_COUNT, SimOptions(seed=11, duration=10.0, faults="chaos"))
    assert divergence is None and report.trace.lines


def test_shrinking_reduces_a_failing_plan():
    failing = None
    for seed in range(1, 51):
        options = SimOptions(seed=seed, duration=20.0, faults="chaos")
        if not run(PLANTED, options).ok:
            failing = options
            break
    assert failing is not None
    original = plan_faults(failing.seed, "chaos", 3, 20.0)
    smaller, report = explore.shrink(PLANTED, failing)
    assert not report.ok
    assert len(smaller.plan.faults) <= len(original.faults)
    assert len(smaller.plan.faults) >= 1
    json.loads(smaller.plan.to_json())  # a plan file the CLI can take back with --plan


def _long_feed(sim):
    """word_count's app with input for 90 virtual seconds: a zombie still has work to commit."""
    sim.topic("sentences", partitions=4)
    sim.producer("sentences", [f"the quick fox {i % 7}" for i in range(900)], every=0.1, name="feed")


def test_stall_is_a_chaos_fault_longer_than_the_session_timeout():
    plans = [plan_faults(s, "chaos", 3, 30) for s in range(60)]
    stalls = [f for p in plans for f in p.faults if f.kind == "stall"]
    assert stalls and all(f.downtime > 60.0 for f in stalls)
    assert "for" in stalls[0].describe()
    assert FaultPlan.from_dict({"faults": [{"at": 1.0, "kind": "stall", "worker": "w1", "downtime": 70.0}]})


#: a stall of w2 from t=5 s for 70 s: past the session timeout and the transaction timeout.
LONG_STALL = FaultPlan("file", ("stall",), (Fault(5.0, "stall", "w2", 70.0),))


def test_stalled_worker_is_expelled_and_its_zombie_commits_rejected():
    # seed 2: the stall holds heartbeats only (its commits reach the coordinator)
    report = run(WORD_COUNT, SimOptions(seed=2, duration=100.0, plan=LONG_STALL), scenario=_long_feed)
    assert report.ok, report.violations
    events = report.trace.events
    assert not any(e.kind == "stall-holds-group" for e in events)
    stall = next(e for e in events if e.kind == "stall")
    expired = next(e for e in events if e.kind == "member-expired")
    assert stall.actor == "w2" and member_client(expired.fields["member"]) == "w2"
    end = next(e for e in events if e.kind == "stall-end")
    # expelled a session timeout after its last heartbeat, while still stalled
    assert expired.fields["reason"] == "session-timeout" and stall.time < expired.time < end.time
    rejected = [e for e in events if e.kind == "commit-rejected"]
    assert rejected and all(e.fields["member"] == expired.fields["member"] for e in rejected)
    assert rejected[0].time > expired.time  # the zombie kept working and tried to commit
    assert any(
        e.kind == "member-join" and member_client(e.fields["member"]) == "w2" and e.time >= end.time
        for e in events
    )  # it rejoined under a new member id
    assert "commit-rejected=" in report.summary[-2] and "stall=1" in report.summary[-2]


def test_a_stall_cut_off_from_the_group_coordinator_outlives_its_transaction():
    # seed 1: the stall also holds w2's coordinator requests, so the TxnOffsetCommit of its
    # commit waits past the 60 s transaction timeout: the coordinator aborts the transaction,
    # the zombie's held request is fenced when the stall ends, and its app crashes.
    report = run(WORD_COUNT, SimOptions(seed=1, duration=100.0, plan=LONG_STALL), scenario=_long_feed)
    assert report.ok, report.violations
    events = report.trace.events
    held = next(e for e in events if e.kind == "stall-holds-group")
    waited = next(e for e in events if e.kind == "group-request-held")
    assert held.actor == waited.actor == "w2" and waited.fields["request"] == "txn-offset-commit"
    timed_out = next(e for e in report.trace.of_kind("txn-abort") if e.fields.get("reason") == "timeout")
    end = next(report.trace.of_kind("stall-end"))
    fenced = next(report.trace.of_kind("txn-fenced"))
    crashed = next(report.trace.of_kind("app-crashed"))
    assert timed_out.actor == fenced.actor == "word-count-w2"
    assert waited.time < timed_out.time < end.time <= fenced.time <= crashed.time
    assert crashed.actor == "w2" and crashed.fields["error"] == "ProducerFencedError"
    assert report.coverage["stall-holds-group"] == 1 and report.coverage["txn-timed-out"] == 1


def test_chaos_runs_with_stalls_still_pass():
    options = SimOptions(seed=0, duration=20.0, faults="chaos")
    seeds = [s for s in range(1, 40) if any(f.kind == "stall" for f in plan_faults(s, "chaos", 3, 20.0).faults)][:2]
    assert seeds
    for seed in seeds:
        report = run(WORD_COUNT, replace(options, seed=seed))
        assert report.ok, (seed, report.violations)


def test_an_app_crash_ends_the_process_and_a_poison_pill_crash_loops():
    """CrashingSupervisor + a record the agent cannot handle: the sim shows the crash loop."""
    report = run(POISON, SimOptions(seed=1, workers=2, duration=20.0))
    crashes = list(report.trace.of_kind("app-crashed"))
    assert len(crashes) >= 3 and all(e.fields["error"] == "ValueError" for e in crashes)
    # each crash is a process exit: a new incarnation starts after the supervisor's delay
    starts = [e for e in report.trace.of_kind("start") if e.actor == crashes[0].actor]
    assert starts and starts[0].time == pytest.approx(crashes[0].time + 5.0, abs=0.5)
    assert report.coverage["app-crashed"] == len(crashes)
    assert any("its App crashed" in line for line in report.summary)
    # the partition holding the pill never gets past it: liveness fails, and says where
    checks = {v.check for v in report.violations}
    assert "converged" in checks


def test_a_commit_triggered_crash_fires_just_after_its_workers_next_commit():
    plan = FaultPlan("file", ("crash",), (Fault(6.0, "crash", "w2", 5.0, after_commit=0.125),))
    report = run(WORD_COUNT, SimOptions(seed=1, duration=20.0, plan=plan))
    assert report.ok, report.violations
    crash = next(report.trace.of_kind("crash"))
    commits = [e for e in report.trace.of_kind("commit")
               if e.time >= 6.0 and member_client(str(e.fields["member"])) == "w2"]
    assert crash.time == pytest.approx(commits[0].time + 0.125)
    assert "after its next commit" in plan.faults[0].describe()
    assert FaultPlan.from_dict(plan.to_dict()) == plan  # the plan file keeps the trigger


def test_a_restart_while_the_cluster_is_unreachable_stops_within_the_shutdown_timeout():
    # SIGTERM with the broker gone (issue 9): the final commit and the producer's flush
    # are given up at the stop deadline and the worker is back after its link heals.
    plan = FaultPlan("file", ("restart",), (Fault(6.0, "restart", "w2", 65.0, unreachable=True),))
    report = run(WORD_COUNT, SimOptions(seed=1, duration=20.0, plan=plan))
    assert report.ok, report.violations
    assert report.coverage["stop-unreachable"] == 1
    gave_up = [e for e in report.trace.of_kind("stop-gave-up") if e.actor == "w2"]
    assert gave_up and all(e.time <= 6.0 + 60.0 for e in gave_up)
    assert "while the cluster is unreachable for 65.000s" in plan.faults[0].describe()
    assert FaultPlan.from_dict(plan.to_dict()) == plan


def test_unreachable_stops_are_drawn_after_everything_else():
    # Drawn last: every other fault of a seed is the one it drew before they existed.
    plans = [plan_faults(s, profile, 3, 30) for s in range(40) for profile in ("default", "chaos")]
    stops = [f for p in plans for f in p.faults if f.kind in ("restart", "leave")]
    unreachable = [f for f in stops if f.unreachable]
    assert 0 < len(unreachable) < len(stops)
    assert all(62.0 <= f.downtime <= 75.0 for f in unreachable)
    assert not any(f.unreachable for p in plans for f in p.faults if f.kind not in ("restart", "leave"))


def test_a_deny_reads_window_crashes_the_app_and_its_work_is_redone():
    # The brokers refuse a host's fetches and offset commits (an ACL being changed):
    # aiokafka raises from getmany/commit, the engine crashes the app, the process is
    # restarted and its partitions' work is redone from the last commit.
    plan = FaultPlan("file", ("deny_reads",), (Fault(6.0, "deny_reads", "w2", 3.0),))
    report = run(WORD_COUNT, SimOptions(seed=1, duration=20.0, plan=plan))
    assert report.ok, report.violations
    assert report.coverage["fetch-denied"] >= 1
    crashed = [e for e in report.trace.of_kind("app-crashed") if e.actor == "w2"]
    assert crashed and crashed[0].fields["error"] == "TopicAuthorizationFailedError"
    drawn = {f.kind for s in range(40) for f in plan_faults(s, "chaos", 3, 30).faults}
    assert "deny_reads" in drawn


def test_the_summary_says_how_often_agents_raised():
    """An agent that raises is restarted, not a crash: the run goes on, and the summary says so."""
    report = run("tests/apps/raising_agent.py", SimOptions(seed=1, workers=1, faults="none"))
    assert report.ok, report.violations
    odd = sum(1 for n in range(20) if n % 2)
    assert sum(1 for e in report.trace.events if e.kind == "agent-error") == odd
    assert f"worker w1: processed 20 events; its agents raised {odd} times" in report.summary


def test_an_app_whose_start_fails_is_restarted_not_the_end_of_the_run():
    """A global table's first read refused (deny_reads) makes app.start() raise.

    ``detstream worker`` exits with status 1 and its supervisor starts it again;
    the sim run used to end there with the worker's exception instead of a verdict.
    """
    report = run("tests/apps/global_counts.py", SimOptions(seed=5, duration=15.0, faults="chaos"))
    assert report.ok, report.violations
    failed_starts = [e for e in report.trace.of_kind("app-crashed") if e.fields["error"] != "-"]
    assert failed_starts
    crashed = failed_starts[0]
    assert any(e.actor == crashed.actor and e.time >= crashed.time + 5.0
               for e in report.trace.of_kind("start"))


def test_a_crash_during_a_restart_leaves_one_incarnation_running():
    """Chaos seed 182: w1's App crashed while a `restart` fault was about to stop it.

    The supervisor restarted it, and the fault's start, 42 s later, began a
    second incarnation beside it: two live processes with one transactional
    id, the older fenced for good, and the run never converged. A SIGTERM to
    a process that is gone stops nothing, and a start while one runs starts
    nothing.
    """
    report = run(WORD_COUNT, SimOptions(seed=182, duration=20.0, faults="chaos"))
    assert report.ok, report.violations
    retired: set[str] = set()
    latest: dict[str, str] = {}
    for write in report.cluster.history.writes:  # in send order
        worker, _, producer = write.producer.partition("/")
        assert write.producer not in retired, f"{write.producer} sent after its successor"
        if latest.get(worker, producer) != producer:
            retired.add(f"{worker}/{latest[worker]}")
        latest[worker] = producer


def test_the_client_faults_are_drawn_from_the_seed():
    # chaos seed 56 of word count meets both: stalls that hold the group, and dead senders
    # (seed 31 did until session 41, when listeners began to race fetches)
    options = SimOptions(seed=56, duration=20.0, faults="chaos")
    first, second = run(WORD_COUNT, options), run(WORD_COUNT, options)
    assert first.ok, first.violations
    assert first.coverage["stall-holds-group"] > 0 and first.coverage["producer-sender-dead"] > 0
    assert first.sha256 == second.sha256


def test_a_short_cut_makes_a_workers_requests_late_not_lost():
    """A host cut off for 5 s (loss 1), shorter than the request timeout: TCP holds what it
    sends and receives until the heal, so its requests (produce, commits, heartbeats) arrive
    late and none times out. Only a reset connection fails one (``reset_share``); before session
    32 the sim driver timed out every request but a produce sent into such a cut."""
    plan = FaultPlan("file", ("drop",), (Fault(4.0, "drop", "w1", 5.0),))
    report = run(WORD_COUNT, SimOptions(seed=1, duration=20.0, plan=plan))
    assert report.ok, report.violations
    held = [e for e in report.trace.of_kind("request-held") if e.actor == "w1"]
    dropped = [e for e in report.trace.of_kind("request-dropped") if e.actor == "w1"]
    # (the group coordinator's requests too; the transaction's offsets were among them until
    # session 42's metadata waits moved the schedule)
    assert {e.fields["request"] for e in held} >= {"fetch", "heartbeat", "produce"}, held
    assert all(e.fields.get("reset") for e in dropped), dropped  # no timeout
    assert all(4.0 <= e.time < 9.0 for e in held)


def test_chaos_draws_host_cuts_last_so_every_other_fault_of_a_seed_stays(monkeypatch):
    """A cut (the host off the network) is drawn in a late group: half the chaos seeds get one,
    lasting past a short session or past the default 60 s one, and without it a seed's plan
    is the plan it drew before cuts existed (``FaultPlan.without_kinds``)."""
    from sim import faults

    plans = {seed: plan_faults(seed, "chaos", 3, 20.0) for seed in range(1, 41)}
    cuts = [f for plan in plans.values() for f in plan.faults if f.kind == "cut"]
    assert 10 <= len(cuts) <= 30
    assert all(any(low <= cut.downtime <= high for low, high in faults.CUT_RANGES) for cut in cuts)
    assert {cut.downtime > 60.0 for cut in cuts} == {True, False}

    late = tuple(g for g in faults.LATE_GROUPS["chaos"] if g[2] != faults.CUT_KINDS)
    monkeypatch.setitem(faults.LATE_GROUPS, "chaos", late)
    for seed, plan in plans.items():
        assert plan.without_kinds(("cut",)) == plan_faults(seed, "chaos", 3, 20.0), seed


def test_a_cut_past_the_session_expels_the_worker_and_it_crashes_in_doubt_not_late():
    """short_session_counter (a 6 s session, at least once), w1 cut off for 11 s: its commit's
    writes are held, the worker goes in doubt and crashes (MembershipInDoubtError) before the
    group expels it, so nothing it wrote lands after the new owner's writes."""
    plan = FaultPlan("file", ("cut",), (Fault(14.0, "cut", "w1", 11.0),))
    report = run("tests/scenarios/short_session_counter.py", SimOptions(seed=2, duration=30.0, plan=plan))
    assert report.ok, report.violations
    crashed = [e.time for e in report.trace.of_kind("app-crashed")
               if e.actor == "w1" and e.fields["error"] == "MembershipInDoubtError"]
    expired = [e.time for e in report.trace.of_kind("member-expired")
               if "w1" in e.fields["member"] and e.fields["reason"] == "session-timeout"]
    held = {e.fields["request"] for e in report.trace.of_kind("request-held") if e.actor == "w1"}
    assert crashed and expired and crashed[0] < expired[0] and {"produce", "heartbeat"} <= held
