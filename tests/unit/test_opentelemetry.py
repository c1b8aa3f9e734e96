"""OpenTelemetry: the monitor's metrics (``faust.sensors.otel``), the agents' spans
(``faust.contrib.opentelemetry``) and an ASGI application instrumented by the lifespan.

The SDK is used with in-memory readers and exporters handed in explicitly (a meter,
a tracer), so no test sets the process's global providers. opentelemetry-api and
-sdk are in the ``dev`` extra; without them these tests are skipped, loudly.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest

SKIP = "SKIPPED LOUDLY: opentelemetry-sdk is not installed (pip install -e '.[dev]')"
pytest.importorskip("opentelemetry.sdk", reason=SKIP)

from opentelemetry import propagate, trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

import detstream  # noqa: E402
from detstream.contrib import opentelemetry as otel_tracing  # noqa: E402
from detstream.contrib.asgi import faust_lifespan, serve_asgi  # noqa: E402
from detstream.contrib.opentelemetry import (  # noqa: E402
    OpenTelemetrySensor,
    instrument_asgi_app,
    maybe_instrument_asgi,
    setup_opentelemetry,
)
from detstream.contrib.otel import INSTRUMENTS, OpenTelemetryMonitor  # noqa: E402
from detstream.errors import ImproperlyConfigured  # noqa: E402
from sim import testing as sim_testing  # noqa: E402
from sim.cluster import ClusterConfig  # noqa: E402

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def counting_app(app_id: str) -> tuple[detstream.App, Any]:
    app = detstream.App(app_id, broker="sim://", topic_partitions=2)
    topic = app.topic("words", partitions=2, internal=True, value_type=str)
    counts = app.Table("counts", default=int, partitions=2)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for word in stream:
            counts[word] += 1
            await asyncio.sleep(0.25)

    return app, topic


def feed(topic: Any, n: int = 8) -> Any:
    async def body(cluster: Any) -> None:
        await asyncio.sleep(1)
        for i in range(n):
            await topic.send(key=f"k{i % 2}".encode(), value=f"w{i % 3}")
        await asyncio.sleep(8)

    return body


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    return {
        metric.name: list(metric.data.data_points)
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def total(points: list[Any], **attributes: Any) -> Any:
    """The sum of the points whose attributes include ``attributes``."""
    return sum(p.value for p in points if attributes.items() <= dict(p.attributes).items())


# -- the monitor's metrics -----------------------------------------------------------------

def test_the_monitor_records_fausts_instruments_with_attributes() -> None:
    reader = InMemoryMetricReader()
    monitor = OpenTelemetryMonitor(meter=MeterProvider(metric_readers=[reader]).get_meter("t"))
    app, topic = counting_app("otel-monitored")
    app.monitor = monitor
    sim_testing.run_app(app, feed(topic), seed=4, config=FAST)
    points = metric_points(reader)

    received = points["faust.messages.received"]
    assert total(received) == 8
    assert {tuple(sorted(p.attributes)) for p in received} == {("partition", "topic")}
    assert total(received, topic="words", partition=0) + total(received, partition=1) == 8
    events = points["faust.events.total"]
    assert total(events, topic="words", stream="words") == 8
    assert total(points["faust.messages.active"]) == total(points["faust.events.active"]) == 0
    runtime = points["faust.events.runtime"]
    assert sum(p.count for p in runtime) == 8
    assert sum(p.sum for p in runtime) == pytest.approx(8 * 250.0)  # ms, virtual time: exact
    table_ops = points["faust.table.operations"]
    assert total(table_ops, table="counts", operation="get") == 8
    assert total(table_ops, table="counts", operation="set") == 8
    sent = points["faust.messages.sent"]
    assert total(sent, topic="words") == 8
    assert total(sent) == monitor.messages_sent
    assert sum(p.count for p in points["faust.send.latency"]) == monitor.messages_sent
    assert sum(p.count for p in points["faust.commit.latency"]) >= 1
    assert total(points["faust.assignments"], result="completed") == 1
    committed = {p.attributes["partition"]: p.value for p in points["faust.offset.committed"]
                 if p.attributes["topic"] == "words"}
    ends = {p.attributes["partition"]: p.value for p in points["faust.offset.end"]
            if p.attributes["topic"] == "words"}
    reads = {p.attributes["partition"]: p.value for p in points["faust.offset.read"]}
    assert committed == ends == {p: o + 1 for p, o in reads.items()}
    assert total(points["faust.rebalances.active"]) == total(points["faust.rebalances.recovering"]) == 0
    end_latency = points["faust.rebalance.end_latency"][0]
    assert end_latency.count == 1
    assert end_latency.sum == pytest.approx(monitor.rebalance_end_latency[0] * 1000)
    assert end_latency.sum > 0  # the rebalance's own duration (Faust's recorded about 0)
    # it is still the app's Monitor
    assert monitor.asdict()["events_total"] == 8 and app.monitor is monitor


def test_every_instrument_has_fausts_name_and_the_app_may_count_its_own() -> None:
    reader = InMemoryMetricReader()
    monitor = OpenTelemetryMonitor(meter=MeterProvider(metric_readers=[reader]).get_meter("t"))
    assert {name for _, _, name, _, _ in INSTRUMENTS} == {
        "faust.messages.received", "faust.events.total", "faust.messages.sent",
        "faust.messages.send_errors", "faust.table.operations", "faust.assignments",
        "faust.http.requests", "faust.custom.count", "faust.messages.active",
        "faust.events.active", "faust.rebalances.active", "faust.rebalances.recovering",
        "faust.events.runtime", "faust.commit.latency", "faust.send.latency",
        "faust.send.error_latency", "faust.assignment.latency",
        "faust.rebalance.return_latency", "faust.rebalance.end_latency", "faust.http.latency",
        "faust.offset.read", "faust.offset.committed", "faust.offset.end",
        "faust.producer.buffer",
    }
    monitor.count("orders", 3)
    monitor.on_send_error(None, RuntimeError("refused"), None)
    points = metric_points(reader)
    assert total(points["faust.custom.count"], name="orders") == 3
    assert total(points["faust.messages.send_errors"]) == 1
    assert monitor.metric_counts["orders"] == 3 and monitor.send_errors == 1


def test_a_replaced_rebalance_leaves_no_rebalance_counted_in_progress() -> None:
    reader = InMemoryMetricReader()
    now = [0.0]
    monitor = OpenTelemetryMonitor(meter=MeterProvider(metric_readers=[reader]).get_meter("t"),
                                   time=lambda: now[0])
    first = monitor.on_rebalance_start(None)
    second = monitor.on_rebalance_start(None)  # the first never returned
    now[0] = 2.0
    monitor.on_rebalance_return(None, second)
    third = monitor.on_rebalance_start(None)  # the second never ended
    now[0] = 3.0
    monitor.on_rebalance_return(None, third)
    monitor.on_rebalance_end(None, third)
    monitor.on_rebalance_return(None, first)  # late, stale: not paired any more
    points = metric_points(reader)
    assert total(points["faust.rebalances.active"]) == 0
    assert total(points["faust.rebalances.recovering"]) == 0
    returns = points["faust.rebalance.return_latency"][0]
    assert (returns.count, returns.sum) == (2, pytest.approx(2000.0 + 1000.0))


def test_the_monitor_without_the_api_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    with pytest.raises(ImproperlyConfigured, match="pip install opentelemetry-api"):
        OpenTelemetryMonitor()


def test_the_monitor_changes_no_step_of_a_run() -> None:
    def digest(with_monitor: bool) -> str:
        app, topic = counting_app("otel-steps")
        if with_monitor:
            app.monitor = OpenTelemetryMonitor(
                meter=MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("t"))

        async def body(cluster: Any) -> Any:
            await feed(topic)(cluster)
            return cluster

        return str(sim_testing.run_app(app, body, seed=7, config=FAST).trace.sha256())

    assert digest(True) == digest(False)


# -- the agents' spans ---------------------------------------------------------------------

def tracing() -> tuple[Any, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), exporter


def test_an_agent_runs_inside_a_process_span_child_of_the_producers() -> None:
    tracer, exporter = tracing()
    app = detstream.App("otel-traced", broker="sim://", topic_partitions=1)
    topic = app.topic("orders", partitions=1, internal=True, value_type=str)
    seen: list[tuple[str, Any]] = []

    @app.agent(topic)
    async def handle(stream: Any) -> None:
        async for order in stream:
            current = trace.get_current_span()
            with tracer.start_as_current_span(f"work on {order}"):
                await asyncio.sleep(0.1)
            seen.append((order, current.get_span_context()))
        # (after its events, nothing is current any more)

    sensor = setup_opentelemetry(app, tracer=tracer)
    assert isinstance(sensor, OpenTelemetrySensor) and sensor in app.sensors

    async def body(cluster: Any) -> None:
        await asyncio.sleep(1)
        with tracer.start_as_current_span("orders send", kind=trace.SpanKind.PRODUCER):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            await topic.send(key=b"o-1", value="first",
                             headers={k: v.encode() for k, v in carrier.items()})
        await topic.send(value="untraced")  # no trace context: a trace of its own
        await asyncio.sleep(3)

    sim_testing.run_app(app, body, seed=2, config=FAST)
    finished = exporter.get_finished_spans()
    spans = {span.name: span for span in finished if span.name != "orders process"}
    processed = [span for span in finished if span.name == "orders process"]
    process, untraced = sorted(processed, key=lambda s: s.attributes["messaging.kafka.message.offset"])
    producer = spans["orders send"]
    assert process.kind == trace.SpanKind.CONSUMER
    assert process.parent.span_id == producer.context.span_id
    assert process.context.trace_id == producer.context.trace_id
    assert dict(process.attributes) == {
        "messaging.system": "kafka", "messaging.operation.name": "process",
        "messaging.operation.type": "process", "messaging.destination.name": "orders",
        "messaging.destination.partition.id": "0", "messaging.kafka.message.offset": 0,
        "messaging.consumer.group.name": "otel-traced", "messaging.kafka.message.key": "o-1",
    }
    work = spans["work on first"]
    assert work.parent.span_id == process.context.span_id  # the agent's work nests under it
    assert seen[0] == ("first", process.context)
    assert untraced.parent is None and untraced.context.trace_id != process.context.trace_id
    assert "messaging.kafka.message.key" not in untraced.attributes  # no key, not set
    assert process.end_time >= work.end_time  # ended when the agent asked for the next one


def test_setup_warns_beside_an_opentracing_sensor_and_tolerates_a_missing_api(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("opentracing", reason="SKIPPED LOUDLY: opentracing is not installed")
    from opentracing.mocktracer import MockTracer

    from detstream.contrib.opentracing import TracingSensor

    app = detstream.App("otel-both", broker="sim://")
    app.sensors.add(TracingSensor(tracer=MockTracer()))
    with caplog.at_level(logging.WARNING):
        assert setup_opentelemetry(app) is not None
    assert "TracingSensor (opentracing) is registered too" in caplog.text

    monkeypatch.setattr(otel_tracing, "opentelemetry_available", lambda: False)
    caplog.clear()
    other = detstream.App("otel-none", broker="sim://")
    with caplog.at_level(logging.WARNING):
        assert setup_opentelemetry(other) is None
    assert "pip install opentelemetry-api" in caplog.text and not other.sensors.enabled


# -- the ASGI application, instrumented ------------------------------------------------------

def fastapi_app() -> Any:
    fastapi = pytest.importorskip("fastapi", reason="SKIPPED LOUDLY: fastapi is not installed")
    api = fastapi.FastAPI()

    @api.get("/ping")
    async def ping() -> dict[str, bool]:
        return {"ok": True}

    return api


def real_provider(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """As if the application configured the SDK (the global provider, for this test only)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)
    return exporter


