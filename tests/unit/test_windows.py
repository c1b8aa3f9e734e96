"""Window math: the ranges Faust computes, as float seconds, and clear errors for bad windows."""

from datetime import timedelta

import pytest

import detstream
from detstream.errors import InvalidArgument
from detstream.windows import HoppingWindow, SlidingWindow, TumblingWindow, window_range_from_start


def test_range_end_is_start_plus_size_minus_a_tenth():
    assert window_range_from_start(60, 60) == (60.0, 119.9)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (0.0, (0.0, 9.9)),
        (9.95, (0.0, 9.9)),  # past the end but before the next start: still this window
        (10.0, (10.0, 19.9)),  # a boundary belongs to the window it starts
        (12.5, (10.0, 19.9)),
        (1_700_000_012.0, (1_700_000_010.0, 1_700_000_019.9)),
    ],
)
def test_tumbling_window_holds_each_timestamp_once(timestamp, expected):
    window = TumblingWindow(10)
    assert window.ranges(timestamp) == [expected]
    assert window.current(timestamp) == expected
    assert window.earliest(timestamp) == expected


def test_hopping_window_timestamp_falls_in_size_over_step_windows():
    window = HoppingWindow(size=10, step=5)
    assert window.ranges(12) == [(5.0, 14.9), (10.0, 19.9)]
    assert window.ranges(15) == [(10.0, 19.9), (15.0, 24.9)]
    assert window.current(12) == (10.0, 19.9)  # the latest window
    assert window.earliest(12) == (5.0, 14.9)  # the oldest window
    assert len(HoppingWindow(60, 10).ranges(1_700_000_035)) == 6


def test_hopping_ranges_equal_fausts_for_whole_seconds():
    """Faust: starts range(int(first), int(ts) + 1, int(step)), first = ts // step * step - size + step."""
    for size, step in [(10, 5), (60, 10), (30, 30), (7, 3)]:
        window = HoppingWindow(size, step)
        for ts in [0, 1, 4.5, 29, 30, 61.7, 1_700_000_003]:
            first = (ts // step) * step - size + step
            faust = [(float(s), s + size - 0.1) for s in range(int(first), int(ts) + 1, int(step))]
            assert window.ranges(ts) == faust, (size, step, ts)


def test_every_hopping_range_contains_its_timestamp():
    window = HoppingWindow(size=1.5, step=0.5)
    for ts in [0.0, 0.25, 1.0, 3.75, 100.5]:
        ranges = window.ranges(ts)
        assert len(ranges) == 3
        assert all(start <= ts <= end + 0.1 for start, end in ranges)


def test_delta_is_the_window_of_an_earlier_time():
    window = TumblingWindow(60)
    assert window.delta(130, 60) == (60.0, 119.9)
    assert window.delta(130, timedelta(minutes=2)) == (0.0, 59.9)


def test_sliding_window_is_one_range_around_the_timestamp():
    window = SlidingWindow(before=5, after=2, expires=60)
    assert window.ranges(100) == [(95.0, 102.0)]
    assert window.current(100) == window.earliest(100) == (95.0, 102.0)
    assert window.stale(39, 100) and not window.stale(41, 100)


def test_staleness_is_relative_to_expires():
    window = TumblingWindow(10, expires=timedelta(seconds=30))
    assert window.expires == 30.0
    # stale: the window ended at or before the start of the window 30 s before "now"
    assert window.stale(9.9, 45)
    assert not window.stale(19.9, 45)  # 45 - 30 = 15 falls in the window starting at 10
    assert window.stale(19.9, 50)
    assert not TumblingWindow(10).stale(0, 1e12)  # no expires: kept forever


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: HoppingWindow(10, 0), "step must be > 0"),
        (lambda: HoppingWindow(10, -5), "step must be > 0"),
        (lambda: HoppingWindow(0, 1), "size must be > 0"),
        (lambda: HoppingWindow(10, 20), "must not exceed its size"),
        (lambda: TumblingWindow("10"), "number of seconds or a timedelta"),
        (lambda: TumblingWindow(10, expires=0), "expires must be > 0"),
        (lambda: SlidingWindow(-1, 1, 10), "before and after must be >= 0"),
    ],
)
def test_bad_windows_are_refused_clearly(make, message):
    with pytest.raises(InvalidArgument, match=message):
        make()


def test_public_names():
    assert detstream.TumblingWindow is TumblingWindow
    assert isinstance(detstream.HoppingWindow(2, 1), detstream.Window)
    assert detstream.TumblingWindow(5, 10) == TumblingWindow(5, expires=10)
    assert TumblingWindow(5) != HoppingWindow(5, 5)
