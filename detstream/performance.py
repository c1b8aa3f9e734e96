"""A worker's performance as plain data, for any web framework (Faust's ``faust.sensors.metrics``).

``performance_metrics(app)`` reads ``app.monitor`` and returns a dict of JSON
values only, so a view of any framework can return it as it is::

    @api.get("/performance")
    async def performance():
        return performance_metrics(faust_app)

Sections: ``app`` (id, web port), ``throughput`` (messages and events, totals,
in progress and per second), ``latency`` (seconds: the averages, and count, p50,
p95 and max of the commit, send and assignment histories), ``consumer`` (offsets
read, committed and at the log end per topic and partition, the lag, rebalances),
``tables`` (reads, writes and deletes per table), ``errors`` and
``topic_buffer_full``.

The monitor counts from when it is registered: the first call registers it
(``app.monitor``) if nothing did before, and so reports nothing yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .monitor import by_topic, tp_label

__all__ = ["performance_metrics"]


def _nearest_rank(ordered: list[float], fraction: float) -> float | None:
    """The value at ``fraction`` of a sorted list (the nearest rank), None when empty."""
    if not ordered:
        return None
    return ordered[int(round(fraction * (len(ordered) - 1)))]


def summarize(values: Iterable[float]) -> dict[str, Any]:
    """``count``, ``p50``, ``p95`` and ``max`` of a latency history (None when it is empty)."""
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": _nearest_rank(ordered, 0.50),
        "p95": _nearest_rank(ordered, 0.95),
        "max": ordered[-1] if ordered else None,
    }


def consumer_lag(
    read: Mapping[str, Mapping[int, int]], end: Mapping[str, Mapping[int, int]],
) -> tuple[dict[str, dict[int, int]], int]:
    """Records at the log end not read yet, per topic and partition, and their sum.

    ``read`` holds the offset of the last record read, ``end`` the log end (the
    next offset to be written): a partition read to its end lags 0.
    """
    lag: dict[str, dict[int, int]] = {}
    total = 0
    for topic, ends in end.items():
        reads = read.get(topic) or {}
        for partition, end_offset in ends.items():
            last_read = reads.get(partition)
            if last_read is None:
                continue
            behind = max(0, end_offset - last_read - 1)
            lag.setdefault(topic, {})[partition] = behind
            total += behind
    return lag, total


def performance_metrics(app: Any) -> dict[str, Any]:
    """The worker's performance numbers as JSON-compatible data (see the module)."""
    monitor = app.monitor
    read = by_topic(monitor.tp_read_offsets)
    end = by_topic(monitor.tp_end_offsets)
    lag, lag_total = consumer_lag(read, end)
    return {
        "app": {"id": app.conf.id, "web_port": app.conf.web_port},
        "throughput": {
            "messages_active": monitor.messages_active,
            "messages_received_total": monitor.messages_received_total,
            "messages_s": monitor.messages_s,
            "messages_sent": monitor.messages_sent,
            "events_active": monitor.events_active,
            "events_total": monitor.events_total,
            "events_s": monitor.events_s,
        },
        "latency": {
            "events_runtime_avg": monitor.events_runtime_avg,
            "commit_latency": summarize(monitor.commit_latency),
            "send_latency": summarize(monitor.send_latency),
            "assignment_latency": summarize(monitor.assignment_latency),
            "rebalance_return_avg": monitor.rebalance_return_avg,
            "rebalance_end_avg": monitor.rebalance_end_avg,
            "http_response_latency_avg": monitor.http_response_latency_avg,
        },
        "consumer": {
            "lag_total": lag_total,
            "lag_by_partition": lag,
            "read_offsets": read,
            "committed_offsets": by_topic(monitor.tp_committed_offsets),
            "end_offsets": end,
            "rebalances": monitor.rebalances,
        },
        "tables": {name: state.asdict() for name, state in monitor.tables.items()},
        "errors": {
            "send_errors": monitor.send_errors,
            "assignments_completed": monitor.assignments_completed,
            "assignments_failed": monitor.assignments_failed,
        },
        "topic_buffer_full": {tp_label(tp): n for tp, n in monitor.topic_buffer_full.items()},
    }
