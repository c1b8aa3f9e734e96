from detstream._types import TP
from detstream.engine.acks import OffsetTracker

TP0 = TP("t", 0)


def test_commit_point_stops_at_first_unacked():
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.delivered(TP0, offset)
    tracker.acked(TP0, 0)
    tracker.acked(TP0, 2)
    tracker.acked(TP0, 3)
    assert tracker.to_commit() == {TP0: 1}
    tracker.acked(TP0, 1)
    assert tracker.to_commit() == {TP0: 4}
    assert tracker.in_flight(TP0) == 1


def test_gaps_in_offsets_do_not_block():
    tracker = OffsetTracker()
    for offset in (3, 7, 8):  # 4..6 compacted away / transaction markers
        tracker.delivered(TP0, offset)
    for offset in (3, 7, 8):
        tracker.acked(TP0, offset)
    assert tracker.to_commit() == {TP0: 9}


def test_committed_offsets_are_not_repeated_and_forget_drops_state():
    tracker = OffsetTracker()
    tracker.delivered(TP0, 0)
    tracker.acked(TP0, 0)
    offsets = tracker.to_commit()
    tracker.committed(offsets)
    assert tracker.to_commit() == {}
    tracker.delivered(TP0, 1)
    tracker.forget({TP0})
    assert tracker.to_commit() == {} and tracker.in_flight(TP0) == 0
