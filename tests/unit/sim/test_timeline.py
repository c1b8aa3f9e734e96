"""A run as lanes (sim.timeline): what the page draws, from hand-made traces, without a browser."""

from __future__ import annotations

from typing import Any

from detstream._types import TP
from sim.checks import Violation
from sim.faults import Fault
from sim.timeline import BINS, LINES_PER_MARK, Lane, Timeline, build
from sim.trace import Trace


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def trace_of(*steps: tuple[float, str, str, dict[str, Any]]) -> Trace:
    """A trace of (time, actor, kind, fields) steps."""
    clock = Clock()
    trace = Trace(clock)
    for time, actor, kind, fields in steps:
        clock.now = time
        trace.record(actor, kind, **fields)
    return trace


def timeline(trace: Trace, *, faults=(), violations=(), workers=2, brokers=1, duration=10.0) -> Timeline:
    return build(trace.events, trace.lines, faults, violations, workers=workers, brokers=brokers,
                 duration=duration)


def lane(built: Timeline, name: str) -> Lane:
    return next(lane for lane in built.lanes if lane.name == name)


def spans(built: Timeline, name: str) -> list[tuple[float, float, str]]:
    return [(s.start, s.end, s.category) for s in lane(built, name).spans]


def categories(built: Timeline, name: str) -> list[str]:
    return [mark.category for mark in lane(built, name).marks]


CRASH = Fault(4.0, "crash", "w1", 2.0)


def test_a_crash_is_a_fault_a_crash_mark_and_a_down_span_until_the_restart():
    trace = trace_of(
        (1.0, "w1", "assigned", {"generation": 1, "tps": ["t[0]", "t[1]"]}),
        (4.0, "faults", "fault", {"fault": "crash", "worker": "w1"}),
        (4.0, "w1", "crash", {"incarnation": 1, "uncommitted": 2}),
        (6.0, "w1", "start", {"incarnation": 2}),
    )
    built = timeline(trace, faults=[CRASH])
    assert spans(built, "w1") == [(1.0, 4.0, "generation"), (4.0, 6.0, "down")]
    generation, down = lane(built, "w1").spans
    assert generation.label == "generation 1: 2 partitions" and down.lines == (2, 3)
    assert categories(built, "w1") == ["assignment", "crash", "fault", "start"]
    fault = next(m for m in lane(built, "w1").marks if m.category == "fault")
    assert fault.label == "fault crash w1 (down 2.000s)"  # from the fault that happened
    assert built.lines[2] == trace.lines[2]  # the text the page shows on hover


def test_a_fault_line_takes_the_next_applied_fault_of_its_kind_and_target():
    delay = Fault(2.0, "delay", "w1", 3.0, latency=0.5)
    trace = trace_of(
        (1.0, "faults", "fault-skipped", {"fault": "crash", "worker": "w1"}),
        (2.0, "faults", "fault", {"fault": "delay", "worker": "w1"}),
        (4.0, "faults", "fault", {"fault": "crash", "worker": "w1"}),
    )
    built = timeline(trace, faults=[delay, CRASH])
    labels = [m.label for m in lane(built, "w1").marks]
    assert labels == ["fault-skipped fault=crash worker=w1", "fault delay w1 (+0.500s for 3.000s)",
                      "fault crash w1 (down 2.000s)"]
    assert (2.0, 5.0, "network") in spans(built, "w1")  # the delay lasts its downtime


def test_a_worker_that_leaves_is_shown_absent_to_the_end_and_a_late_one_until_it_starts():
    trace = trace_of(
        (2.0, "faults", "fault", {"fault": "leave", "worker": "w1"}),
        (3.0, "faults", "fault", {"fault": "join", "worker": "w3"}),
        (3.5, "w3", "create-topic", {"topic": "t", "partitions": 1}),
        (12.0, "w2", "start", {"incarnation": 2}),
    )
    built = timeline(trace, faults=[Fault(2.0, "leave", "w1"), Fault(3.0, "join", "w3")])
    assert spans(built, "w1") == [(2.0, 12.0, "absent")]
    assert spans(built, "w3") == [(0.0, 3.0, "absent")]
    assert built.end == 12.0 and built.duration == 10.0


def test_a_lane_of_routine_steps_only_is_left_out_but_every_broker_has_one():
    trace = trace_of((0.0, "operator", "create-topic", {"topic": "t", "partitions": 1}))
    assert [lane.name for lane in timeline(trace, brokers=2).lanes] == ["b1", "b2"]


def test_group_steps_go_to_the_members_worker_and_rebalances_to_the_group():
    trace = trace_of(
        (0.1, "app", "member-join", {"member": "ab12:w2-1"}),
        (3.0, "app", "rebalance", {"generation": 1, "leader": "ab12:w2-1", "members": ["ab12:w2-1"]}),
        (3.0, "app", "assign", {"generation": 1, "member": "ab12:w2-1", "tps": ["t[0]"]}),
        (5.0, "app", "commit", {"member": "ab12:w2-1", "tp": TP("t", 0), "offset": 3}),
        (6.0, "app", "commit", {"member": None, "tp": TP("t", 0), "offset": 4}),
    )
    built = timeline(trace)
    assert categories(built, "w2") == ["member", "commit"]
    assert categories(built, "app") == ["rebalance", "commit"]  # a commit of no member stays there
    assert lane(built, "app").role == "group" and built.rebalances == [3.0]


