"""The Monitor's numbers sent to a Datadog agent over DogStatsD (Faust's ``faust.sensors.datadog``).

A :class:`DatadogMonitor` is ``app.monitor`` (a :class:`~detstream.monitor.Monitor`:
``asdict()``, the stats page and ``performance_metrics`` keep working) that
also sends each event to the Datadog agent's DogStatsD port, with Faust's
metric names and tags::

    app = detstream.App("orders", monitor=DatadogMonitor(host="dd-agent", prefix="orders"))

Metrics, each under the namespace ``{prefix}.``, their dimensions in tags
(``topic``, ``partition``, ``stream``, ``table``; values with anything but
``[0-9a-zA-Z_]`` replaced by ``_``); ``rate`` is every metric's sample rate,
times are in milliseconds:

- counts: ``messages_received``, ``messages_active`` (down once every stream
  acked) (topic, partition), ``topic_messages_received`` (topic), ``events``,
  ``events_active`` (topic, partition, stream: the stream as Faust named it,
  ``topic_orders``), ``table_keys_retrieved``/``_updated``/``_deleted``
  (table), ``topic_messages_sent`` (topic; queued), ``messages_sent``
  (acknowledged), ``messages_send_failed``, ``assignments_complete``,
  ``assignments_error``, ``rebalances``, ``rebalances_recovering``,
  ``http_status_code.{code}``, and each ``monitor.count(name, n)`` as ``name``;
- timings: ``events_runtime`` (topic, partition, stream), ``commit_latency``,
  ``send_latency``, ``send_latency_for_error``, ``assignment_latency``,
  ``rebalance_return_latency``, ``rebalance_end_latency``, ``http_response_latency``;
- gauges: ``read_offset``, ``committed_offset``, ``end_offset`` (topic, partition).

Needs the ``datadog`` package (``pip install datadog``, or
``"detstream[datadog]"``): without it, making the monitor raises
``ImproperlyConfigured`` saying so. The DogStatsd client is made, and its UDP
socket connected, at the first metric; a failure to is a log line, not a crash
(:mod:`detstream.contrib.udp_metrics`). Under ``detstream sim`` the sandbox
refuses it, so nothing is sent and the run is the same as without.

Differences from Faust's, on purpose: as
:mod:`detstream.contrib.statsd`'s (rebalance and HTTP latencies from their
start, rebalances counted up and down in pairs, no down count or time for a
pair begun before the monitor). ``threaded_producer_buffer`` is never sent:
detstream has no threaded producer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from detstream.errors import ImproperlyConfigured

from .metric_monitors import faust_stream_label, web_status_code
from .udp_metrics import UdpMetricsMonitor

__all__ = ["DatadogMonitor", "DatadogStatsClient"]

#: what a tag name or value may not hold (Faust's sanitising), and what replaces it.
_NOT_IN_TAGS = re.compile(r"[^0-9a-zA-Z_]")


def _dogstatsd() -> Any:
    """DogStatsd's class, or a clear error naming what to install."""
    try:
        from datadog.dogstatsd import DogStatsd
    except ImportError:
        raise ImproperlyConfigured(
            'DatadogMonitor needs the datadog package: pip install datadog (or "detstream[datadog]")'
        ) from None
    return DogStatsd


def encode_tags(labels: Mapping[str, Any] | None) -> list[str] | None:
    """``{"topic": "a.b"}`` as DogStatsD tags, ``["topic:a_b"]``; None for no labels."""
    if not labels:
        return None
    return [f"{_NOT_IN_TAGS.sub('_', str(k))}:{_NOT_IN_TAGS.sub('_', str(v))}"
            for k, v in labels.items()]


