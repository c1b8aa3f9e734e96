"""One run as lanes over virtual time: what the run's HTML page draws (``sim.run_page``).

``build`` reads the trace once, with the fault plan and the failed checks,
and sorts every step onto a lane (``sim.lane_routes``): one per worker
process, per broker, for the consumer group, per client, and one for the
cluster's background work. A lane holds *spans* (a worker down or stalled,
the generation of its assignment, a table recovery, a network fault, a
broker down) and *marks* (a crash, a restart, a fault, a commit, a
transaction, an error ...), each with the positions of the trace lines it
stands for, so the page can show them.

A long run has tens of thousands of lines, so the page must not get one
element per line. Deliveries (and a client's produces) are counted into a
histogram of ``BINS`` bins per lane; other steps of one category that fall
into one bin become one mark, keeping its first ``LINES_PER_MARK`` lines.
A lane thus has at most ``BINS`` marks per category however long the run.
The steps a failed check cites are never merged: each gets a mark of its
own (``ev-N``, N its trace position) for the check to link to.

Kept apart from the HTML so that what the page shows is tested without a
browser, and the HTML writer only draws.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .checks import Violation
from .faults import Fault
from .lane_routes import LaneRouter
from .trace import TraceEvent

#: histogram bins, and mark bins per category, over the whole run.
BINS = 240
#: trace lines a merged mark (or a span) keeps for the page: its first ones.
LINES_PER_MARK = 6

#: the category of each kind of step that gets a mark (others: ``other``).
CATEGORY: dict[str, str] = {
    "fault": "fault", "fault-skipped": "fault",
    "crash": "crash", "app-crashed": "crash",
    "start": "start", "start-skipped": "start",
    "stall": "stall", "stall-end": "stall", "stall-holds-group": "stall",
    "rebalance": "rebalance", "assign": "rebalance",
    "assigned": "assignment", "taken": "assignment", "opened": "assignment", "revoked": "assignment",
    "lost": "assignment", "assigned-while-stopping": "assignment", "rebalance-at-stop": "assignment",
    "member-join": "member", "member-leave": "member", "member-replaced": "member",
    "static-leave-skipped": "member",
    "member-expired": "fenced", "commit-rejected": "fenced", "commit-refused": "fenced",
    "txn-fenced": "fenced", "instance-fenced": "fenced",
    "commit": "commit", "offsets-accepted": "commit",
    "txn-init": "txn", "txn-commit": "txn",
    "txn-abort": "txn-abort", "txn-abandoned": "txn-abort",
    "recovery-start": "recovery", "recovery-done": "recovery", "recovery-reset": "recovery",
    "standby-promoted": "recovery", "standby-reset": "recovery",
    "global-recovery-start": "recovery", "global-recovery-done": "recovery",
    "broker-crash": "broker", "broker-shutdown": "broker", "broker-restart": "broker",
    "leader": "leader",
    "compact": "cleaner", "retention": "cleaner",
    **dict.fromkeys((
        "agent-error", "engine-error", "send-failed", "send-refused", "produce-refused",
        "decode-error", "timer-error", "crontab-error", "window-close-error",
        "changelog-decode-error", "changelog-decode-skip", "stop-gave-up", "wait-idle-timeout",
        "standby-error", "producer-sender-dead", "fetch-denied", "commit-denied",
        "produce-denied", "offset-lookup-denied",
    ), "error"),
    **dict.fromkeys((
        "request-dropped", "retried", "request-after-crash", "request-abandoned", "group-request-held",
        "produce-deduped", "listener-lag", "admin-node-not-ready",
    ), "network"),
}
#: steps too frequent or too routine for a mark of their own (their lines stay in the trace).
QUIET = frozenset({
    "deliver", "produce", "table-write", "txn-begin", "changelog-applied", "timer", "crontab",
    "reply", "reply-sent", "window-close", "create-topic",
})
#: the step a lane of each role counts in its histogram.
ACTIVITY = {"worker": "deliver", "client": "produce"}
#: fault kinds that act on a host's network or permissions for their downtime: drawn as spans.
_WINDOW_FAULTS = frozenset({"delay", "drop", "refuse", "deny_reads", "cut"})
#: the order of lanes by role, top to bottom.
_ROLE_ORDER = ("checks", "worker", "group", "broker", "client", "cluster")


@dataclass(frozen=True)
class Mark:
    """A point on a lane: one step, or several of one category merged (``count``)."""

    time: float
    category: str
    label: str
    #: trace positions of the lines it shows (the first ``LINES_PER_MARK`` of a merged mark).
    lines: tuple[int, ...]
    count: int = 1
    #: time of the last step merged into it (``time`` for one step).
    last: float = 0.0
    #: the page anchor a check links to (``ev-N``, ``chk-N``), or "".
    anchor: str = ""


@dataclass(frozen=True)
class Span:
    """A stretch of a lane: down, stalled, a generation's assignment, a recovery, a fault window."""

    start: float
    end: float
    category: str
    label: str
    lines: tuple[int, ...]


