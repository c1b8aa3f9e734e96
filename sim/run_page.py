"""The page of one run: a self-contained HTML file (``detstream sim ... --html FILE``).

Draws the lanes ``sim.timeline`` makes of a run: a row per worker process,
the consumer group, each broker, each client and the cluster, over virtual
time, with the failed checks on top linking to the steps they cite.
Hovering a mark or span shows its trace lines; clicking pins them below.

Self-contained, so it can be attached to a bug report and opened anywhere:
the CSS and the script (``run_page.css``, ``run_page.js`` beside this
module) are inlined, the histograms are inline SVG, and nothing is fetched.
The bytes depend on the run only (no clock, no randomness, every collection
in a fixed order), so the same seed gives the same page.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from .timeline import BINS, CheckResult, Lane, Mark, Span, Timeline, build

if TYPE_CHECKING:
    from .runner import SimReport

__all__ = ["render", "timeline_of", "write"]

#: the row of a worker lane each mark category is drawn on: faults on top, then what
#: happened to the process (and the steps checks cite), then its routine steps.
_ROW = {"fault": 1, "check": 1, "crash": 2, "start": 2, "stall": 2, "fenced": 2, "error": 2, "evidence": 2}
#: the legend: (mark category, what it means), then (span class, what it means).
_LEGEND_MARKS = (
    ("fault", "fault"), ("crash", "crash"), ("start", "restart"), ("stall", "stall"),
    ("fenced", "fenced / expelled"), ("error", "error"), ("commit", "commit"), ("txn", "transaction"),
    ("txn-abort", "aborted txn"), ("member", "join / leave"), ("assignment", "assignment step"),
    ("recovery", "recovery"), ("network", "network"), ("rebalance", "rebalance"), ("broker", "broker"),
    ("leader", "leader change"), ("cleaner", "cleaner"), ("evidence", "cited by a check"),
)
_LEGEND_SPANS = (
    ("s-generation", "assigned (a generation)"), ("s-recovery", "recovering"), ("s-network", "network fault"),
    ("s-stall", "stalled"), ("s-down", "down"), ("s-absent", "not running"),
)
_ROLE_NOTE = {"group": "consumer group", "broker": "broker", "cluster": "topics, cleaner",
              "checks": "at their evidence"}


def timeline_of(report: SimReport) -> Timeline:
    """The lanes of ``report``'s run."""
    options = report.options
    return build(report.trace.events, report.trace.lines, report.applied, report.violations,
                 workers=options.workers, brokers=options.brokers, duration=options.duration)


def render(report: SimReport, replay: str | None = None) -> str:
    """The page of ``report``'s run; ``replay`` is the command that reruns it, shown on top."""
    timeline = timeline_of(report)
    title = f"detstream sim {report.target} seed {report.options.seed}"
    body = "".join([
        _header(report, timeline, replay),
        _verdict(timeline),
        _summary(report),
        _toolbar(),
        _lanes(timeline),
        _detail(),
        '<div id="tip" hidden></div>\n',
        _data(timeline),
        f"<script>\n{_asset('run_page.js')}</script>\n",
    ])
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{_esc(title)}</title>\n<style>\n{_asset('run_page.css')}</style>\n</head>\n"
            f"<body>\n{body}</body>\n</html>\n")


def write(report: SimReport, path: str | Path, replay: str | None = None) -> int:
    """Write the page of ``report``'s run to ``path``; the number of bytes written."""
    data = render(report, replay).encode()
    Path(path).write_bytes(data)
    return len(data)


def _asset(name: str) -> str:
    return resources.files("sim").joinpath(name).read_text(encoding="utf-8")


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _pct(time: float, end: float) -> str:
    return f"{100.0 * time / end if end > 0 else 0.0:.3f}%"


# -- the top of the page ---------------------------------------------------------------
def _header(report: SimReport, timeline: Timeline, replay: str | None) -> str:
    options = report.options
    facts = [
        f"<b>{options.workers}</b> workers", f"<b>{options.brokers}</b> brokers",
        f"faults <b>{_esc(report.plan.profile)}</b> ({len(report.applied)} happened)",
        f"main phase <b>{options.duration:g}s</b>, run ended at <b>{timeline.end:.3f}s</b> (virtual)",
        f"<b>{timeline.total_lines}</b> trace lines",
        f"trace sha256 <code>{report.sha256}</code>",
    ]
    if options.shuffle:
        facts.insert(3, "<b>--shuffle</b>")
    if options.driver != "sim":
        facts.insert(3, f"driver <b>{_esc(options.driver)}</b>")
    text = (f'<h1>detstream sim <code>{_esc(report.target)}</code> seed {options.seed}</h1>\n'
            f'<p class="facts">{" · ".join(facts)}</p>\n')
    if replay:
        text += f'<p class="replay">replay: <code>{_esc(replay)}</code></p>\n'
    return text


