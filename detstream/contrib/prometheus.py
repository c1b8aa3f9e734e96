"""The Monitor's numbers as ``prometheus_client`` metrics (Faust's ``faust.sensors.prometheus``).

``setup_prometheus_sensors(app)`` makes Faust's metrics in a
``prometheus_client`` registry, makes a :class:`PrometheusMonitor` recording
on them ``app.monitor`` (still a :class:`~detstream.monitor.Monitor`:
``asdict()``, the stats page and ``performance_metrics`` keep working), and
serves the registry's text at ``pattern`` (``/metrics``)::

    from detstream.contrib.prometheus import setup_prometheus_sensors
    setup_prometheus_sensors(app)              # the metrics named {app name}_...

**Two ``/metrics``.** Every worker serves detstream's own metrics
(``detstream_*``, docs/production.md) at ``/metrics`` and ``/metrics/``. The
page added here is an app page, and an app page wins over a built-in one at
the same path: with the default ``pattern`` the worker answers ``/metrics``
with Faust's metrics (and whatever else the registry holds: the default
registry has the process and Python collectors), as a Faust worker did, and
detstream's stay at ``/metrics/``. Scrape both, or give ``pattern`` another
path to keep ``/metrics`` detstream's.

The metrics are Faust's, named ``{name_prefix}_...`` (the app's name, ``-`` and
``.`` as ``_``): see :data:`METRICS`. Latencies are histograms in milliseconds
(:data:`MS_LATENCY_BUCKETS`). The per-topic and per-partition series are
cleared when a rebalance starts and when it ends, as Faust did, so those of
partitions this worker lost go.

Needs ``prometheus_client`` (``pip install prometheus_client``, or
``"detstream[prometheus]"``): without it, ``setup_prometheus_sensors`` and
``FaustMetrics.create`` raise ``ImproperlyConfigured`` saying so. Nothing goes
over the network (the registry is in memory; Prometheus scrapes the page), so
the monitor runs under ``detstream sim`` as anywhere.

Differences from Faust's, on purpose: ``registry`` defaults to None, meaning
``prometheus_client.REGISTRY`` (so this module imports without the package);
making the metrics again for the same registry and prefix (an app made again
in one process: each worker of ``detstream sim``, a test) replaces the earlier
ones instead of failing on duplicated names; rebalance and HTTP latencies are
the time from the rebalance's (request's) start (Faust's: about 0); the
rebalance gauges go up and down in pairs (a rebalance replaced before it
returned is not left counted); a hook whose pair began before the monitor was
registered records no time and counts nothing down; the metrics' help texts
are detstream's.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

from detstream.errors import ImproperlyConfigured
from detstream.monitor import Monitor
from detstream.web.views import Request, Response, View

from .metric_monitors import RebalancePhase, faust_stream_label, web_status_code

__all__ = [
    "METRICS", "MS_LATENCY_BUCKETS", "FaustMetrics", "PrometheusMonitor",
    "setup_prometheus_sensors",
]

#: histogram buckets of the latencies, in milliseconds (Faust's: prometheus_client's
#: default buckets, which are seconds, times 1000).
MS_LATENCY_BUCKETS = (5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000)

#: (field of FaustMetrics, kind, name after ``{prefix}_``, labels, help) of every metric.
METRICS: tuple[tuple[str, str, str, tuple[str, ...], str], ...] = (
    ("messages_received", "counter", "messages_received", (), "Messages received."),
    ("active_messages", "gauge", "active_messages", (),
     "Messages received and not yet acknowledged by every stream."),
    ("messages_received_per_topics", "counter", "messages_received_per_topic", ("topic",),
     "Messages received, per topic."),
    ("messages_received_per_topics_partition", "gauge", "messages_received_per_topics_partition",
     ("topic", "partition"), "The offset last read, per topic partition."),
    ("events_runtime_latency", "histogram", "events_runtime_ms", (),
     "Time an agent took for a stream event, in ms."),
    ("total_events", "counter", "total_events", (), "Stream events given to agents."),
    ("total_active_events", "gauge", "total_active_events", (),
     "Stream events an agent is processing."),
    ("total_events_per_stream", "counter", "total_events_per_stream", ("stream",),
     "Stream events given to agents, per stream."),
    ("table_operations", "counter", "table_operations", ("table", "operation"),
     "Table keys read, written and deleted."),
    ("topic_messages_sent", "counter", "topic_messages_sent", ("topic",),
     "Messages queued for sending, per topic."),
    ("total_sent_messages", "counter", "total_sent_messages", (),
     "Messages the broker acknowledged."),
    ("producer_send_latency", "histogram", "producer_send_latency", (),
     "Time from queueing a message to the broker's acknowledgement, in ms."),
    ("total_error_messages_sent", "counter", "total_error_messages_sent", (),
     "Messages the broker (or the client) refused."),
    ("producer_error_send_latency", "histogram", "producer_error_send_latency", (),
     "Time from queueing a message to its refusal, in ms."),
    ("assignment_operations", "counter", "assignment_operations", ("operation",),
     "Partition assignments computed (completed or error)."),
    ("assign_latency", "histogram", "assign_latency", (),
     "Time to compute the partition assignment, in ms."),
    ("total_rebalances", "gauge", "total_rebalances", (),
     "Rebalances started and not yet returned."),
    ("total_rebalances_recovering", "gauge", "total_rebalances_recovering", (),
     "Rebalances returned whose partitions are not yet open to the agents."),
    ("rebalance_done_consumer_latency", "histogram", "rebalance_done_consumer_latency", (),
     "Time from a rebalance's start until the new assignment was taken, in ms."),
    ("rebalance_done_latency", "histogram", "rebalance_done_latency", (),
     "Time from a rebalance's start until its partitions were open to the agents, in ms."),
    ("count_metrics_by_name", "gauge", "metrics_by_name", ("metric",),
     "The application's own counts (monitor.count), by name."),
    ("http_status_codes", "counter", "http_status_codes", ("status_code",),
     "Web requests answered, per status code."),
    ("http_latency", "histogram", "http_latency", (), "Web request latency, in ms."),
    ("topic_partition_end_offset", "gauge", "topic_partition_end_offset",
     ("topic", "partition"), "The log end offset, per topic partition."),
    ("topic_partition_offset_commited", "gauge", "topic_partition_offset_commited",
     ("topic", "partition"), "The offset committed, per topic partition."),
    ("consumer_commit_latency", "histogram", "consumer_commit_latency", (),
     "Offset commit latency, in ms."),
)

#: the series of assigned partitions (cleared at a rebalance's start and end).
_PER_PARTITION = ("messages_received_per_topics_partition", "topic_partition_end_offset",
                  "topic_partition_offset_commited", "messages_received_per_topics",
                  "topic_messages_sent")

#: registry -> {prefix: the metrics made last for it}, so that making them again replaces them.
_MADE: weakref.WeakKeyDictionary[Any, dict[str, FaustMetrics]] = weakref.WeakKeyDictionary()


def _prometheus_client() -> Any:
    """``prometheus_client``, or a clear error naming what to install."""
    try:
        import prometheus_client
    except ImportError:
        raise ImproperlyConfigured(
            "the Prometheus monitor needs prometheus_client: pip install prometheus_client "
            '(or "detstream[prometheus]")'
        ) from None
    return prometheus_client


class FaustMetrics(NamedTuple):
    """Faust's metrics, one ``prometheus_client`` metric per field (see :data:`METRICS`)."""

    messages_received: Any
    active_messages: Any
    messages_received_per_topics: Any
    messages_received_per_topics_partition: Any
    events_runtime_latency: Any
    total_events: Any
    total_active_events: Any
    total_events_per_stream: Any
    table_operations: Any
    topic_messages_sent: Any
    total_sent_messages: Any
    producer_send_latency: Any
    total_error_messages_sent: Any
    producer_error_send_latency: Any
    assignment_operations: Any
    assign_latency: Any
    total_rebalances: Any
    total_rebalances_recovering: Any
    rebalance_done_consumer_latency: Any
    rebalance_done_latency: Any
    count_metrics_by_name: Any
    http_status_codes: Any
    http_latency: Any
    topic_partition_end_offset: Any
    topic_partition_offset_commited: Any
    consumer_commit_latency: Any

    @classmethod
    def create(cls, registry: Any, app_name: str) -> FaustMetrics:
        """Faust's metrics named ``{app_name}_...``, registered in ``registry``.

        Metrics made before for the same registry and name are unregistered
        first (their monitor records on, unseen): an app made again in one
        process starts from zero instead of failing on duplicated names.
        """
        client = _prometheus_client()
        made = _MADE.setdefault(registry, {})
        earlier = made.pop(app_name, None)
        if earlier is not None:
            earlier.unregister(registry)
        metrics = cls(**{
            field: _make(client, kind, f"{app_name}_{name}", description, labels, registry)
            for field, kind, name, labels, description in METRICS
        })
        made[app_name] = metrics
        return metrics

    def unregister(self, registry: Any) -> None:
        """Take every one of these metrics out of ``registry``."""
        for metric in self:
            try:
                registry.unregister(metric)
            except KeyError:  # taken out already
                pass

    def clear_topic_related_metrics(self) -> None:
        """Drop the series of topics and partitions (the assignment changes)."""
        for field in _PER_PARTITION:
            getattr(self, field).clear()