@dataclass
class Lane:
    name: str
    #: ``checks``, ``worker``, ``group``, ``broker``, ``client`` or ``cluster``.
    role: str
    spans: list[Span] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    #: steps counted per bin (a worker's deliveries, a client's produces), or None.
    activity: list[int] | None = None


@dataclass(frozen=True)
class CheckResult:
    """A failed check as the page lists it: where its mark is, and the lines it cites."""

    number: int
    check: str
    message: str
    evidence: tuple[str, ...]
    lines: tuple[int, ...]
    time: float
    window: tuple[float, float] | None


@dataclass
class Timeline:
    #: virtual time of the last step (or of the main phase's end, if later).
    end: float
    #: virtual seconds of the main phase (clients and faults); the run settles after it.
    duration: float
    lanes: list[Lane]
    checks: list[CheckResult]
    #: the text of every trace line a mark, span or check refers to, by position.
    lines: dict[int, str]
    total_lines: int
    #: times of the group's rebalances (drawn across every lane).
    rebalances: list[float]


class _Scale:
    """Virtual time to bin: ``BINS`` equal bins over [0, end]."""

    def __init__(self, end: float) -> None:
        self.end = end

    def bin(self, time: float) -> int:
        if self.end <= 0:
            return 0
        return min(BINS - 1, max(0, int(time / self.end * BINS)))


@dataclass
class _Open:
    start: float
    category: str
    label: str
    lines: list[int]


class _LaneBuilder:
    """One lane in the making: its steps to mark, its open spans, its histogram."""

    def __init__(self, name: str, role: str, scale: _Scale) -> None:
        self.lane = Lane(name, role, activity=[0] * BINS if role in ACTIVITY else None)
        self.scale = scale
        self.first: float | None = None
        self._steps: list[tuple[int, TraceEvent, str]] = []
        self._open: dict[str, _Open] = {}
        self._labels: dict[int, str] = {}

    def add(self, index: int, event: TraceEvent, fault: Fault | None) -> None:
        if self.first is None:
            self.first = event.time
        activity = self.lane.activity
        if activity is not None and event.kind == ACTIVITY[self.lane.role]:
            activity[self.scale.bin(event.time)] += 1
            return
        _FOLLOW.get(self.lane.role, _follow_nothing)(self, index, event, fault)
        if event.kind not in QUIET:
            self._steps.append((index, event, CATEGORY.get(event.kind, "other")))
            if fault is not None:
                self._labels[index] = "fault " + fault.describe().split(" ", 1)[1]

    def open(self, key: str, time: float, category: str, label: str, index: int) -> None:
        """Start a span (a step that continues an open one adds its line to it)."""
        current = self._open.get(key)
        if current is not None:
            current.lines.append(index)
        else:
            self._open[key] = _Open(time, category, label, [index])

    def close(self, key: str, time: float, index: int | None = None) -> None:
        span = self._open.pop(key, None)
        if span is not None:
            lines = span.lines[: LINES_PER_MARK - 1] + ([index] if index is not None else [])
            self.lane.spans.append(Span(span.start, time, span.category, span.label, tuple(lines)))

    def span(self, start: float, end: float, category: str, label: str, index: int) -> None:
        self.lane.spans.append(Span(start, min(end, self.scale.end), category, label, (index,)))

    def finish(self, text: Sequence[str], absent_until: float) -> Lane:
        for key in sorted(self._open):
            self.close(key, self.scale.end)
        if absent_until > 0:
            self.lane.spans.append(Span(0.0, absent_until, "absent", "not started yet", ()))
        self.lane.spans.sort(key=lambda s: (s.start, s.category, s.end))
        self.lane.marks = _merge(self._steps, self.scale, lambda i: self._labels.get(i) or _label(text[i]))
        return self.lane


