"""``/health/`` and ``/ready/``: liveness and readiness, for an orchestrator's probes.

**Liveness** (``/health/``) answers whether the process should be left
running: 200 while the app is starting or running, 503 once it crashed (an
agent under ``CrashingSupervisor``, a failing rebalance listener, an engine
loop that died) or is stopping. An answer at all proves the event loop
runs: a loop blocked by an agent does not answer, and the probe times out.
It reads flags only, never the broker, so it stays cheap under load.

**Readiness** (``/ready/``) answers whether the worker does its share of the
work: 200 once it joined the group, took an assignment and recovered its
tables, 503 otherwise, saying what it waits for (``starting``, ``joining``,
``rebalancing``, ``recovering``; ``stopping``, ``stopped``, ``crashed``). Table views
(``/table/...`` and the app's own pages reading tables) answer from complete
tables only when it is ready.

Both answer JSON ``{"status": ..., "reason": ..., "app": ..., "worker": ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .observed import Observed
from .views import Request, Response, View

__all__ = ["Health", "Probe", "Ready", "liveness", "readiness"]


@dataclass
class Probe:
    """A probe's verdict: ``ok`` (200, else 503), a status word, why, and details."""

    ok: bool
    status: str
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def body(self, app: Observed) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status}
        if self.reason:
            body["reason"] = self.reason
        body.update(app=app.conf.id, worker=app.client_name, **self.details)
        return body


def _failure(app: Observed) -> Probe | None:
    """The app crashed or is stopping: neither alive nor ready."""
    if app.state == "crashed":
        reason = app.crash_reason
        shown = f"{type(reason).__name__}: {reason}" if reason is not None else "crashed"
        return Probe(False, "crashed", f"the app crashed: {shown}")
    failure = app.task_failure()
    if failure is not None:
        return Probe(False, "crashed",
                     f"an engine loop or task died: {type(failure).__name__}: {failure}")
    if app.state == "shutdown":
        return Probe(False, "stopped", "the app has stopped")
    if app.state == "stopping" or app.conductor.stopping:
        return Probe(False, "stopping", "the app is stopping")
    return None


def liveness(app: Observed) -> Probe:
    failed = _failure(app)
    if failed is not None:
        return failed
    return Probe(True, "starting" if app.state == "init" else "ok")


def readiness(app: Observed) -> Probe:
    failed = _failure(app)
    if failed is not None:
        return failed
    conductor = app.conductor
    if app.state == "init":
        return Probe(False, "starting", "the app has not started yet")
    if conductor.taken_generation < 0:
        return Probe(False, "joining", "no assignment yet: joining the consumer group")
    if conductor.stats.rebalancing:
        return Probe(False, "rebalancing", "rebalancing: waiting for the group's next assignment")
    running = app.tables.progress.running()
    if running or app.tables.recovering:
        return _recovering(running)
    return Probe(True, "ready", details={"partitions": len(conductor.assignment())})


def _recovering(running: list[Any]) -> Probe:
    tables = {
        r.table: {"partitions": len(r.spans), "partitions_left": r.partitions_left(),
                  "records_done": r.done, "records": r.total}
        for r in running
    }
    partitions = sum(t["partitions"] for t in tables.values())
    left = sum(t["partitions_left"] for t in tables.values())
    done = sum(t["records_done"] for t in tables.values())
    total = sum(t["records"] for t in tables.values())
    reason = (f"recovering tables: {left} of {partitions} changelog partitions left "
              f"({done} of {total} records replayed)")
    return Probe(False, "recovering", reason, {"tables": tables})


def _answer(view: View, probe: Probe) -> Response:
    return view.json(probe.body(view.app), status=200 if probe.ok else 503,
                     headers={"Cache-Control": "no-store"})


class Health(View):
    """``/health/``: liveness."""

    async def get(self, request: Request) -> Response:
        return _answer(self, liveness(self.app))


class Ready(View):
    """``/ready/``: readiness."""

    async def get(self, request: Request) -> Response:
        return _answer(self, readiness(self.app))