class DatadogStatsClient:
    """A DogStatsd with statsd's method names too, labels as tags, one sample rate for all.

    ``kwargs`` go to ``DogStatsd`` (``constant_tags``, ``socket_path``, ...);
    ``client`` is the DogStatsd itself.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8125,
        prefix: str = "faust-app",
        rate: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.client = _dogstatsd()(host=host, port=port, namespace=prefix, **kwargs)
        self.rate = rate

    def gauge(self, metric: str, value: float, labels: Mapping[str, Any] | None = None) -> None:
        self.client.gauge(metric, value=value, tags=encode_tags(labels), sample_rate=self.rate)

    def increment(
        self, metric: str, value: float = 1.0, labels: Mapping[str, Any] | None = None
    ) -> None:
        self.client.increment(metric, value=value, tags=encode_tags(labels),
                              sample_rate=self.rate)

    def decrement(
        self, metric: str, value: float = 1.0, labels: Mapping[str, Any] | None = None
    ) -> None:
        self.client.decrement(metric, value=value, tags=encode_tags(labels),
                              sample_rate=self.rate)

    def incr(self, metric: str, count: int = 1) -> None:
        """statsd's name for :meth:`increment`."""
        self.increment(metric, value=count)

    def decr(self, metric: str, count: float = 1.0) -> None:
        """statsd's name for :meth:`decrement`."""
        self.decrement(metric, value=count)

    def timing(self, metric: str, value: float, labels: Mapping[str, Any] | None = None) -> None:
        self.client.timing(metric, value=value, tags=encode_tags(labels), sample_rate=self.rate)

    def timed(
        self, metric: str | None = None, labels: Mapping[str, Any] | None = None,
        use_ms: bool | None = None,
    ) -> Any:
        """DogStatsd's timer (a decorator and a context manager) with these labels."""
        return self.client.timed(metric=metric, tags=encode_tags(labels), sample_rate=self.rate,
                                 use_ms=use_ms)

    def histogram(
        self, metric: str, value: float, labels: Mapping[str, Any] | None = None
    ) -> None:
        self.client.histogram(metric, value=value, tags=encode_tags(labels),
                              sample_rate=self.rate)