def _verdict(timeline: Timeline) -> str:
    if not timeline.checks:
        return '<section id="verdict" class="passed"><h2>All checks passed</h2></section>\n'
    count = len(timeline.checks)
    items = "".join(_check_item(check, timeline) for check in timeline.checks)
    return (f'<section id="verdict" class="failed"><h2>{count} check{"s" if count > 1 else ""} failed'
            f"</h2>\n<ol>\n{items}</ol></section>\n")


def _check_item(check: CheckResult, timeline: Timeline) -> str:
    """A failed check: its message, then its evidence, each cited line linking to its mark."""
    cited = [timeline.lines[index] for index in check.lines]
    items = [f'<li><a class="cite" href="#ev-{index}"><code>{_esc(text)}</code></a></li>'
             for index, text in zip(check.lines, cited, strict=True)]
    items += [f"<li><code>{_esc(text)}</code></li>" for text in check.evidence if text not in cited]
    where = f'<a class="check-link" href="#chk-{check.number}"><b>{_esc(check.check)}</b></a>'
    text = f'<li id="check-{check.number}">{where} <span class="why">{_esc(check.message)}</span>'
    if not check.lines:
        text += f' <span class="nolines">({_no_lines(check)})</span>'
    if items:
        text += f'<ul class="evidence">{"".join(items)}</ul>'
    return text + "</li>\n"


def _no_lines(check: CheckResult) -> str:
    if check.window is None:
        return "cites no trace line: judged at the end of the run"
    start, end = check.window
    if start == end:
        return f"cites no trace line: judged at t={start:.3f}s"
    return f"cites no trace line: judged from t={start:.3f}s to t={end:.3f}s"


def _summary(report: SimReport) -> str:
    """The lines the command printed (plan, clients, workers, faults, coverage), folded away."""
    lines = "\n".join(_esc(line) for line in [*report.setup, *report.summary])
    return f'<details id="summary"><summary>The run as printed</summary><pre>{lines}</pre></details>\n'


def _toolbar() -> str:
    marks = "".join(f'<span><i class="sample"><i class="mark m-{category}"></i></i>{_esc(what)}</span>'
                    for category, what in _LEGEND_MARKS)
    spans = "".join(f'<span><i class="key {key}"></i>{_esc(what)}</span>' for key, what in _LEGEND_SPANS)
    return ('<div id="toolbar"><span>zoom <button data-zoom="out" title="zoom out (-)">\u2212</button>'
            '<button data-zoom="in" title="zoom in (+, ctrl+wheel)">+</button>'
            '<button data-zoom="fit" title="whole run (0)">fit</button> <span id="zoom-level">1\u00d7</span>'
            f'</span><div class="legend">{marks}{spans}</div></div>\n')


# -- the lanes -------------------------------------------------------------------------
def _lanes(timeline: Timeline) -> str:
    peaks: dict[str, int] = {}
    for lane in timeline.lanes:
        peaks[lane.role] = max(peaks.get(lane.role, 0), max(lane.activity or [0]))
    rows = "".join(_lane(lane, timeline.end, peaks[lane.role]) for lane in timeline.lanes)
    return (f'<div id="timeline"><div id="lanes">\n{_overlay(timeline)}{_axis(timeline)}{rows}'
            "</div></div>\n")


def _overlay(timeline: Timeline) -> str:
    """What spans every lane: grid lines, the settle phase after the main one, rebalances."""
    end = timeline.end
    parts = [f'<div class="grid{"" if major else " minor"}" style="left:{_pct(time, end)}"></div>'
             for time, major in _ticks(end)]
    if timeline.duration < end:
        width = _pct(end - timeline.duration, end)
        parts.append(f'<div class="settle" style="left:{_pct(timeline.duration, end)};width:{width}">'
                     "<span>settling</span></div>")
    parts += [f'<div class="rule" style="left:{_pct(time, end)}"></div>' for time in timeline.rebalances]
    return f'<div class="overlay">{"".join(parts)}</div>\n'


def _axis(timeline: Timeline) -> str:
    ticks = "".join(
        f'<div class="tick{"" if major else " minor"}" style="left:{_pct(time, timeline.end)}">'
        f"<span>{_seconds(time)}</span></div>"
        for time, major in _ticks(timeline.end)
    )
    return f'<div class="row axis"><div class="name">virtual time</div><div class="track">{ticks}</div></div>\n'