def _label(line: str) -> str:
    """A step as a mark's title: its line without the time and actor, cut at 160 characters."""
    parts = line.split(" ", 2)
    rest = parts[2] if len(parts) == 3 else line
    return rest if len(rest) <= 160 else rest[:157] + "..."


def _merge(steps: list[tuple[int, TraceEvent, str]], scale: _Scale,
           label: Callable[[int], str]) -> list[Mark]:
    """One mark per category and bin: a long run gets more steps per mark, not more marks."""
    groups: dict[tuple[str, int], list[tuple[int, TraceEvent]]] = {}
    for index, event, category in steps:
        groups.setdefault((category, scale.bin(event.time)), []).append((index, event))
    marks = [_mark(category, group, label) for (category, _), group in groups.items()]
    marks.sort(key=lambda m: (m.time, m.category, m.lines))
    return marks


def _mark(category: str, group: list[tuple[int, TraceEvent]], label: Callable[[int], str]) -> Mark:
    first_index, first = group[0]
    if len(group) == 1:
        return Mark(first.time, category, label(first_index), (first_index,), 1, first.time)
    kinds = Counter(event.kind for _, event in group)
    text = f"{len(group)} steps: " + ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
    lines = tuple(index for index, _ in group[:LINES_PER_MARK])
    return Mark(first.time, category, text, lines, len(group), group[-1][1].time)


def _follow_nothing(lane: _LaneBuilder, index: int, event: TraceEvent, fault: Fault | None) -> None:
    """Lanes without spans (the group, clients, the cluster)."""


def _follow_worker(lane: _LaneBuilder, index: int, event: TraceEvent, fault: Fault | None) -> None:
    """A worker process's spans: down, stalled, each generation's assignment, recoveries, faults."""
    kind, time, fields = event.kind, event.time, event.fields
    if kind in ("crash", "app-crashed"):
        for key in ("generation", "recovery", "stall"):
            lane.close(key, time, index)
        lane.open("down", time, "down", "down: killed, not restarted yet", index)
    elif kind == "start":
        lane.close("down", time, index)
    elif kind == "stall":
        lane.open("stall", time, "stall", f"stalled: a zombie for {fields.get('duration')}s", index)
    elif kind == "stall-end":
        lane.close("stall", time, index)
    elif kind == "assigned":
        lane.close("generation", time)
        tps = fields.get("tps") or ()
        lane.open("generation", time, "generation",
                  f"generation {fields.get('generation')}: {len(tps)} partitions", index)
    elif kind in ("revoked", "lost"):
        lane.close("generation", time, index)
        lane.close("recovery", time, index)
    elif kind == "recovery-start":
        lane.open("recovery", time, "recovery", "recovering tables", index)
    elif kind == "recovery-done":
        lane.close("recovery", time, index)
    elif fault is not None and kind == "fault":
        _fault_span(lane, index, time, fault)


def _fault_span(lane: _LaneBuilder, index: int, time: float, fault: Fault) -> None:
    """A network or permission fault lasts its downtime; a ``leave`` lasts to the end."""
    if fault.kind in _WINDOW_FAULTS or fault.unreachable:
        what = "unreachable" if fault.unreachable else fault.kind
        lane.span(time, time + fault.downtime, "network", f"{what}: " + fault.describe().split(" ", 1)[1], index)
    elif fault.kind == "leave":
        lane.open("gone", time, "absent", "left the group for good", index)


def _follow_broker(lane: _LaneBuilder, index: int, event: TraceEvent, fault: Fault | None) -> None:
    """A broker's down time: from its crash or controlled shutdown to its restart."""
    if event.kind == "broker-crash":
        lane.open("down", event.time, "down", "crashed", index)
    elif event.kind == "broker-shutdown":
        lane.open("down", event.time, "down", "shut down (controlled)", index)
    elif event.kind == "broker-restart":
        lane.close("down", event.time, index)


_FOLLOW = {"worker": _follow_worker, "broker": _follow_broker}