class DatadogMonitor(UdpMetricsMonitor):
    """``app.monitor`` that also sends every number to DogStatsD (see the module).

    ``host``, ``port``: the Datadog agent's DogStatsD (UDP). ``prefix``: the
    metrics' namespace. ``rate``: every metric's sample rate (1.0: all). The
    other keyword arguments are the :class:`~detstream.monitor.Monitor`'s.
    """

    server = "DogStatsD"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _dogstatsd()  # fails now, naming the package, rather than at the first event
        super().__init__(*args, **kwargs)

    def _new_datadog_stats_client(self) -> DatadogStatsClient:
        """This monitor's client (Faust's name: a subclass may override it)."""
        return DatadogStatsClient(host=self.host, port=self.port, prefix=self.prefix,
                                  rate=self.rate)

    def _make_client(self) -> DatadogStatsClient:
        """The client with its socket connected now, so that a failure is ours to report.

        DogStatsd connects at its first send and logs an error per packet it
        cannot send; connecting here lets :class:`LazyClient` report it once.
        """
        client = self._new_datadog_stats_client()
        get_socket = getattr(getattr(client, "client", None), "get_socket", None)
        if get_socket is not None:
            get_socket()
        return client

    # -- labels ----------------------------------------------------------------------------
    @staticmethod
    def _tp_labels(tp: Any) -> dict[str, Any]:
        return {"topic": tp.topic, "partition": tp.partition}

    def _stream_labels(self, tp: Any, stream: Any) -> dict[str, Any]:
        return {"topic": tp.topic, "partition": tp.partition,
                "stream": faust_stream_label(stream)}

    # -- messages and events ---------------------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        super().on_message_in(tp, offset, message)
        client, labels = self.client, self._tp_labels(tp)
        client.increment("messages_received", labels=labels)
        client.increment("messages_active", labels=labels)
        client.increment("topic_messages_received", labels={"topic": tp.topic})
        client.gauge("read_offset", offset, labels=labels)

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        active = self.messages_active
        super().on_message_out(tp, offset, message)
        if self.messages_active != active:  # not for one received before this monitor
            self.client.decrement("messages_active", labels=self._tp_labels(tp))

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        state = super().on_stream_event_in(tp, offset, stream, event)
        client, labels = self.client, self._stream_labels(tp, stream)
        client.increment("events", labels=labels)
        client.increment("events_active", labels=labels)
        return state

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        super().on_stream_event_out(tp, offset, stream, event, state)
        if state is None:  # began before this monitor: not counted in
            return
        client, labels = self.client, self._stream_labels(tp, stream)
        client.decrement("events_active", labels=labels)
        client.timing("events_runtime", self.secs_to_ms(state["time_total"]), labels=labels)

    # -- tables ----------------------------------------------------------------------------
    def on_table_get(self, table: Any, key: Any) -> None:
        super().on_table_get(table, key)
        self.client.increment("table_keys_retrieved", labels={"table": table.name})

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        super().on_table_set(table, key, value)
        self.client.increment("table_keys_updated", labels={"table": table.name})

    def on_table_del(self, table: Any, key: Any) -> None:
        super().on_table_del(table, key)
        self.client.increment("table_keys_deleted", labels={"table": table.name})

    # -- committing and sending ------------------------------------------------------------
    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        super().on_commit_completed(consumer, state)
        if state is not None:
            self.client.timing("commit_latency", self.ms_since(state))

    def on_tp_commit(self, tp_offsets: Mapping[Any, int]) -> None:
        super().on_tp_commit(tp_offsets)
        client = self.client
        for tp, offset in tp_offsets.items():
            client.gauge("committed_offset", offset, labels=self._tp_labels(tp))

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        super().track_tp_end_offset(tp, offset)
        self.client.gauge("end_offset", offset, labels=self._tp_labels(tp))

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        self.client.increment("topic_messages_sent", labels={"topic": topic})
        return super().on_send_initiated(producer, topic, message, keysize, valsize)

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        super().on_send_completed(producer, state, metadata)
        client = self.client
        client.increment("messages_sent")
        if state is not None:
            client.timing("send_latency", self.ms_since(state))

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        super().on_send_error(producer, exc, state)
        client = self.client
        client.increment("messages_send_failed")
        if state is not None:
            client.timing("send_latency_for_error", self.ms_since(state))

    # -- assignments and rebalances --------------------------------------------------------
    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        super().on_assignment_completed(assignor, state)
        self._assignment("assignments_complete", state)

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        super().on_assignment_error(assignor, state, exc)
        self._assignment("assignments_error", state)

    def _assignment(self, counter: str, state: Any) -> None:
        client = self.client
        client.increment(counter)
        if state is not None:
            client.timing("assignment_latency", self.ms_since(state["time_start"]))

    def on_rebalance_start(self, app: Any) -> Any:
        state = super().on_rebalance_start(app)
        replaced_recovering, counted = self._rebalance.start()
        client = self.client
        if replaced_recovering:
            client.decrement("rebalances_recovering")
        if counted:
            client.increment("rebalances")
        return state

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        super().on_rebalance_return(app, state)
        if not self._rebalance.returned(state):
            return
        client = self.client
        client.decrement("rebalances")
        client.increment("rebalances_recovering")
        client.timing("rebalance_return_latency", self.secs_to_ms(state["latency_return"]))

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        super().on_rebalance_end(app, state)
        if not self._rebalance.ended(state):
            return
        client = self.client
        client.decrement("rebalances_recovering")
        client.timing("rebalance_end_latency", self.secs_to_ms(state["latency_end"]))

    # -- web, the application's own counts -------------------------------------------------
    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        super().on_web_request_end(app, request, response, state, view=view)
        client = self.client
        client.increment(f"http_status_code.{web_status_code(response, state)}")
        if state is not None:
            client.timing("http_response_latency", self.secs_to_ms(state["latency_end"]))

    def count(self, metric_name: str, count: int = 1) -> None:
        super().count(metric_name, count)
        self.client.increment(metric_name, value=count)

    def on_threaded_producer_buffer_processed(self, app: Any, size: int) -> None:
        """Faust's threaded producer's buffer (never called: detstream has no threaded producer)."""
        self.client.gauge("threaded_producer_buffer", size)