def _make(
    client: Any, kind: str, name: str, description: str, labels: tuple[str, ...], registry: Any
) -> Any:
    if kind == "counter":
        return client.Counter(name, description, labels, registry=registry)
    if kind == "gauge":
        return client.Gauge(name, description, labels, registry=registry)
    return client.Histogram(name, description, labels, registry=registry,
                            buckets=MS_LATENCY_BUCKETS)


class PrometheusMonitor(Monitor):
    """``app.monitor`` that also records every number on :class:`FaustMetrics`.

    ``metrics``: made by ``FaustMetrics.create(registry, prefix)`` (what
    :func:`setup_prometheus_sensors` does). The other keyword arguments are the
    :class:`~detstream.monitor.Monitor`'s.
    """

    ERROR = "error"
    COMPLETED = "completed"
    KEYS_RETRIEVED = "keys_retrieved"
    KEYS_UPDATED = "keys_updated"
    KEYS_DELETED = "keys_deleted"

    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._metrics = metrics
        self._rebalance = RebalancePhase()

    # -- messages and events ---------------------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        super().on_message_in(tp, offset, message)
        metrics = self._metrics
        metrics.messages_received.inc()
        metrics.active_messages.inc()
        metrics.messages_received_per_topics.labels(topic=tp.topic).inc()
        metrics.messages_received_per_topics_partition.labels(
            topic=tp.topic, partition=tp.partition).set(offset)

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        active = self.messages_active
        super().on_message_out(tp, offset, message)
        if self.messages_active != active:  # not for one received before this monitor
            self._metrics.active_messages.dec()

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        state = super().on_stream_event_in(tp, offset, stream, event)
        metrics = self._metrics
        metrics.total_events.inc()
        metrics.total_active_events.inc()
        metrics.total_events_per_stream.labels(
            stream=f"stream.{faust_stream_label(stream)}.events").inc()
        return state

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        super().on_stream_event_out(tp, offset, stream, event, state)
        if state is None:  # began before this monitor: not counted in
            return
        self._metrics.total_active_events.dec()
        self._metrics.events_runtime_latency.observe(self.secs_to_ms(state["time_total"]))

    # -- tables ----------------------------------------------------------------------------
    def on_table_get(self, table: Any, key: Any) -> None:
        super().on_table_get(table, key)
        self._table_operation(table, self.KEYS_RETRIEVED)

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        super().on_table_set(table, key, value)
        self._table_operation(table, self.KEYS_UPDATED)

    def on_table_del(self, table: Any, key: Any) -> None:
        super().on_table_del(table, key)
        self._table_operation(table, self.KEYS_DELETED)

    def _table_operation(self, table: Any, operation: str) -> None:
        self._metrics.table_operations.labels(
            table=f"table.{table.name}", operation=operation).inc()

    # -- committing and sending ------------------------------------------------------------
    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        super().on_commit_completed(consumer, state)
        if state is not None:
            self._metrics.consumer_commit_latency.observe(self.ms_since(state))

    def on_tp_commit(self, tp_offsets: Mapping[Any, int]) -> None:
        super().on_tp_commit(tp_offsets)
        committed = self._metrics.topic_partition_offset_commited
        for tp, offset in tp_offsets.items():
            committed.labels(topic=tp.topic, partition=tp.partition).set(offset)

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        super().track_tp_end_offset(tp, offset)
        self._metrics.topic_partition_end_offset.labels(
            topic=tp.topic, partition=tp.partition).set(offset)

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        self._metrics.topic_messages_sent.labels(topic=f"topic.{topic}").inc()
        return super().on_send_initiated(producer, topic, message, keysize, valsize)

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        super().on_send_completed(producer, state, metadata)
        self._metrics.total_sent_messages.inc()
        if state is not None:
            self._metrics.producer_send_latency.observe(self.ms_since(state))

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        super().on_send_error(producer, exc, state)
        self._metrics.total_error_messages_sent.inc()
        if state is not None:
            self._metrics.producer_error_send_latency.observe(self.ms_since(state))

    # -- assignments and rebalances --------------------------------------------------------
    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        super().on_assignment_completed(assignor, state)
        self._assignment(self.COMPLETED, state)

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        super().on_assignment_error(assignor, state, exc)
        self._assignment(self.ERROR, state)

    def _assignment(self, operation: str, state: Any) -> None:
        self._metrics.assignment_operations.labels(operation=operation).inc()
        if state is not None:
            self._metrics.assign_latency.observe(self.ms_since(state["time_start"]))

    def on_rebalance_start(self, app: Any) -> Any:
        state = super().on_rebalance_start(app)
        metrics = self._metrics
        metrics.clear_topic_related_metrics()
        replaced_recovering, counted = self._rebalance.start()
        if replaced_recovering:
            metrics.total_rebalances_recovering.dec()
        if counted:
            metrics.total_rebalances.inc()
        return state

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        super().on_rebalance_return(app, state)
        if not self._rebalance.returned(state):
            return
        metrics = self._metrics
        metrics.total_rebalances.dec()
        metrics.total_rebalances_recovering.inc()
        metrics.rebalance_done_consumer_latency.observe(self.secs_to_ms(state["latency_return"]))

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        super().on_rebalance_end(app, state)
        metrics = self._metrics
        metrics.clear_topic_related_metrics()
        if not self._rebalance.ended(state):
            return
        metrics.total_rebalances_recovering.dec()
        metrics.rebalance_done_latency.observe(self.secs_to_ms(state["latency_end"]))

    # -- web, the application's own counts -------------------------------------------------
    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        super().on_web_request_end(app, request, response, state, view=view)
        metrics = self._metrics
        metrics.http_status_codes.labels(status_code=web_status_code(response, state)).inc()
        if state is not None:
            metrics.http_latency.observe(self.secs_to_ms(state["latency_end"]))

    def count(self, metric_name: str, count: int = 1) -> None:
        super().count(metric_name, count)
        self._metrics.count_metrics_by_name.labels(metric=metric_name).inc(count)


