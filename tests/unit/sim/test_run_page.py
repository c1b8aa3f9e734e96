"""The run's HTML page (sim.run_page): same run, same bytes; self-contained; trace text kept inert.

What the page shows in a browser is tested in tests/test_run_page_browser.py.
"""

from __future__ import annotations

import json
import re

from detstream._types import TP
from sim import run_page
from sim.checks import Violation
from sim.faults import FaultPlan
from sim.runner import SimOptions, SimReport, run
from sim.trace import Trace

WORD_COUNT = "examples/word_count.py"


def test_the_same_run_gives_the_same_bytes_and_another_seed_other_bytes():
    options = SimOptions(seed=3, duration=10.0, faults="default")
    first = run_page.render(run(WORD_COUNT, options), "replay")
    assert run_page.render(run(WORD_COUNT, options), "replay") == first
    assert run_page.render(run(WORD_COUNT, SimOptions(seed=4, duration=10.0, faults="default")), "replay") != first


def hand_made(*steps, violations=()) -> SimReport:
    trace = Trace(lambda: 1.5)
    for actor, kind, fields in steps:
        trace.record(actor, kind, **fields)
    return SimReport(SimOptions(seed=7, duration=5.0), "app.py", trace, FaultPlan("none", ()),
                     violations=list(violations))


def embedded_lines(page: str) -> dict[str, str]:
    found = re.search(r'<script type="application/json" id="trace-lines">(.*?)</script>', page, re.S)
    assert found
    return dict(json.loads(found.group(1)))


EVIL = "</script><img src=x onerror=alert(1)> & <!--"


def test_trace_text_stays_text_in_the_page():
    report = hand_made(
        ("w1", "agent-error", {"agent": "a", "tp": TP("t", 0), "offset": 0, "error": EVIL}),
        violations=[Violation("mine", EVIL, [EVIL])],
    )
    page = run_page.render(report)
    assert EVIL not in page and "<img" not in page
    assert page.count("</script>") == 2  # the data and the script: nothing closes them early
    assert EVIL in embedded_lines(page)["0"]  # the line comes back whole in the browser


def test_the_page_fetches_nothing():
    page = run_page.render(hand_made(("w1", "start", {"incarnation": 2})))
    assert not re.search(r"(?i)\b(src|href)=\"(?!#)", page)  # only links within the page
    assert "http:" not in page and "https:" not in page and "@import" not in page
    assert "<style>" in page and "<script>" in page  # inline


def test_a_failed_check_links_to_the_marks_of_the_lines_it_cites():
    report = hand_made(
        ("w1", "commit-refused", {}),
        ("w1", "deliver", {"tp": TP("t", 0), "offset": 1, "key": None}),
        violations=[Violation("no-delivery-after-fenced", "w1 processed", ["x", "y"], [0, 1])],
    )
    page = run_page.render(report)
    links = re.findall(r'href="#([^"]+)"', page)
    assert links == ["chk-0", "ev-0", "ev-1"]
    for anchor in links:
        assert f'id="{anchor}"' in page


def test_a_default_example_run_makes_a_small_page():
    report = run(WORD_COUNT, SimOptions(seed=42, faults="default"))
    size = len(run_page.render(report).encode())
    assert size < 150_000, size  # about 75 KB for 5,850 trace lines
