"""Faust's OpenTracing sensor (``faust.sensors.distributed_tracing.TracingSensor``), with
opentracing's ``MockTracer``. opentracing is in the ``dev`` extra; without it the
tracing tests are skipped, loudly, and the sensor's refusal is still tested."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest

import detstream
from detstream.contrib.opentracing import TracingSensor, current_span
from detstream.errors import ImproperlyConfigured
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def mock_tracer() -> Any:
    mocktracer = pytest.importorskip(
        "opentracing.mocktracer", reason="SKIPPED LOUDLY: opentracing is not installed")
    return mocktracer.MockTracer()


def test_records_are_traced_through_an_agent_and_on_to_the_next_topic() -> None:
    tracer = mock_tracer()
    import opentracing

    app = detstream.App("traced-relay", broker="sim://", topic_partitions=1)
    orders = app.topic("orders", partitions=1, internal=True, value_type=str)
    shipped = app.topic("shipped", partitions=1, internal=True, value_type=str)
    current: list[Any] = []
    headers_seen: list[dict[str, bytes]] = []

    @app.agent(orders)
    async def relay(stream: Any) -> None:
        async for order in stream:
            current.append(current_span())
            await shipped.send(value=order.upper())

    @app.agent(shipped)
    async def sink(stream: Any) -> None:
        async for event in stream.events():
            headers_seen.append(dict(event.headers))

    app.sensors.add(TracingSensor(tracer=tracer))

    async def body(cluster: Any) -> None:
        await asyncio.sleep(1)
        upstream = tracer.start_span("checkout")
        carrier: dict[str, str] = {}
        tracer.inject(upstream.context, opentracing.Format.TEXT_MAP, carrier)
        upstream.finish()
        await orders.send(value="book", headers={k: v.encode() for k, v in carrier.items()})
        await asyncio.sleep(3)

    sim_testing.run_app(app, body, seed=3, config=FAST)
    spans = {span.operation_name: span for span in tracer.finished_spans()}
    assert set(spans) == {"checkout", "consume-from-orders", "job-orders", "produce-to-shipped",
                          "consume-from-shipped", "job-shipped"}
    consumed, job = spans["consume-from-orders"], spans["job-orders"]
    assert consumed.context.trace_id == spans["checkout"].context.trace_id  # follows from it
    assert consumed.tags == {"kafka-topic": "orders", "kafka-partition": 0, "kafka-key": None}
    assert job.parent_id == consumed.context.span_id
    assert job.tags["stream-concurrency-index"] == 0
    assert job.tags["stream-prefix"].endswith(".relay")  # the agent's name, as Faust's
    assert current == [job]  # the agent's current span while it had the event
    produced = spans["produce-to-shipped"]
    assert produced.parent_id == job.context.span_id
    assert produced.tags["kafka-topic"] == "shipped" and produced.tags["kafka-offset"] == 0
    # the produced record carries the span's context: the next consumer follows from it
    assert headers_seen[0]["ot-tracer-spanid"] == str(produced.context.span_id).encode()
    assert spans["consume-from-shipped"].context.trace_id == produced.context.trace_id
    assert current_span() is None


def test_the_sensor_without_opentracing_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentracing", None)  # as if not installed
    with pytest.raises(ImproperlyConfigured, match="pip install opentracing.*setup_opentelemetry"):
        TracingSensor()


def test_the_faust_module_name_resolves() -> None:
    from detstream import faust_compat

    with faust_compat.faust_alias():
        from faust.sensors.distributed_tracing import (  # type: ignore[import-not-found]
            TracingSensor as FaustTracingSensor,
        )
    assert FaustTracingSensor is TracingSensor