def setup_prometheus_sensors(
    app: Any,
    pattern: str = "/metrics",
    registry: Any = None,
    name_prefix: str | None = None,
) -> None:
    """Faust's metrics for ``app``: a :class:`PrometheusMonitor` as ``app.monitor``, served at ``pattern``.

    ``registry``: where the metrics are registered and what the page serves
    (None: ``prometheus_client.REGISTRY``). ``name_prefix``: the metrics'
    names start with it and ``_`` (None: the app's name); ``-`` and ``.``
    become ``_``. The page at ``pattern`` is an app page: at ``/metrics`` it
    answers instead of detstream's own metrics, which stay at ``/metrics/``
    (see the module).
    """
    client = _prometheus_client()
    if registry is None:
        registry = client.REGISTRY
    prefix = app.conf.name if name_prefix is None else name_prefix
    prefix = prefix.replace("-", "_").replace(".", "_")
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, prefix))
    app.page(pattern, name=f"prometheus:{pattern}")(registry_page(registry))


def registry_page(registry: Any) -> type[View]:
    """A View answering GET with ``registry``'s metrics in Prometheus' text format."""
    client = _prometheus_client()
    content_type = client.CONTENT_TYPE_LATEST

    class PrometheusRegistryPage(View):
        async def get(self, request: Request) -> Response:
            return Response(client.generate_latest(registry), content_type=content_type,
                            headers={"Content-Type": content_type})

    return PrometheusRegistryPage
