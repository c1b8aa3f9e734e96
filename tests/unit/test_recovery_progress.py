"""Recovery's log lines read as English: plurals, and why fewer records than offsets came."""

import logging

from detstream._types import TP
from detstream.tables.recovery_progress import RecoveryProgress, counted
from sim.testing import run_sandboxed


def recover(spans, applied, promoted=frozenset()):
    """Run one table's recovery through RecoveryProgress; its log lines."""
    async def main():
        progress = RecoveryProgress()
        progress.begin("counts", spans, set(promoted))
        for tp, (_start, end) in sorted(spans.items()):
            progress.applied(tp, applied.get(tp, 0), end)
            progress.partition_done(tp, end)

    run_sandboxed(main, seed=1)


def lines(caplog):
    return [r.getMessage() for r in caplog.records if r.name == "detstream.tables.recovery"]


def test_counted_says_one_thing_and_many_things():
    assert [counted(n, "partition") for n in (0, 1, 2)] == ["0 partitions", "1 partition", "2 partitions"]


def test_one_partition_of_markers_only_says_why_nothing_was_applied(caplog):
    caplog.set_level(logging.INFO)
    recover({TP("counts-changelog", 0): (0, 7)}, applied={})
    begin, end = lines(caplog)
    assert begin == "Recovering table 'counts': 7 changelog records in 1 partition (0 continue a standby)"
    assert end.startswith(
        "Recovered table 'counts': 0 changelog records (7 of its 7 changelog offsets held "
        "transaction markers or records compacted away) from 1 partition in ")
    assert end.endswith("(0 continued a standby)")


def test_every_offset_a_record_and_one_promoted_standby(caplog):
    caplog.set_level(logging.INFO)
    one, two = TP("counts-changelog", 0), TP("counts-changelog", 1)
    recover({one: (0, 1), two: (3, 4)}, applied={one: 1, two: 1}, promoted={two})
    begin, end = lines(caplog)
    assert begin == "Recovering table 'counts': 2 changelog records in 2 partitions (1 continues a standby)"
    assert end.startswith("Recovered table 'counts': 2 changelog records from 2 partitions in ")
    assert end.endswith("(1 continued a standby)")
