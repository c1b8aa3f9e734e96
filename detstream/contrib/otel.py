"""The Monitor's numbers through the OpenTelemetry metrics API (Faust's ``faust.sensors.otel``).

An :class:`OpenTelemetryMonitor` is ``app.monitor`` (a :class:`~detstream.monitor.Monitor`:
``asdict()``, the stats page and ``performance_metrics`` keep working) that also
records each number on an OpenTelemetry instrument, so any OpenTelemetry exporter
(OTLP, Prometheus, the console) carries them::

    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

    app.monitor = OpenTelemetryMonitor()

Instruments follow OpenTelemetry's conventions, as Faust's do: one instrument per
quantity (``faust.messages.received``, ``faust.events.runtime``, ...), its
dimensions in attributes (``topic``, ``partition``, ``stream``, ``table``,
``operation``, ``result``, ``status_code``, ``name``), latencies in milliseconds.
The names are Faust's, so dashboards built for a Faust worker read a detstream one.

Only ``opentelemetry-api`` is needed (``pip install "detstream[opentelemetry]"``);
until the application sets a ``MeterProvider`` every instrument is a no-op of the
API's. A library never configures the SDK, so nothing here does.

Differences from Faust's, on purpose: the rebalance and HTTP latencies recorded are
the time from the rebalance's (request's) start, where Faust's recorded the time
since the moment the latency was measured (about 0); the up/down counters of
rebalances in progress do not drift when a rebalance is replaced by the next one
before it returned; and ``faust.producer.buffer`` (Faust's threaded producer) is
created but never recorded, as detstream has no threaded producer.
"""

from __future__ import annotations

import re
from typing import Any

from detstream.errors import ImproperlyConfigured
from detstream.monitor import Monitor

from .metric_monitors import RebalancePhase

__all__ = ["INSTRUMENTS", "OTelMetrics", "OpenTelemetryMonitor"]

#: (attribute, kind, name, unit, description) of every instrument, Faust's names.
INSTRUMENTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("messages_received", "counter", "faust.messages.received", "1",
     "Messages received from Kafka."),
    ("events_total", "counter", "faust.events.total", "1", "Stream events processed by agents."),
    ("messages_sent", "counter", "faust.messages.sent", "1", "Messages sent to Kafka."),
    ("messages_send_errors", "counter", "faust.messages.send_errors", "1",
     "Messages that failed to send."),
    ("table_operations", "counter", "faust.table.operations", "1",
     "Table key operations (get/set/del)."),
    ("assignments", "counter", "faust.assignments", "1",
     "Partition assignments computed (completed/error)."),
    ("http_requests", "counter", "faust.http.requests", "1", "Web requests, by status code."),
    ("custom_counts", "counter", "faust.custom.count", "1",
     "The application's counts (Monitor.count())."),
    ("messages_active", "up_down_counter", "faust.messages.active", "1",
     "Messages being processed."),
    ("events_active", "up_down_counter", "faust.events.active", "1",
     "Stream events being processed."),
    ("rebalances_active", "up_down_counter", "faust.rebalances.active", "1",
     "Rebalances in progress (not yet returned)."),
    ("rebalances_recovering", "up_down_counter", "faust.rebalances.recovering", "1",
     "Rebalances returned, their partitions not yet open to the agents."),
    ("events_runtime", "histogram", "faust.events.runtime", "ms",
     "Time an agent took for a stream event."),
    ("commit_latency", "histogram", "faust.commit.latency", "ms", "Offset commit latency."),
    ("send_latency", "histogram", "faust.send.latency", "ms", "Send latency (acknowledged)."),
    ("send_error_latency", "histogram", "faust.send.error_latency", "ms",
     "Send latency (refused)."),
    ("assignment_latency", "histogram", "faust.assignment.latency", "ms",
     "Time to compute the partition assignment."),
    ("rebalance_return_latency", "histogram", "faust.rebalance.return_latency", "ms",
     "Time from a rebalance's start until the new assignment was taken."),
    ("rebalance_end_latency", "histogram", "faust.rebalance.end_latency", "ms",
     "Time from a rebalance's start until its partitions were open to the agents."),
    ("http_latency", "histogram", "faust.http.latency", "ms", "Web request latency."),
    ("offset_read", "gauge", "faust.offset.read", "1", "Last offset read, per partition."),
    ("offset_committed", "gauge", "faust.offset.committed", "1",
     "Last offset committed, per partition."),
    ("offset_end", "gauge", "faust.offset.end", "1", "Log end offset, per partition."),
    ("producer_buffer", "gauge", "faust.producer.buffer", "1",
     "Faust's threaded producer's buffer (never recorded: detstream has none)."),
)

