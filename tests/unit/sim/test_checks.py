"""Built-in checks over hand-made traces: what they accept and what they flag."""

from sim.checks import opened_after_listener
from sim.trace import Trace, takes_over


def _trace(*events):
    trace = Trace(lambda: 0.0)
    for actor, kind, fields in events:
        trace.record(actor, kind, **fields)
    return trace


ASSIGNED = ("w1", "assigned", {"generation": 2, "tps": ["t[0]", "t[1]"]})
OPENED = ("w1", "opened", {"tps": ["t[0]", "t[1]"], "sought": 0})


def test_opening_after_the_listener_finished_is_fine():
    trace = _trace(ASSIGNED, ("w1", "taken", {"generation": 2}), OPENED)
    assert opened_after_listener(trace) is None


def test_opening_while_the_listener_runs_or_after_it_failed_is_flagged():
    violation = opened_after_listener(_trace(ASSIGNED, OPENED))
    assert violation is not None and violation.check == "opened-after-listener"
    assert "w1 opened t[0], t[1] before its rebalance listener finished" in violation.message
    assert len(violation.evidence) == 2


def test_another_workers_listener_does_not_count():
    trace = _trace(ASSIGNED, ("w2", "taken", {"generation": 2}), OPENED)
    assert opened_after_listener(trace) is not None
    restarted = _trace(ASSIGNED, ("w1", "start", {"incarnation": 2}), OPENED)
    assert opened_after_listener(restarted) is None  # a new process: that listener is gone


def test_takes_over_matches_only_assignments_that_bring_new_partitions():
    past = _trace(("w1", "assigned", {"tps": ["t[0]", "t[1]"]})).events
    matches = takes_over("w1", past)
    assert not matches(_trace(("w1", "assigned", {"tps": ["t[0]"]})).events[0])  # kept one
    assert not matches(_trace(("w2", "assigned", {"tps": ["t[2]"]})).events[0])  # another worker
    assert matches(_trace(("w1", "assigned", {"tps": ["t[0]", "t[2]"]})).events[0])


def test_a_restarted_worker_takes_over_everything_it_is_given():
    matches = takes_over("w1", _trace(("w1", "assigned", {"tps": ["t[0]"]})).events)
    assert not matches(_trace(("w1", "crash", {"incarnation": 1, "uncommitted": 0})).events[0])
    assert matches(_trace(("w1", "assigned", {"tps": ["t[0]"]})).events[0])
