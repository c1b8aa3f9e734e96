"""Built-in checks over hand-made traces: what they accept and what they flag."""

from types import SimpleNamespace

from detstream._types import TP, ConsumerRecord
from sim.checks import changelog_applied_in_order, first_steps, opened_after_listener
from sim.cluster import ControlMarker, PartitionLog
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


def test_a_violation_cites_its_steps_by_position_and_as_trace_lines():
    trace = _trace(("w1", "start", {"incarnation": 2}), ASSIGNED, OPENED)
    violation = opened_after_listener(trace)
    assert violation is not None and violation.lines == [1, 2]
    assert violation.evidence == [trace.lines[1], trace.lines[2]]  # the lines as the trace has them
    assert violation.evidence[1] == "00000.000000 w1 opened tps=[t[0],t[1]] sought=0"


def test_first_steps_finds_the_first_line_of_each_record():
    first = ("w1", "deliver", {"tp": TP("t", 0), "offset": 3})
    trace = _trace(("w1", "deliver", {"tp": TP("t", 0), "offset": 2}), first, first)
    found = first_steps(trace, "deliver", [(TP("t", 0), 3), (TP("t", 1), 3)])
    assert list(found) == [(TP("t", 0), 3)] and trace.index_of(found[TP("t", 0), 3]) == 1


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


CHANGELOG = TP("t-changelog", 0)


def _changelog(entries):
    """A one-partition changelog: "r" a record, None a hole the cleaner left, "m" a marker."""
    log = PartitionLog()
    for offset, entry in enumerate(entries):
        if entry == "r":
            log.records.append(ConsumerRecord(CHANGELOG.topic, 0, offset, 0.0, b"k", b"v"))
        elif entry == "m":
            log.records.append(ControlMarker(offset, 1, True))
        else:
            log.records.append(None)
    topic = SimpleNamespace(partitions=1, logs=[log])
    return SimpleNamespace(topics={CHANGELOG.topic: topic})


def _applied(first, last, n, actor="w1", copy="standby"):
    return (actor, "changelog-applied", {"tp": CHANGELOG, "copy": copy, "first": first, "last": last, "n": n})


def test_batches_that_cover_every_committed_record_in_order_pass():
    cluster = _changelog(["r", "r", None, "r", "m", "r"])
    trace = _trace(_applied(0, 1, 2), _applied(3, 5, 2))  # the hole and the marker are never read
    assert changelog_applied_in_order(trace, cluster) is None
    holes_read_before_cleaning = _trace(_applied(0, 3, 4))
    assert changelog_applied_in_order(holes_read_before_cleaning, cluster) is None


def test_a_skipped_record_inside_a_batch_is_flagged():
    violation = changelog_applied_in_order(_trace(_applied(0, 3, 2)), _changelog(["r"] * 4))
    assert violation is not None and violation.check == "changelog-applied-in-order"
    assert "applied 2 records of offsets 0..3, where the changelog holds 4" in violation.message


def test_a_reversed_batch_is_flagged():
    violation = changelog_applied_in_order(_trace(_applied(3, 0, 4)), _changelog(["r"] * 4))
    assert violation is not None and "out of order" in violation.message


def test_a_gap_or_a_repeat_between_batches_of_one_copy_is_flagged():
    cluster = _changelog(["r"] * 6)
    gap = changelog_applied_in_order(_trace(_applied(0, 1, 2), _applied(3, 5, 3)), cluster)
    assert gap is not None and "stepping over 1 committed records" in gap.message
    assert len(gap.evidence) == 2
    repeat = changelog_applied_in_order(_trace(_applied(0, 3, 4), _applied(3, 5, 3)), cluster)
    assert repeat is not None and "again" in repeat.message


def test_a_new_assignment_or_another_copy_starts_afresh():
    cluster = _changelog(["r"] * 6)
    reassigned = _trace(_applied(0, 1, 2), ("w1", "assigned", {"tps": []}), _applied(4, 5, 2))
    assert changelog_applied_in_order(reassigned, cluster) is None
    promoted = _trace(_applied(0, 1, 2), _applied(4, 5, 2, copy="table"))
    assert changelog_applied_in_order(promoted, cluster) is None
    other_worker = _trace(_applied(0, 1, 2), _applied(4, 5, 2, actor="w2"))
    assert changelog_applied_in_order(other_worker, cluster) is None


def test_the_first_unseen_offset_skips_markers_aborted_records_holes_and_open_transactions():
    from sim.checks import _first_unseen

    def record(offset):
        return ConsumerRecord("t", 0, offset, 0.0, None, b"v", ())

    log = PartitionLog(records=[record(0), record(1), ControlMarker(2, 7, True), record(3), None,
                                record(5), record(6)])
    log.transactional = True
    log.aborted = {3}
    log.open_first = {9: 6}  # an open transaction from offset 6: past the last stable offset
    assert _first_unseen(log, {0, 1, 5}) is None
    assert _first_unseen(log, {0, 5}) == 1
    assert _first_unseen(log, {0, 1}) == 5
    log.start_offset = 2  # retention deleted 0 and 1
    assert _first_unseen(log, {5}) is None