def test_the_lifespan_instruments_the_application_only_when_tracing_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("opentelemetry.instrumentation.fastapi",
                        reason="SKIPPED LOUDLY: opentelemetry-instrumentation-fastapi missing")

    def started(api: Any, **options: Any) -> Any:
        app = detstream.App("otel-asgi", broker="sim://", web_enabled=False)

        async def main(cluster: Any) -> Any:
            async with faust_lifespan(app, **options)(api):
                return getattr(api, "_is_instrumented_by_opentelemetry", False)

        return sim_testing.simulate(main, seed=1, config=FAST)

    assert started(fastapi_app()) is False  # no SDK configured: the API is a no-op
    assert started(fastapi_app(), opentelemetry=True) is True  # forced
    exporter = real_provider(monkeypatch)
    assert started(fastapi_app(), opentelemetry=False) is False
    api = fastapi_app()
    assert started(api) is True
    assert instrument_asgi_app(api, force=True) is False  # not wrapped twice
    assert maybe_instrument_asgi(fastapi_app(), None) is True

    async def request(cluster: Any) -> int:
        answers: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            answers.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/ping", "raw_path": b"/ping",
                 "query_string": b"", "headers": [], "client": ("127.0.0.1", 5000),
                 "server": ("127.0.0.1", 8000)}
        await api(scope, receive, send)
        return int(answers[0]["status"])

    assert sim_testing.simulate(request, seed=1) == 200
    assert [s.name for s in exporter.get_finished_spans()] == ["GET /ping"]