def _ticks(end: float) -> Iterator[tuple[float, bool]]:
    """About eight major ticks over [0, end], at 1, 2 or 5 times a power of ten; five minor per major."""
    if end <= 0:
        return
    exponent = math.floor(math.log10(end / 8))
    step = next(f * 10.0 ** exponent for f in (1, 2, 5, 10) if f * 10.0 ** exponent >= end / 8)
    minor = step / 5
    for number in range(int(end / minor) + 1):
        yield round(number * minor, 9), number % 5 == 0


def _seconds(time: float) -> str:
    return f"{time:g}s"


def _lane(lane: Lane, end: float, peak: int) -> str:
    spans = "".join(_span(span, end, odd) for span, odd in _parities(lane.spans))
    marks = "".join(_mark(mark, end, lane.role) for mark in lane.marks)
    histogram = _histogram(lane.activity, peak) if lane.activity is not None and peak else ""
    return (f'<div class="row lane role-{lane.role}" id="lane-{_esc(lane.name)}">'
            f'<div class="name" title="{_esc(lane.name)}">{_lane_name(lane)}</div>'
            f'<div class="track">{histogram}{spans}{marks}</div></div>\n')


def _lane_name(lane: Lane) -> str:
    total = sum(lane.activity or [])
    if lane.role == "worker":
        note = f"{total} events delivered"
    elif lane.role == "client":
        note = f"client, {total} records sent"
    else:
        note = _ROLE_NOTE.get(lane.role, lane.role)
    name = "failed checks" if lane.role == "checks" else lane.name
    return f"<b>{_esc(name)}</b><small>{_esc(note)}</small>"


def _parities(spans: Sequence[Span]) -> Iterator[tuple[Span, bool]]:
    """Each span, and whether it is an odd generation span (drawn lighter, so generations differ)."""
    generation = 0
    for span in spans:
        if span.category == "generation":
            generation += 1
        yield span, span.category == "generation" and generation % 2 == 0


def _span(span: Span, end: float, odd: bool) -> str:
    classes = f"span s-{span.category}" + (" odd" if odd else "")
    return (f'<div class="{classes}" style="left:{_pct(span.start, end)};'
            f'width:{_pct(max(0.0, span.end - span.start), end)}" data-t="{span.start:.3f}" '
            f'data-end="{span.end:.3f}" data-label="{_esc(span.label)}" '
            f'data-lines="{" ".join(map(str, span.lines))}"></div>')


def _mark(mark: Mark, end: float, role: str) -> str:
    row = f"row{_ROW.get(mark.category, 3)}" if role == "worker" else "row1"
    anchor = f' id="{mark.anchor}"' if mark.anchor else ""
    count = f' data-n="{mark.count}"' if mark.count > 1 else ""
    return (f'<div class="mark m-{mark.category} {row}"{anchor} style="left:{_pct(mark.time, end)}" '
            f'data-t="{mark.time:.3f}" data-end="{mark.last:.3f}"{count} data-label="{_esc(mark.label)}" '
            f'data-lines="{" ".join(map(str, mark.lines))}"></div>')


def _histogram(activity: Sequence[int], peak: int) -> str:
    """Steps per bin as one SVG path, scaled to the busiest bin of the role's lanes.

    Heights go with the square root of the count, so that a lane that did
    little next to a busy one still shows when it worked.
    """
    path = ["M0 1"]
    level = 1.0
    for number, count in enumerate(activity):
        height = round(1.0 - math.sqrt(count / peak), 3)
        if height != level:
            path.append(f"H{number}V{height:g}")
            level = height
    path.append(f"H{BINS}V1Z")
    return (f'<svg class="activity" viewBox="0 0 {BINS} 1" preserveAspectRatio="none" aria-hidden="true">'
            f'<path d="{"".join(path)}"/></svg>')


# -- the bottom of the page ------------------------------------------------------------
def _detail() -> str:
    return ('<section id="detail"><h2>Trace lines</h2><p class="hint" id="detail-what">Hover a mark or '
            "a span to see its trace lines; click it to pin them here. Numbers are trace lines "
            "(#1 is the first line after a --trace file's header).</p><div id=\"detail-lines\"></div>"
            "</section>\n")


def _data(timeline: Timeline) -> str:
    """The text of every line the page shows, as JSON that cannot close its script element."""
    text = json.dumps({str(index): line for index, line in timeline.lines.items()},
                      ensure_ascii=True, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="trace-lines">{text}</script>\n'