_CREATE = {
    "counter": "create_counter",
    "up_down_counter": "create_up_down_counter",
    "histogram": "create_histogram",
    "gauge": "create_gauge",
}

#: what a stream's label has that an attribute value should not (Faust's normalisation).
_NOT_IN_LABELS = re.compile(r"[<>:\s]+")


def _otel_metrics() -> Any:
    """OpenTelemetry's metrics API, or a clear error naming what to install."""
    try:
        from opentelemetry import metrics
    except ImportError:
        raise ImproperlyConfigured(
            "OpenTelemetryMonitor needs the OpenTelemetry API: pip install opentelemetry-api "
            '(or "detstream[opentelemetry]")'
        ) from None
    return metrics


class OTelMetrics:
    """The instruments the monitor records on, made once from one ``Meter``.

    Each entry of :data:`INSTRUMENTS` is an attribute (``metrics.messages_received``,
    ...); a subclass or a replacement passed as ``OpenTelemetryMonitor(metrics=...)``
    may add or swap instruments.
    """

    # counters (``add``), up/down counters (``add`` +/-), histograms (``record``), gauges (``set``)
    messages_received: Any
    events_total: Any
    messages_sent: Any
    messages_send_errors: Any
    table_operations: Any
    assignments: Any
    http_requests: Any
    custom_counts: Any
    messages_active: Any
    events_active: Any
    rebalances_active: Any
    rebalances_recovering: Any
    events_runtime: Any
    commit_latency: Any
    send_latency: Any
    send_error_latency: Any
    assignment_latency: Any
    rebalance_return_latency: Any
    rebalance_end_latency: Any
    http_latency: Any
    offset_read: Any
    offset_committed: Any
    offset_end: Any
    producer_buffer: Any

    def __init__(self, meter: Any) -> None:
        self.meter = meter
        for attribute, kind, name, unit, description in INSTRUMENTS:
            create = getattr(meter, _CREATE[kind])
            setattr(self, attribute, create(name, unit=unit, description=description))


