"""The Monitor's numbers sent to statsd (Faust's ``faust.sensors.statsd``).

A :class:`StatsdMonitor` is ``app.monitor`` (a :class:`~detstream.monitor.Monitor`:
``asdict()``, the stats page and ``performance_metrics`` keep working) that
also sends each event to a statsd server over UDP, with Faust's metric names,
so dashboards built for a Faust worker read a detstream one::

    app = detstream.App("orders", monitor=StatsdMonitor(host="statsd", prefix="orders"))

Metrics, each under ``{prefix}.`` (``rate`` is the sample rate of counters and
timers; times in milliseconds):

- counters: ``messages_received``, ``topic.{topic}.messages_received``,
  ``messages_active`` (up at receipt, down once every stream acked), ``events``,
  ``stream.{stream}.events`` (the stream as Faust named it: ``topic_orders``),
  ``events_active``, ``table.{table}.keys_retrieved``/``keys_updated``/
  ``keys_deleted``, ``topic.{topic}.messages_sent`` (queued), ``messages_sent``
  (acknowledged), ``messages_sent_error``, ``assignments_complete``,
  ``assignments_error``, ``rebalances`` (up at the start, down at the return),
  ``rebalances_recovering`` (up at the return, down at the end),
  ``http_status_code.{code}``, and each ``monitor.count(name, n)`` as ``name``;
- timers: ``events_runtime``, ``commit_latency``, ``send_latency``,
  ``send_latency_for_error``, ``assignment_latency``, ``rebalance_return_latency``,
  ``rebalance_end_latency``, ``http_response_latency``;
- gauges: ``read_offset.{topic}.{partition}``,
  ``committed_offset.{topic}.{partition}``, ``end_offset.{topic}.{partition}``.

Needs the ``statsd`` package (``pip install statsd``, or ``"detstream[statsd]"``):
without it, making the monitor raises ``ImproperlyConfigured`` saying so. The
client is made at the first metric and a failure to make it is a log line, not
a crash (:mod:`detstream.contrib.udp_metrics`); under ``detstream sim`` the
sandbox refuses it, so nothing is sent and the run is the same as without.

Differences from Faust's, on purpose: ``rebalance_return_latency``,
``rebalance_end_latency`` and ``http_response_latency`` are the time from the
rebalance's (request's) start, where Faust's timed the moment since it had
measured the latency (about 0); a rebalance replaced before it returned is not
left counted up in ``rebalances`` (see
:class:`~detstream.contrib.metric_monitors.RebalancePhase`); a hook whose pair
began before this monitor was registered sends no down count and no time
(Faust's raised).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detstream.errors import ImproperlyConfigured

from .metric_monitors import faust_stream_label, web_status_code
from .udp_metrics import UdpMetricsMonitor

__all__ = ["StatsdMonitor"]


def _statsd() -> Any:
    """The ``statsd`` package, or a clear error naming what to install."""
    try:
        import statsd
    except ImportError:
        raise ImproperlyConfigured(
            'StatsdMonitor needs the statsd package: pip install statsd (or "detstream[statsd]")'
        ) from None
    return statsd


class StatsdMonitor(UdpMetricsMonitor):
    """``app.monitor`` that also sends every number to statsd (see the module).

    ``host``, ``port``: the statsd server (UDP). ``prefix``: put before every
    metric name. ``rate``: the sample rate of counters and timers (1.0: all).
    The other keyword arguments are the :class:`~detstream.monitor.Monitor`'s.
    """

    server = "statsd"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _statsd()  # fails now, naming the package, rather than at the first event
        super().__init__(*args, **kwargs)

    def _make_client(self) -> Any:
        return self._new_statsd_client()

    def _new_statsd_client(self) -> Any:
        """A ``statsd.StatsClient`` for this monitor (Faust's name: a subclass may override it)."""
        return _statsd().StatsClient(host=self.host, port=self.port, prefix=self.prefix)

    # -- messages and events ---------------------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        super().on_message_in(tp, offset, message)
        client, rate = self.client, self.rate
        client.incr("messages_received", rate=rate)
        client.incr("messages_active", rate=rate)
        client.incr(f"topic.{tp.topic}.messages_received", rate=rate)
        client.gauge(f"read_offset.{tp.topic}.{tp.partition}", offset)

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        active = self.messages_active
        super().on_message_out(tp, offset, message)
        if self.messages_active != active:  # not for one received before this monitor
            self.client.decr("messages_active", rate=self.rate)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        state = super().on_stream_event_in(tp, offset, stream, event)
        client, rate = self.client, self.rate
        client.incr("events", rate=rate)
        client.incr(f"stream.{faust_stream_label(stream)}.events", rate=rate)
        client.incr("events_active", rate=rate)
        return state

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        super().on_stream_event_out(tp, offset, stream, event, state)
        if state is None:  # began before this monitor: not counted in
            return
        client, rate = self.client, self.rate
        client.decr("events_active", rate=rate)
        client.timing("events_runtime", self.secs_to_ms(state["time_total"]), rate=rate)

    # -- tables ----------------------------------------------------------------------------
    def on_table_get(self, table: Any, key: Any) -> None:
        super().on_table_get(table, key)
        self.client.incr(f"table.{table.name}.keys_retrieved", rate=self.rate)

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        super().on_table_set(table, key, value)
        self.client.incr(f"table.{table.name}.keys_updated", rate=self.rate)

    def on_table_del(self, table: Any, key: Any) -> None:
        super().on_table_del(table, key)
        self.client.incr(f"table.{table.name}.keys_deleted", rate=self.rate)

    # -- committing and sending ------------------------------------------------------------
    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        super().on_commit_completed(consumer, state)
        if state is not None:
            self.client.timing("commit_latency", self.ms_since(state), rate=self.rate)

    def on_tp_commit(self, tp_offsets: Mapping[Any, int]) -> None:
        super().on_tp_commit(tp_offsets)
        client = self.client
        for tp, offset in tp_offsets.items():
            client.gauge(f"committed_offset.{tp.topic}.{tp.partition}", offset)

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        super().track_tp_end_offset(tp, offset)
        self.client.gauge(f"end_offset.{tp.topic}.{tp.partition}", offset)

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        self.client.incr(f"topic.{topic}.messages_sent", rate=self.rate)
        return super().on_send_initiated(producer, topic, message, keysize, valsize)

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        super().on_send_completed(producer, state, metadata)
        client, rate = self.client, self.rate
        client.incr("messages_sent", rate=rate)
        if state is not None:
            client.timing("send_latency", self.ms_since(state), rate=rate)

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        super().on_send_error(producer, exc, state)
        client, rate = self.client, self.rate
        client.incr("messages_sent_error", rate=rate)
        if state is not None:
            client.timing("send_latency_for_error", self.ms_since(state), rate=rate)

    # -- assignments and rebalances --------------------------------------------------------
    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        super().on_assignment_completed(assignor, state)
        self._assignment("assignments_complete", state)

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        super().on_assignment_error(assignor, state, exc)
        self._assignment("assignments_error", state)

    def _assignment(self, counter: str, state: Any) -> None:
        client, rate = self.client, self.rate
        client.incr(counter, rate=rate)
        if state is not None:
            client.timing("assignment_latency", self.ms_since(state["time_start"]), rate=rate)

    def on_rebalance_start(self, app: Any) -> Any:
        state = super().on_rebalance_start(app)
        replaced_recovering, counted = self._rebalance.start()
        client, rate = self.client, self.rate
        if replaced_recovering:
            client.decr("rebalances_recovering", rate=rate)
        if counted:
            client.incr("rebalances", rate=rate)
        return state

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        super().on_rebalance_return(app, state)
        if not self._rebalance.returned(state):
            return
        client, rate = self.client, self.rate
        client.decr("rebalances", rate=rate)
        client.incr("rebalances_recovering", rate=rate)
        client.timing("rebalance_return_latency", self.secs_to_ms(state["latency_return"]),
                      rate=rate)

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        super().on_rebalance_end(app, state)
        if not self._rebalance.ended(state):
            return
        client, rate = self.client, self.rate
        client.decr("rebalances_recovering", rate=rate)
        client.timing("rebalance_end_latency", self.secs_to_ms(state["latency_end"]), rate=rate)

    # -- web and the application's own counts ----------------------------------------------
    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        super().on_web_request_end(app, request, response, state, view=view)
        client, rate = self.client, self.rate
        client.incr(f"http_status_code.{web_status_code(response, state)}", rate=rate)
        if state is not None:
            client.timing("http_response_latency", self.secs_to_ms(state["latency_end"]),
                          rate=rate)

    def count(self, metric_name: str, count: int = 1) -> None:
        super().count(metric_name, count)
        self.client.incr(metric_name, count=count, rate=self.rate)
