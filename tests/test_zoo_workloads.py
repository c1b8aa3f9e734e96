"""The zoo's own workloads (``sim/workloads/``): correct programs that pass under chaos.

Each runs a couple of chaos seeds here (a few tenths of a second each); the
sweeps over 100 seeds per profile are ``detstream sim sim/workloads/<file>.py
--seeds 1..100 --faults <profile> --duration 20s``. Two runs these workloads
failed on are pinned: an engine bug that skipped an input record (``rpc_ask``)
and a false alarm of the final read on ``take()`` batches (``take_batches``).
"""

from collections import Counter

import pytest

import detstream.engine.conductor  # noqa: F401 - registers the conductor's mutants
from detstream import mutants
from sim import zoo
from sim.runner import SimOptions, run

WORKLOADS = {w.name: w for w in zoo.ZOO if w.path.startswith("sim/workloads/")}
NEW = ["concurrent_actors", "take_batches", "rpc_ask", "timer_producer", "global_lookup", "group_by_chain",
       "long_recovery"]


def test_the_new_workloads_are_in_the_zoo():
    assert set(NEW) <= set(WORKLOADS)


@pytest.mark.parametrize("name", NEW)
def test_workload_passes_chaos_seeds(name):
    workload = WORKLOADS[name]
    for seed in (1, 2):
        report = run(workload.path, workload.options(SimOptions(seed=seed, faults="chaos")))
        assert report.ok, (name, seed, report.violations)


def test_rpc_ask_a_record_fetched_while_its_partition_opens_is_not_skipped():
    """rpc_ask: a listener opened a partition while the fetch loop dropped a record of it
    (the start-offset lookup was awaiting); the partition was opened without being sought
    back, the record was skipped and committed past. Found on chaos seed 11 (a shrunk plan
    of a broker restart and a leave); chaos seed 182 was the first of 300 that met the race
    until session 41, when listeners began to race fetches: seed 3 was the first then, and
    seed 4 since session 42's metadata waits."""
    options = SimOptions(seed=4, duration=20.0, faults="chaos")
    report = run("sim/workloads/rpc_ask.py", options)
    assert report.ok, report.violations
    with mutants.enabled("open-over-dropped"):
        reopened = run("sim/workloads/rpc_ask.py", options)
    assert "no-lost-input" in {v.check for v in reopened.violations}


def test_take_batches_redone_with_other_boundaries_is_no_false_alarm():
    """take_batches, default seed 51: w3's graceful stop with the cluster unreachable lost
    a batch's output (sent under the batch's last event); w2 redid the events in other
    batches. The final read once called the first batch's output lost."""
    report = run("sim/workloads/take_batches.py", SimOptions(seed=51, duration=20.0, faults="default"))
    assert report.ok, report.violations
    deliveries = Counter((e.fields["tp"], e.fields["offset"]) for e in report.trace.of_kind("deliver"))
    assert any(n > 1 for n in deliveries.values())  # some events were redone


def test_an_offset_commit_denied_by_an_acl_is_not_taken_for_fencing():
    """awaiting_relay, chaos seed 180 (then 3, when the sim driver drew more client faults, and
    59 since session 42, when a deny window began to reach idle fetches at once, which crash
    first): a deny_reads fault refused a worker's commit (not retriable), and it crashed with
    an event in flight. The sim traced the refusal as ``commit-refused``, the engine's name
    for a fenced commit, and no-delivery-after-fenced called it a zombie."""
    report = run("tests/apps/awaiting_relay.py", SimOptions(seed=59, duration=20.0, faults="chaos"))
    assert report.ok, report.violations
    assert list(report.trace.of_kind("commit-denied")) and not list(report.trace.of_kind("commit-refused"))


def test_a_graceful_stop_waits_for_a_timer_send_whose_waiter_was_cancelled():
    """timer_producer, chaos seed 202: a tick sent under a drop fault was retried after the
    request timeout; the stop cancelled the timer awaiting it, the flush took the cancelled
    future for settled, and the tick landed after every consumer had left."""
    report = run("sim/workloads/timer_producer.py", SimOptions(seed=202, duration=20.0, faults="chaos"))
    assert report.ok, report.violations


def test_a_killed_process_whose_task_swallowed_its_cancellation_still_dies():
    """concurrent_actors, default seed 192: the crash cancelled w1's tasks, Python 3.11's
    wait_for swallowed one cancellation (its event was set in the same step), and the revoke
    listener went on to flush a dead producer: the run lasted 30,000 virtual seconds."""
    report = run("sim/workloads/concurrent_actors.py", SimOptions(seed=192, duration=20.0, faults="default"))
    assert report.ok, report.violations
    assert max(e.time for e in report.trace.events) < 400  # the settle bound, not a dead wait


@pytest.mark.parametrize("target,seed", [
    ("sim/workloads/concurrent_actors.py", 466), ("sim/workloads/timer_producer.py", 474),
    ("sim/workloads/global_lookup.py", 176),
])
def test_a_refused_commit_of_an_earlier_generation_keeps_the_partitions_held_now(target, seed):
    """Default seeds of the 500-seed sweep: a commit sent under generation 1 reached the
    coordinator after the worker had joined generation 2; its refusal made the worker give up
    the partitions of generation 2, which nobody rebalanced again (input never processed)."""
    report = run(target, SimOptions(seed=seed, duration=20.0, faults="default"))
    assert report.ok, report.violations
