"""The final read: honest on clean runs, and it catches planted losses and duplicates."""

import pytest

from detstream._types import TP
from sim.final_read import final_read
from sim.history import Write
from sim.runner import SimOptions, run

WORD_COUNT = "examples/word_count.py"


@pytest.fixture
def cluster():
    """The cluster after a clean exactly-once word count run, for a test to tamper with."""
    report = run(WORD_COUNT, SimOptions(seed=5, duration=10.0))
    assert report.ok, report.violations
    return report.cluster


def acked_output(cluster, topic):
    """A visible, acknowledged write of ``topic`` made while processing an input event."""
    visible = {(r.tp, r.offset) for r in cluster.records(topic)}
    return next(
        w for w in cluster.history.writes
        if w.tp.topic == topic and w.acked and w.origin is not None and (w.tp, w.offsets[0]) in visible
    )


def log_of(cluster, tp):
    return cluster.topics[tp.topic].logs[tp.partition]


def test_clean_run_reads_everything_and_finds_nothing(cluster):
    read = final_read(cluster, exactly_once=True)
    assert read.violations == []
    topics = {w.tp.topic for w in cluster.history.writes}
    assert {"sentences", "words", "word-count-word_counts-changelog"} <= topics
    assert read.records >= len([w for w in cluster.history.writes if w.acked]) // 2


def test_planted_loss_of_an_output_record_is_caught(cluster):
    write = acked_output(cluster, "words")
    log_of(cluster, write.tp).records[write.offsets[0]] = None  # gone, in a topic nobody compacts
    read = final_read(cluster, exactly_once=True)
    assert [v.check for v in read.violations] == ["final-read-lost"]
    assert str(write.tp) in read.violations[0].evidence[0]
    [cited] = read.violations[0].lines  # the trace line where the lost write had landed
    step = cluster.trace.events[cited]
    assert (step.kind, step.fields["tp"], step.fields["offset"]) == ("produce", write.tp, write.offsets[0])


def test_planted_truncation_of_the_input_is_caught(cluster):
    log = log_of(cluster, TP("sentences", 0))
    del log.records[-2:]  # an unclean leader election would do this
    read = final_read(cluster, exactly_once=True)
    assert read.violations and read.violations[0].check == "final-read-lost"
    assert "truncated" in read.violations[0].evidence[0]


def test_planted_duplicate_of_an_idempotent_send_is_caught(cluster):
    write = acked_output(cluster, "words")
    meta = cluster.append("planted", write.tp, key=write.key, value=write.value, timestamp=0.0)
    cluster.history.appended(write, meta.offset)  # the same send, appended a second time
    read = final_read(cluster, exactly_once=True)
    assert [v.check for v in read.violations] == ["final-read-duplicate"]
    assert "idempotent" in read.violations[0].message


def test_planted_second_attempt_of_an_event_is_a_duplicate_only_under_exactly_once(cluster):
    first = acked_output(cluster, "word-count-word_counts-changelog")
    origin = first.origin._replace(attempt=first.origin.attempt + 10_000)
    again = Write("planted", first.tp, first.key, first.value, True, True, origin, acked=True)
    cluster.history.writes.append(again)
    meta = cluster.append("planted", first.tp, key=first.key, value=first.value, timestamp=0.0)
    cluster.history.appended(again, meta.offset)
    exactly_once = final_read(cluster, exactly_once=True)
    assert [v.check for v in exactly_once.violations] == ["final-read-duplicate"]
    assert "more than one attempt" in exactly_once.violations[0].message
    at_least_once = final_read(cluster, exactly_once=False)
    assert at_least_once.violations == [] and at_least_once.duplicate_results == 1


def test_compaction_and_aborted_transactions_are_not_losses():
    report = run(WORD_COUNT, SimOptions(seed=5, duration=40.0, faults="chaos"))
    assert report.ok, report.violations
    cluster = report.cluster
    assert any(e.kind == "compact" for e in report.trace.events)
    holes = [
        (name, log) for name, topic in cluster.topics.items() for log in topic.logs
        if any(entry is None for entry in log.records)
    ]
    assert holes  # acked changelog writes compaction removed: allowed, not lost
    assert final_read(cluster, exactly_once=True).violations == []