class OpenTelemetryMonitor(Monitor):
    """``app.monitor`` that also records every number on OpenTelemetry instruments.

    ``meter``: the ``Meter`` to make instruments from (default: the global
    ``MeterProvider``'s meter named ``service_name``, asked for at the first record,
    so the application may set its provider after making the monitor).
    ``metrics``: ready-made instruments (an :class:`OTelMetrics`). The other keyword
    arguments are the :class:`~detstream.monitor.Monitor`'s.
    """

    def __init__(
        self,
        *,
        meter: Any = None,
        service_name: str = "faust",
        metrics: OTelMetrics | None = None,
        **kwargs: Any,
    ) -> None:
        if meter is None and metrics is None:
            _otel_metrics()  # fails now, naming the package, rather than at the first event
        self.service_name = service_name
        self._meter = meter
        self._metrics = metrics
        #: where the rebalance in progress is: none, active (not returned), recovering.
        self._rebalance = RebalancePhase()
        super().__init__(**kwargs)

    @property
    def meter(self) -> Any:
        """The meter the instruments are made from."""
        if self._meter is None:
            import detstream

            self._meter = _otel_metrics().get_meter(self.service_name, detstream.__version__)
        return self._meter

    @property
    def metrics(self) -> OTelMetrics:
        """The instruments (made on first use)."""
        if self._metrics is None:
            self._metrics = OTelMetrics(self.meter)
        return self._metrics

    # -- attributes ------------------------------------------------------------------------
    @staticmethod
    def _tp_attrs(tp: Any, stream: Any = None) -> dict[str, Any]:
        attrs: dict[str, Any] = {"topic": tp.topic, "partition": tp.partition}
        if stream is not None:
            attrs["stream"] = stream_label(stream)
        return attrs

    # -- messages and events ---------------------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        super().on_message_in(tp, offset, message)
        metrics, attrs = self.metrics, self._tp_attrs(tp)
        metrics.messages_received.add(1, attrs)
        metrics.messages_active.add(1, attrs)
        metrics.offset_read.set(offset, attrs)

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        active = self.messages_active
        super().on_message_out(tp, offset, message)
        if self.messages_active != active:  # not for one received before this monitor
            self.metrics.messages_active.add(-1, self._tp_attrs(tp))

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        state = super().on_stream_event_in(tp, offset, stream, event)
        metrics, attrs = self.metrics, self._tp_attrs(tp, stream)
        metrics.events_total.add(1, attrs)
        metrics.events_active.add(1, attrs)
        return state

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        super().on_stream_event_out(tp, offset, stream, event, state)
        if state is None:  # began before this monitor: not counted in
            return
        metrics, attrs = self.metrics, self._tp_attrs(tp, stream)
        metrics.events_active.add(-1, attrs)
        metrics.events_runtime.record(self.secs_to_ms(state["time_total"]), attrs)

    # -- tables ----------------------------------------------------------------------------
    def on_table_get(self, table: Any, key: Any) -> None:
        super().on_table_get(table, key)
        self.metrics.table_operations.add(1, {"table": table.name, "operation": "get"})

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        super().on_table_set(table, key, value)
        self.metrics.table_operations.add(1, {"table": table.name, "operation": "set"})

    def on_table_del(self, table: Any, key: Any) -> None:
        super().on_table_del(table, key)
        self.metrics.table_operations.add(1, {"table": table.name, "operation": "del"})

    # -- sending and committing ------------------------------------------------------------
    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        super().on_send_completed(producer, state, metadata)
        topic = getattr(metadata, "topic", None)
        self.metrics.messages_sent.add(1, {"topic": topic} if topic is not None else {})
        if state is not None:
            self.metrics.send_latency.record(self.ms_since(state))

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        super().on_send_error(producer, exc, state)
        self.metrics.messages_send_errors.add(1)
        if state is not None:
            self.metrics.send_error_latency.record(self.ms_since(state))

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        super().on_commit_completed(consumer, state)
        if state is not None:
            self.metrics.commit_latency.record(self.ms_since(state))

    def on_tp_commit(self, tp_offsets: Any) -> None:
        super().on_tp_commit(tp_offsets)
        for tp, offset in tp_offsets.items():
            self.metrics.offset_committed.set(offset, self._tp_attrs(tp))

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        super().track_tp_end_offset(tp, offset)
        self.metrics.offset_end.set(offset, self._tp_attrs(tp))

    # -- assignments and rebalances --------------------------------------------------------
    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        super().on_assignment_completed(assignor, state)
        self._assignment("completed", state)

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        super().on_assignment_error(assignor, state, exc)
        self._assignment("error", state)

    def _assignment(self, result: str, state: Any) -> None:
        attrs = {"result": result}
        self.metrics.assignments.add(1, attrs)
        if state is not None:
            self.metrics.assignment_latency.record(self.ms_since(state["time_start"]), attrs)

    def on_rebalance_start(self, app: Any) -> Any:
        state = super().on_rebalance_start(app)
        metrics = self.metrics
        replaced_recovering, counted = self._rebalance.start()
        if replaced_recovering:  # replaced before its end
            metrics.rebalances_recovering.add(-1)
        if counted:  # (one replaced before it returned stays counted once)
            metrics.rebalances_active.add(1)
        return state

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        super().on_rebalance_return(app, state)
        if not self._rebalance.returned(state):
            return
        metrics = self.metrics
        metrics.rebalances_active.add(-1)
        metrics.rebalances_recovering.add(1)
        metrics.rebalance_return_latency.record(self.secs_to_ms(state["latency_return"]))

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        super().on_rebalance_end(app, state)
        if not self._rebalance.ended(state):
            return
        self.metrics.rebalances_recovering.add(-1)
        self.metrics.rebalance_end_latency.record(self.secs_to_ms(state["latency_end"]))

    # -- web and the application's own counts ----------------------------------------------
    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        super().on_web_request_end(app, request, response, state, view=view)
        status = response.status if response is not None else 500
        self.metrics.http_requests.add(1, {"status_code": int(status)})
        if state is not None:
            self.metrics.http_latency.record(self.secs_to_ms(state["latency_end"]))

    def count(self, metric_name: str, count: int = 1) -> None:
        super().count(metric_name, count)
        self.metrics.custom_counts.add(count, {"name": metric_name})


def stream_label(stream: Any) -> str:
    """A stream as an attribute value: its topic names, lower case, ``[<>:\\s]`` as ``_``."""
    channel = getattr(stream, "channel", None)
    label = str(getattr(channel, "label", None) or stream)
    return _NOT_IN_LABELS.sub("_", label).strip("_").lower()