def test_opentelemetry_true_without_the_instrumentation_is_refused_when_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.instrumentation.fastapi", None)
    app = detstream.App("otel-missing", broker="sim://")
    for make in (lambda: faust_lifespan(app, opentelemetry=True),
                 lambda: serve_asgi(app, object(), opentelemetry=True)):
        with pytest.raises(ImproperlyConfigured,
                           match="pip install opentelemetry-instrumentation-fastapi"):
            make()
    assert callable(faust_lifespan(app))  # auto-detection needs nothing installed
    service = serve_asgi(app, object(), opentelemetry=False, workers=1)
    assert service.opentelemetry is False and service.uvicorn_options == {"workers": 1}


def test_serve_asgi_instruments_when_its_server_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, Any]] = []
    monkeypatch.setattr("detstream.contrib.asgi_server.maybe_instrument_asgi",
                        lambda asgi_app, option: calls.append((asgi_app, option)))

    class NoServer:
        should_exit = False

        async def serve(self) -> None:
            while not self.should_exit:
                await asyncio.sleep(0.1)

    monkeypatch.setattr("detstream.contrib.asgi_server.AsgiService._create_server",
                        lambda self: NoServer())
    app = detstream.App("otel-served", broker="sim://", web_enabled=False)
    api = object()
    service_class = serve_asgi(app, api, opentelemetry=True)

    async def main(cluster: Any) -> None:
        service = service_class()
        await service.start()
        await service.stop()

    sim_testing.simulate(main, seed=1)
    assert calls == [(api, True)]
