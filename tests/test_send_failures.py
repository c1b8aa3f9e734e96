"""A send the producer refuses fails its event, under both guarantees (issue 9).

``tests/apps/refused_output.py`` is a correct program whose output is refused
for a while (records larger than ``producer_max_request_size``): the engine
must neither commit past those events nor lose their output. With the
``send-failure-ignored`` mutant (the old bug: failed sends dropped unseen) the
simulator must go red within 50 chaos seeds; without it the same seeds pass.
``tests/apps/poison_output.py`` always sends an oversized record: a bug in
the program, which the verdict must name.
"""

import logging
from dataclasses import replace

import pytest

from detstream import mutants
from detstream.engine.producer import SEND_FAILURE_IGNORED
from sim.group import member_client
from sim.runner import SimOptions, run

REFUSED = "tests/apps/refused_output.py"
POISON = "tests/apps/poison_output.py"
SEEDS = range(1, 51)
OPTIONS = SimOptions(seed=0, duration=20.0, faults="chaos")


@pytest.fixture(autouse=True)
def quiet_engine_logs():
    """Each refused send is logged as an error: hundreds over a sweep."""
    logging.disable(logging.CRITICAL)
    yield
    logging.disable(logging.NOTSET)


def first_failure(seeds):
    for seed in seeds:
        report = run(REFUSED, replace(OPTIONS, seed=seed))
        if not report.ok:
            return seed, report
    return None, None


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_the_mutant_is_caught_within_50_chaos_seeds(guarantee, monkeypatch):
    monkeypatch.setenv("REFUSED_OUTPUT_GUARANTEE", guarantee)
    with mutants.enabled(SEND_FAILURE_IGNORED):
        seed, report = first_failure(SEEDS)
    assert report is not None, "the dropped refused sends survived 50 chaos seeds"
    checks = {v.check for v in report.violations}
    assert "final-read-refused-committed" in checks, report.violations
    assert "every_order_has_a_receipt" in checks


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_without_the_mutant_the_same_seeds_pass(guarantee, monkeypatch):
    monkeypatch.setenv("REFUSED_OUTPUT_GUARANTEE", guarantee)
    refused = 0
    for seed in SEEDS:
        report = run(REFUSED, replace(OPTIONS, seed=seed))
        assert report.ok, (seed, report.violations)
        refused += report.coverage["send-refused"]
    assert refused > 0  # the runs did go through refusals


def test_a_refused_send_fails_its_event_and_crashes_the_worker_without_a_commit_past_it():
    report = run(REFUSED, SimOptions(seed=1, duration=20.0, faults="none"))
    assert report.ok, report.violations
    failed = list(report.trace.of_kind("send-failed"))
    assert failed and all(e.fields["error"] == "MessageSizeTooLargeError" for e in failed)
    assert {e.fields["topic"] for e in failed} == {"receipts"}
    assert report.coverage["app-crashed"] >= 1  # each worker that met one exited and came back
    for event in failed:  # no commit of the same incarnation passed the failed event
        crash = next(e for e in report.trace.of_kind("app-crashed")
                     if e.actor == event.actor and e.time >= event.time)
        commits = [e for e in report.trace.of_kind("commit")
                   if member_client(str(e.fields.get("member", "-"))) == event.actor
                   and event.time <= e.time <= crash.time]
        assert not commits, commits


def test_a_poison_output_is_a_red_verdict_that_names_it():
    report = run(POISON, SimOptions(seed=1, duration=20.0, faults="none"))
    checks = {v.check: v for v in report.violations}
    assert "final-read-refused" in checks
    assert "producer_max_request_size" in checks["final-read-refused"].message
    assert any("documents[" in line and "MessageSizeTooLargeError" in line
               for line in checks["final-read-refused"].evidence)
    assert "converged" in checks  # its partition never gets past it
    assert report.coverage["send-refused"] > 0 and report.coverage["app-crashed"] > 0
