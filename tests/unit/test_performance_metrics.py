"""``performance_metrics(app)`` (Faust's ``faust.sensors.metrics``): the monitor's numbers as
plain JSON data for any web framework; and the Monitor attributes of Faust's reference."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, deque
from typing import Any

import pytest

import detstream
from detstream.monitor import Monitor, TableState
from detstream.performance import consumer_lag, performance_metrics, summarize
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def test_a_worker_reports_its_performance_as_json_data() -> None:
    app = detstream.App("performing", broker="sim://", topic_partitions=2, web_port=6070)
    topic = app.topic("words", partitions=2, internal=True, value_type=str)
    counts = app.Table("counts", default=int, partitions=2)
    during: list[dict[str, Any]] = []

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for word in stream:
            counts[word] += 1
            await asyncio.sleep(0.25)

    async def body(cluster: Any) -> dict[str, Any]:
        assert performance_metrics(app)["throughput"]["events_total"] == 0  # counts from now
        await asyncio.sleep(1)
        for i in range(8):
            await topic.send(key=f"k{i % 2}".encode(), value=f"w{i % 3}")
        await asyncio.sleep(0.3)
        during.append(performance_metrics(app))  # most still waiting in the agent's buffer
        await asyncio.sleep(8)
        return performance_metrics(app)

    payload = sim_testing.run_app(app, body, seed=4, config=FAST)
    assert json.loads(json.dumps(payload))  # JSON values only
    assert list(payload) == ["app", "throughput", "latency", "consumer", "tables", "errors",
                             "topic_buffer_full"]
    assert payload["app"] == {"id": "performing", "web_port": 6070}
    throughput = payload["throughput"]
    assert throughput["messages_received_total"] == throughput["events_total"] == 8
    assert throughput["messages_active"] == throughput["events_active"] == 0
    latency = payload["latency"]
    assert latency["events_runtime_avg"] == pytest.approx(0.25)
    assert set(latency["commit_latency"]) == {"count", "p50", "p95", "max"}
    assert latency["send_latency"]["count"] >= 8
    consumer = payload["consumer"]
    read = consumer["read_offsets"]["words"]
    assert consumer["lag_total"] == 0
    assert consumer["lag_by_partition"] == {"words": {p: 0 for p in read}}
    assert consumer["committed_offsets"]["words"] == consumer["end_offsets"]["words"]
    assert consumer["rebalances"] == 1
    assert payload["tables"] == {"counts": {"keys_retrieved": 8, "keys_updated": 8,
                                            "keys_deleted": 0}}
    assert payload["errors"] == {"send_errors": 0, "assignments_completed": 1,
                                 "assignments_failed": 0}
    busy = during[0]  # fetched, two events processed, six waiting in the agent's buffer
    assert busy["throughput"]["messages_active"] == 7 and busy["throughput"]["events_total"] == 2
    assert busy["consumer"]["lag_total"] == 0  # every record of the log was fetched
    assert busy["consumer"]["committed_offsets"] == {}  # none yet


def test_lag_counts_the_records_not_read_and_summaries_take_nearest_ranks() -> None:
    read = {"t": {0: 9, 1: 4}, "gone": {0: 1}}
    end = {"t": {0: 10, 1: 8, 2: 3}}  # partition 2: nothing read yet, not counted
    assert consumer_lag(read, end) == ({"t": {0: 0, 1: 3}}, 3)
    assert summarize([]) == {"count": 0, "p50": None, "p95": None, "max": None}
    assert summarize([0.3, 0.1, 0.2]) == {"count": 3, "p50": 0.2, "p95": 0.3, "max": 0.3}


#: Faust's Monitor API reference (docs/userguide/sensors.rst): attribute -> its type here.
MONITOR_ATTRIBUTES = {
    "messages_active": int, "messages_received_total": int, "messages_received_by_topic": Counter,
    "messages_s": int, "events_active": int, "events_total": int, "events_s": int,
    "events_by_stream": Counter, "events_by_task": Counter, "events_runtime": deque,
    "events_runtime_avg": float, "tables": dict, "commit_latency": deque, "send_latency": deque,
    "messages_sent": int, "send_errors": int, "messages_sent_by_topic": Counter,
    "topic_buffer_full": Counter, "metric_counts": Counter, "tp_committed_offsets": dict,
    "tp_read_offsets": dict, "tp_end_offsets": dict, "assignment_latency": deque,
    "assignments_completed": int, "assignments_failed": int, "rebalances": int,
    "rebalance_return_latency": deque, "rebalance_end_latency": deque,
    "rebalance_return_avg": float, "rebalance_end_avg": float, "http_response_codes": Counter,
    "http_response_latency": deque, "http_response_latency_avg": float,
    # configuration attributes
    "max_avg_history": int, "max_commit_latency_history": int, "max_send_latency_history": int,
}


def test_every_attribute_of_fausts_monitor_reference_is_there() -> None:
    monitor = Monitor()
    for name, kind in MONITOR_ATTRIBUTES.items():
        assert isinstance(getattr(monitor, name), kind), name
    assert (monitor.max_avg_history, monitor.max_commit_latency_history,
            monitor.max_send_latency_history) == (100, 30, 30)  # Faust's defaults
    state = TableState("a-table")
    assert (state.table, state.keys_retrieved, state.keys_updated, state.keys_deleted) == (
        "a-table", 0, 0, 0)


def test_fausts_module_names_resolve() -> None:
    from detstream import faust_compat
    from detstream.contrib import opentelemetry, otel

    with faust_compat.faust_alias():
        from faust.contrib.opentelemetry import (  # type: ignore[import-not-found]
            setup_opentelemetry,
        )
        from faust.sensors.metrics import (  # type: ignore[import-not-found]
            performance_metrics as faust_performance_metrics,
        )
        from faust.sensors.otel import OpenTelemetryMonitor  # type: ignore[import-not-found]

    assert faust_performance_metrics is performance_metrics
    assert setup_opentelemetry is opentelemetry.setup_opentelemetry
    assert OpenTelemetryMonitor is otel.OpenTelemetryMonitor