def build(events: Sequence[TraceEvent], text: Sequence[str], faults: Iterable[Fault],
          violations: Sequence[Violation], *, workers: int, brokers: int, duration: float) -> Timeline:
    """The lanes of a run: ``events`` and ``text`` are its trace (``trace.events``, ``trace.lines``).

    ``faults`` are the faults that happened (``SimReport.applied``: fault
    lines take their description and downtime from them), ``workers`` and ``brokers`` the run's counts (lanes for every
    broker, and a worker that starts after the start is shown absent until then).
    """
    cited = {index for violation in violations for index in violation.lines}
    ends = [violation.window[1] for violation in violations if violation.window is not None]
    scale = _Scale(max([duration, events[-1].time if events else 0.0, *ends]))
    lanes = {f"b{number}": _LaneBuilder(f"b{number}", "broker", scale) for number in range(1, brokers + 1)}
    evidence, rebalances = _sort_onto_lanes(events, text, LaneRouter(faults), scale, lanes, cited)
    initial = {f"w{number}" for number in range(1, workers + 1)}
    built = []
    for name, builder in lanes.items():
        late = builder.lane.role == "worker" and name not in initial
        lane = builder.finish(text, (builder.first or 0.0) if late else 0.0)
        lane.marks.extend(evidence.get(name, ()))
        if lane.role == "broker" or lane.marks or lane.spans or any(lane.activity or ()):
            built.append(lane)  # not a lane of routine steps only (the operator's topics)
    checks = _checks(violations, events, scale.end)
    if checks:
        built.append(Lane("checks", "checks", marks=[_check_mark(check) for check in checks]))
    built.sort(key=_lane_order)
    return Timeline(scale.end, duration, built, checks, _lines_of(built, checks, text), len(events), rebalances)


def _sort_onto_lanes(
    events: Sequence[TraceEvent], text: Sequence[str], router: LaneRouter, scale: _Scale,
    lanes: dict[str, _LaneBuilder], cited: set[int],
) -> tuple[dict[str, list[Mark]], list[float]]:
    """Every step onto its lanes (made as they first appear); the cited steps' marks, by lane;
    the rebalances' times."""
    evidence: dict[str, list[Mark]] = {}
    rebalances = []
    for index, event in enumerate(events):
        route = router.route(event)
        for name, role in route.lanes:
            builder = lanes.get(name) or lanes.setdefault(name, _LaneBuilder(name, role, scale))
            builder.add(index, event, route.fault)
        if index in cited:
            evidence.setdefault(route.lanes[0][0], []).append(_evidence(index, event, text))
        if event.kind == "rebalance":
            rebalances.append(event.time)
    return evidence, rebalances


def _evidence(index: int, event: TraceEvent, text: Sequence[str]) -> Mark:
    return Mark(event.time, "evidence", "cited by a failed check: " + _label(text[index]), (index,),
                1, event.time, f"ev-{index}")


def _checks(violations: Sequence[Violation], events: Sequence[TraceEvent], end: float) -> list[CheckResult]:
    """Each failed check, placed at its first cited step, else its window, else the end of the run."""
    results = []
    for number, violation in enumerate(violations):
        if violation.lines:
            time = events[violation.lines[0]].time
        elif violation.window is not None:
            time = violation.window[0]
        else:
            time = end
        results.append(CheckResult(number, violation.check, violation.message, tuple(violation.evidence),
                                   tuple(violation.lines), time, violation.window))
    return results


def _check_mark(check: CheckResult) -> Mark:
    return Mark(check.time, "check", f"FAILED {check.check}: {check.message}", check.lines[:LINES_PER_MARK],
                1, check.time, f"chk-{check.number}")


def _lane_order(lane: Lane) -> tuple[int, int, str]:
    """Checks first, then workers (``w2`` before ``w10``, a twin's ``w2'`` right after ``w2``),
    the group, brokers, clients and the cluster."""
    digits = lane.name[1:].rstrip("'")
    number = int(digits) if lane.role in ("worker", "broker") and digits.isdigit() else 0
    return (_ROLE_ORDER.index(lane.role), number, lane.name)


def _lines_of(lanes: list[Lane], checks: list[CheckResult], text: Sequence[str]) -> dict[int, str]:
    """The text of every line a mark, span or check refers to, in trace order."""
    wanted: set[int] = set()
    for lane in lanes:
        for mark in lane.marks:
            wanted.update(mark.lines)
        for span in lane.spans:
            wanted.update(span.lines)
    for check in checks:
        wanted.update(check.lines)
    return {index: text[index] for index in sorted(wanted)}