def test_static_membership_steps_go_to_the_members_worker():
    trace = trace_of(
        (0.1, "app", "member-join", {"member": "ab12:w1-1", "instance": "w1"}),
        (4.0, "app", "member-replaced", {"instance": "w1", "replaced": "ab12:w1-1", "member": "cd34:w1-2"}),
        (5.0, "app", "instance-fenced", {"member": "ab12:w1-1", "instance": "w1", "request": "heartbeat"}),
        (5.0, "w1", "instance-fenced", {"instance": "w1", "told": "heartbeat"}),
    )
    built = timeline(trace, workers=1)
    assert categories(built, "w1") == ["member", "member", "fenced"]
    assert lane(built, "w1").marks[-1].count == 2  # the group's line and the worker's, merged


def test_a_twins_transactions_are_told_apart_by_their_producer_epoch():
    trace = trace_of(
        (0.5, "app-w2", "txn-init", {"producer": 1, "epoch": 0}),
        (1.0, "app-w2", "txn-begin", {"epoch": 0, "txn": 1}),
        (2.0, "w2'", "start", {"incarnation": 2}),
        (2.1, "app-w2", "txn-init", {"producer": 1, "epoch": 1}),
        (3.0, "app-w2", "txn-commit", {"epoch": 1, "txn": 1, "tps": [], "offsets": 0}),
        (4.0, "app-w2", "txn-fenced", {"epoch": 0, "current": 1, "request": "commit"}),
    )
    built = timeline(trace)
    assert categories(built, "w2") == ["txn", "fenced"]  # the zombie: its init, then it is fenced
    assert categories(built, "w2'") == ["start", "txn", "txn"]
    assert spans(built, "w2'") == [(0.0, 2.0, "absent")]  # the replacement did not run before


def test_brokers_have_lanes_with_their_down_time_and_leader_changes():
    trace = trace_of(
        (2.0, "controller", "broker-crash", {"broker": "b1"}),
        (2.0, "controller", "leader", {"tp": TP("t", 0), "leader": "b2", "previous": "b1", "reason": "failover"}),
        (5.0, "controller", "broker-restart", {"broker": "b1"}),
    )
    built = timeline(trace, brokers=3)
    assert spans(built, "b1") == [(2.0, 5.0, "down")]
    assert categories(built, "b1") == ["broker", "leader", "broker"]
    assert categories(built, "b2") == ["leader"]  # the same line, on the new leader's lane too
    assert lane(built, "b3").marks == [] and lane(built, "b3").role == "broker"


def test_frequent_steps_merge_into_a_bounded_number_of_marks_and_deliveries_into_a_histogram():
    steps = []
    for number in range(2000):
        time = number * 0.005
        steps.append((time, "app", "commit", {"member": "ab12:w1-1", "tp": TP("t", 0), "offset": number}))
        steps.append((time, "w1", "deliver", {"tp": TP("t", 0), "offset": number, "key": None}))
    built = timeline(trace_of(*steps))
    marks = lane(built, "w1").marks
    assert {m.category for m in marks} == {"commit"} and len(marks) <= BINS
    assert sum(m.count for m in marks) == 2000
    assert all(len(m.lines) <= LINES_PER_MARK for m in marks)
    assert marks[0].label == f"{marks[0].count} steps: {marks[0].count} commit"
    assert sum(lane(built, "w1").activity or []) == 2000  # deliveries: counted, never marked
    assert len(built.lines) <= LINES_PER_MARK * len(marks)  # the page carries only what it shows


def test_cited_steps_get_marks_of_their_own_and_each_check_a_mark_where_it_shows():
    trace = trace_of(
        (1.0, "w1", "deliver", {"tp": TP("t", 0), "offset": 0, "key": None}),
        (2.0, "w1", "commit-refused", {}),
        (3.0, "w1", "deliver", {"tp": TP("t", 0), "offset": 1, "key": None}),
    )
    violations = [
        Violation("no-delivery-after-fenced", "w1 processed", [trace.lines[1], trace.lines[2]], [1, 2]),
        Violation("graceful-stop", "too slow", window=(4.0, 64.0)),
        Violation("counts_equal_input", "assertion failed"),
    ]
    built = timeline(trace, violations=violations)
    cited = [m for m in lane(built, "w1").marks if m.category == "evidence"]
    assert [(m.anchor, m.lines, m.time) for m in cited] == [("ev-1", (1,), 2.0), ("ev-2", (2,), 3.0)]
    assert built.lanes[0].name == "checks" and built.end == 64.0  # the window is in view
    marks = built.lanes[0].marks
    assert [(m.anchor, m.time) for m in marks] == [("chk-0", 2.0), ("chk-1", 4.0), ("chk-2", 64.0)]
    assert [c.lines for c in built.checks] == [(1, 2), (), ()]
    assert built.lines[2] == trace.lines[2]


def test_lanes_come_in_a_fixed_order():
    trace = trace_of(
        (0.0, "feed", "produce", {"tp": TP("t", 0), "offset": 0, "key": None, "value": b"x"}),
        (0.0, "cleaner", "compact", {"tp": TP("t", 0), "removed": 1, "tombstones": 0}),
        (0.0, "w10", "start", {"incarnation": 2}),
        (0.0, "w2'", "start", {"incarnation": 2}),
        (0.0, "w2", "start", {"incarnation": 2}),
        (0.0, "app", "rebalance", {"generation": 1, "leader": "-", "members": []}),
        (0.0, "w1", "start", {"incarnation": 2}),
    )
    built = timeline(trace, violations=[Violation("x", "y")], brokers=2)
    assert [lane.name for lane in built.lanes] == [
        "checks", "w1", "w2", "w2'", "w10", "app", "b1", "b2", "feed", "cluster"]
    assert sum(lane(built, "feed").activity or []) == 1
