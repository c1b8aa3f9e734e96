"""The run's page (`detstream sim ... --html`) rendered in headless Chromium.

Two pages: a word count run whose plan crashes w2, written by the command
line, and a run the `fenced-keeps-processing` mutant fails on its pinned
seed (chaos 16: `no-delivery-after-fenced`, citing two trace lines). One
Chromium, driven over the DevTools protocol (tests/chromium.py), loads them
and the tests read the DOM after the page's script ran: lanes, marks, the
tooltip a hover shows, where a failed check's links lead. Chromium's own
`--screenshot` and `--dump-dom` are checked too, the picture decoded in the
browser (a canvas) to prove it is not blank.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

import sim.mutation_score
from detstream import mutants
from detstream.cli.main import main
from sim import run_page
from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run
from tests.chromium import Browser, run_once

WORD_COUNT = "examples/word_count.py"
WIDTH, HEIGHT = 1400, 900


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("pages")
    plan = folder / "plan.json"
    plan.write_text(FaultPlan("file", ("crash",), (Fault(5.0, "crash", "w2", 3.0),)).to_json())
    crash = folder / "crash.html"
    result = CliRunner().invoke(main, ["sim", WORD_COUNT, "--seed", "1", "--duration", "12s",
                                       "--plan", str(plan), "--html", str(crash)])
    assert result.exit_code == 0, result.output
    assert f"page written to {crash} (" in result.output
    sim.mutation_score.known_mutants()
    with mutants.enabled("fenced-keeps-processing"):
        report = run(WORD_COUNT, SimOptions(seed=16, duration=20.0, faults="chaos"))
    assert [v.check for v in report.violations] == ["no-delivery-after-fenced"]
    failed = folder / "failed.html"
    run_page.write(report, failed, "replay")
    return {"crash": crash, "failed": failed, "cited": [report.trace.lines[i] for i in report.violations[0].lines]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = Browser(WIDTH, HEIGHT)
    yield chromium
    chromium.close()


def test_the_page_has_a_lane_per_worker_and_per_broker(pages, browser):
    browser.open(pages["crash"])
    assert browser.evaluate("document.body.dataset.ready") == "1"  # the script ran to its end
    workers = browser.evaluate("[...document.querySelectorAll('.lane.role-worker')].map(e => e.id)")
    brokers = browser.evaluate("[...document.querySelectorAll('.lane.role-broker')].map(e => e.id)")
    assert workers == ["lane-w1", "lane-w2", "lane-w3"] and brokers == ["lane-b1", "lane-b2", "lane-b3"]
    assert browser.evaluate("document.querySelectorAll('#lane-w1 .s-generation').length") >= 1
    assert browser.evaluate("document.querySelector('#verdict').className") == "passed"


def test_a_crash_is_marked_on_its_workers_lane_and_a_hover_shows_its_trace_line(pages, browser):
    browser.open(pages["crash"])
    assert browser.evaluate("document.querySelectorAll('#lane-w2 .s-down').length") == 1
    assert browser.evaluate("document.querySelectorAll('#lane-w1 .m-crash, #lane-w3 .m-crash').length") == 0
    assert browser.evaluate("document.getElementById('tip').hidden") is True
    browser.hover("#lane-w2 .m-crash")
    tip = browser.evaluate("[document.getElementById('tip').hidden, document.getElementById('tip').innerText]")
    assert tip[0] is False
    assert "w2 crash incarnation=1 uncommitted=" in tip[1] and "t=5.000s" in tip[1]


def test_a_failed_checks_links_lead_to_the_marks_of_the_lines_it_cites(pages, browser):
    browser.open(pages["failed"])
    links = browser.evaluate("[...document.querySelectorAll('#verdict a')].map(a => a.getAttribute('href'))")
    assert links[0] == "#chk-0" and len(links) == 3
    for link in links:  # each leads somewhere on the page
        assert browser.evaluate(f"!!document.getElementById({json.dumps(link[1:])})"), link
    cited = browser.evaluate(
        "[...document.querySelectorAll('#verdict a.cite')].map(a => {"
        " const mark = document.getElementById(a.getAttribute('href').slice(1));"
        " return [a.innerText, mark.className, mark.closest('.lane').id, mark.dataset.lines]; })"
    )
    assert [text for text, *_ in cited] == pages["cited"]  # the lines as the trace has them
    for _, classes, lane, lines in cited:
        assert "m-evidence" in classes and lane == "lane-w2" and lines.isdigit()
    browser.click("#verdict a.cite")
    pinned = browser.evaluate("[document.querySelector('.pinned').id, location.hash,"
                              " document.getElementById('detail-lines').innerText]")
    assert pinned[0] == pinned[1][1:] == links[1][1:]
    assert pages["cited"][0] in pinned[2]  # its trace line is pinned below the lanes


def test_chromiums_screenshot_of_the_page_is_a_picture_of_the_expected_size(pages, browser, tmp_path):
    shot = tmp_path / "failed.png"
    run_once([f"--window-size={WIDTH},{HEIGHT}", "--hide-scrollbars", f"--screenshot={shot}",
              pages["failed"].resolve().as_uri()])
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, HEIGHT)
    colours, inked, red = browser.evaluate(_PIXELS.replace("DATA", base64.b64encode(data).decode()))
    assert colours > 100, colours  # text, lanes and marks, not a blank or single-colour page
    assert inked > 0.05, inked  # share of pixels that are not white
    assert red > 50, red  # the failed check's box and marks


def test_dump_dom_shows_the_page_after_its_script_ran(pages):
    dom = run_once(["--dump-dom", pages["crash"].resolve().as_uri()]).stdout.decode()
    assert 'data-ready="1"' in dom and 'id="lane-w2"' in dom


#: decodes a PNG in the page (a canvas): how many colours (of a sample), the share of pixels
#: not white, and how many sampled pixels are strongly red.
_PIXELS = """(async () => {
  const image = new Image();
  image.src = "data:image/png;base64,DATA";
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.width; canvas.height = image.height;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, image.width, image.height).data;
  const colours = new Set(); let inked = 0, red = 0, seen = 0;
  for (let i = 0; i < pixels.length; i += 4 * 7) {
    const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
    colours.add((r << 16) | (g << 8) | b); seen += 1;
    if (r < 245 || g < 245 || b < 245) inked += 1;
    if (r > 180 && g < 90 && b < 90) red += 1;
  }
  return [colours.size, inked / seen, red];
})()"""
