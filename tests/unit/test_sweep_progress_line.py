"""The live status line of a sweep (detstream/cli/progress.py): its text, and the terminal writes.

No terminal and no sleeps: times come from a fake clock and the terminal is a
StringIO that says it is one.
"""

import io

import pytest

from detstream.cli.progress import (
    LiveLine,
    SweepProgress,
    format_duration,
    status_line,
    sweep_progress,
)


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


class FakeClock:
    def __init__(self, *times):
        self.times = list(times)

    def __call__(self):
        return self.times.pop(0)


@pytest.mark.parametrize("seconds, text", [
    (0, "0s"), (0.2, "1s"), (45, "45s"), (59.5, "1m00s"), (113, "1m53s"), (3599, "59m59s"),
    (3600, "1h00m"), (7530, "2h05m"), (-3, "0s"),
])
def test_durations_are_short_and_rounded_up(seconds, text):
    assert format_duration(seconds) == text


def test_the_line_has_done_passed_failed_rate_and_eta():
    # 37 seeds in 9 s: 4.1 seeds/s; 463 to go at that rate: 112.6 s
    assert (status_line("word_count.py", 37, 500, 1, 9.0)
            == "word_count.py  seeds 37/500  passed 36  failed 1  4.1 seeds/s  ETA 1m53s")


def test_before_the_first_seed_there_is_no_rate_to_extrapolate():
    assert status_line("app.py", 0, 20, 0, 3.0) == "app.py  seeds 0/20  passed 0  failed 0"


def test_slow_seeds_read_as_seconds_per_seed():
    assert status_line("app.py", 2, 10, 2, 25.0) == "app.py  seeds 2/10  passed 0  failed 2  12.5 s/seed  ETA 1m40s"


def test_a_narrow_terminal_shortens_the_label_not_the_counts():
    full = status_line("commit_before_processing.py", 1, 5, 0, 0.5)
    narrow = status_line("commit_before_processing.py", 1, 5, 0, 0.5, width=len(full) - 5)
    assert narrow == "~_before_processing.py  seeds 1/5  passed 1  failed 0  2.0 seeds/s  ETA 2s"
    assert len(narrow) == len(full) - 5
    assert status_line("app.py", 1, 5, 0, 0.5, width=20).startswith("seeds 1/5  passed 1")


def test_a_live_line_overwrites_the_last_one_and_clears_itself():
    stream = FakeTerminal()
    line = LiveLine(stream, columns=lambda: 40)
    line.show("a long first line")
    line.show("short")
    line.show("x" * 100)  # cut to the terminal, less its last column
    line.clear()
    line.clear()  # nothing shown: nothing to clear
    assert stream.getvalue() == ("\ra long first line" + "\rshort" + " " * 12
                                 + "\r" + "x" * 39 + "\r" + " " * 39 + "\r")


def test_on_a_terminal_each_seed_rewrites_the_line_and_leaving_clears_it():
    stream = FakeTerminal()
    clock = FakeClock(100.0, 100.0, 101.0, 102.0, 104.0)  # start, first draw, then one per seed
    with sweep_progress("app.py", 3, stream=stream, clock=clock, columns=lambda: 120) as progress:
        progress.seed_done(True)
        progress.seed_done(False)
        progress.seed_done(True)
    writes = stream.getvalue().split("\r")
    assert writes[1:5] == [
        "app.py  seeds 0/3  passed 0  failed 0",
        "app.py  seeds 1/3  passed 1  failed 0  1.0 seeds/s  ETA 2s",
        "app.py  seeds 2/3  passed 1  failed 1  1.0 seeds/s  ETA 1s",
        "app.py  seeds 3/3  passed 2  failed 1  1.3 s/seed  ETA 0s ",  # padded over the longer one
    ]
    assert writes[5:] == [" " * (len(writes[4]) - 1), ""]  # blanked, cursor back at the start
    assert (progress.done, progress.failed) == (3, 1)


def test_an_error_inside_still_clears_the_line():
    stream = FakeTerminal()
    with pytest.raises(KeyboardInterrupt), sweep_progress("app.py", 3, stream=stream, columns=lambda: 80):
        raise KeyboardInterrupt
    assert stream.getvalue().endswith(" \r")


def test_not_a_terminal_gets_nothing():
    stream = io.StringIO()
    with sweep_progress("app.py", 2, stream=stream) as progress:
        progress.seed_done(True)
        progress.clear()
        progress.seed_done(False)
    assert stream.getvalue() == "" and (progress.done, progress.failed) == (2, 1)


def test_counting_needs_no_stream():
    progress = SweepProgress("app.py", 2, None, clock=lambda: 0.0)
    progress.seed_done(False)
    assert (progress.done, progress.failed) == (1, 1)
