"""Read-only endpoints every worker serves: status, assignment, local table data.

``/``                      app id, worker name, status, leader, partition count; with
                           ``web_stats_enabled`` (or ``debug``) Faust's statistics instead:
                           ``{"Sensor0": app.monitor.asdict(), ...}``, one per sensor
``/assignment/``           this worker's assigned partitions: ``{"actives": {topic: [p, ...]}}``
``/table/``                the app's tables with their local key counts
``/table/{name}/``         the table's local data (keys as text: str as is, others as JSON)
``/table/{name}/{key}/``   one key; ``42`` also finds the int key 42, a JSON object a Record key
``/health/``               liveness: 200 unless crashed or stopping (``probes``)
``/ready/``                readiness: 200 once assigned and tables recovered, else 503 and why
``/metrics``               Prometheus text format (``metrics``)

The probes and ``/metrics`` also answer without (or, for ``/metrics``, with)
the trailing slash, since probe and scrape configurations are written by
hand and a 404 there reads as a dead worker. Unknown tables and keys answer 404 JSON. "Local" means what this worker holds:
the partitions assigned to it (ask every worker for the whole table).
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from detstream import codecs
from detstream.errors import DetstreamError

from .views import Request, Response, View


def routes() -> list[Any]:
    from .metrics import Metrics
    from .probes import Health, Ready
    from .routes import Route

    return [
        Route("/", Status, "detstream:status"),
        Route("/assignment/", Assignment, "detstream:assignment"),
        Route("/table/", TableList, "detstream:tables"),
        Route("/table/{name}/", TableDetail, "detstream:table"),
        Route("/table/{name}/{key}/", TableKey, "detstream:table-key"),
        Route("/health/", Health, "detstream:health"),
        Route("/health", Health, "detstream:health-noslash"),
        Route("/ready/", Ready, "detstream:ready"),
        Route("/ready", Ready, "detstream:ready-noslash"),
        Route("/metrics", Metrics, "detstream:metrics"),
        Route("/metrics/", Metrics, "detstream:metrics-slash"),
    ]


class Status(View):
    async def get(self, request: Request) -> Response:
        app = self.app
        if app.conf.web_stats_enabled:
            return self.json(sensor_stats(app.sensors))
        status = app.state
        if status == "running" and app.conductor.stats.rebalancing:
            status = "rebalancing"  # as ``/ready/``: what it holds may not be recovered yet
        elif status == "running" and app.tables.recovering:
            status = "recovering"
        return self.json({
            "app": app.conf.id,
            "worker": app.client_name,
            "status": status,
            "leader": app.is_leader(),
            "partitions": len(app.conductor.assignment()),
            "agents": sorted(app.agents),
            "tables": sorted(app.tables.tables),
        })


def sensor_stats(sensors: Any) -> dict[str, Any]:
    """Faust's stats page: ``{"Sensor0": asdict(), ...}`` in the order sensors were added.

    Histories (deques) become lists; a sensor without ``asdict`` shows as ``{}``.
    """
    out = {}
    for index, sensor in enumerate(sensors):
        asdict = getattr(sensor, "asdict", None)
        stats = asdict() if callable(asdict) else {}
        out[f"Sensor{index}"] = {k: list(v) if isinstance(v, deque) else v for k, v in stats.items()}
    return out


class Assignment(View):
    async def get(self, request: Request) -> Response:
        actives: dict[str, list[int]] = {}
        for tp in sorted(self.app.conductor.assignment()):
            actives.setdefault(tp.topic, []).append(tp.partition)
        standbys: dict[str, list[int]] = {}
        for tp in sorted(self.app.tables.standbys.partitions):
            standbys.setdefault(tp.topic, []).append(tp.partition)
        return self.json({"worker": self.app.client_name, "actives": actives, "standbys": standbys})


class TableList(View):
    async def get(self, request: Request) -> Response:
        tables = self.app.tables.tables
        return self.json({name: {"keys": len(t), "changelog": t.changelog_name, "help": t.help}
                          for name, t in sorted(tables.items())})


class TableDetail(View):
    async def get(self, request: Request, name: str) -> Response:
        table = _table(self, name)
        return self.json({key_text(k): _jsonable(v) for k, v in table.as_dict().items()})


class TableKey(View):
    async def get(self, request: Request, name: str, key: str) -> Response:
        table = _table(self, name)
        for candidate in key_candidates(key, table.key_type):
            try:
                if candidate in table:
                    return self.json({key_text(candidate): _jsonable(table.data.get(candidate))})
            except TypeError:  # unhashable candidate (a JSON list or object)
                continue
        return self.notfound(f"no key {key!r} in table {name!r} on worker "
                             f"{self.app.client_name!r}", table=name, key=key)


def _table(view: View, name: str) -> Any:
    from .views import NotFound

    table = view.app.tables.tables.get(name)
    if table is None:
        known = ", ".join(sorted(view.app.tables.tables)) or "none"
        raise NotFound(f"no table {name!r} (tables: {known})", table=name)
    return table


def key_text(key: Any) -> str:
    """A table key as a JSON object key: str as is, bytes as UTF-8, anything else as JSON."""
    if isinstance(key, str):
        return key
    if isinstance(key, (bytes, bytearray)):
        return bytes(key).decode("utf-8", errors="backslashreplace")
    try:
        return codecs.get_codec("json").dumps(key).decode("utf-8")
    except DetstreamError:
        return repr(key)


def key_candidates(text: str, key_type: Any) -> list[Any]:
    """What a URL key may stand for: the str, its bytes, its JSON value, a Record of it."""
    candidates: list[Any] = [text, text.encode("utf-8")]
    try:
        decoded = json.loads(text)
    except ValueError:
        return candidates
    if not isinstance(decoded, bool):  # "true" is no key 1
        candidates.append(decoded)
    from_data = getattr(key_type, "from_data", None)
    if isinstance(decoded, dict) and from_data is not None:
        try:
            candidates.append(from_data(decoded))
        except Exception:  # not this Record's shape: not found
            pass
    return candidates


def _jsonable(value: Any) -> Any:
    """``value`` ready for JSON; what the json codec cannot encode is shown as its repr."""
    try:
        codecs.get_codec("json").dumps(value)
        return value
    except (DetstreamError, TypeError, ValueError):
        return repr(value)
