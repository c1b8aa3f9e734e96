"""``app.monitor``: Faust's in-memory statistics sensor (``faust.Monitor``).

A ``Monitor`` is a :class:`~detstream.sensors.Sensor` that counts what its hooks are
told: messages received, active and sent (per topic), events per stream and per
task, events and messages per second, event run times, commit, send, assignment,
rebalance and HTTP latencies, full stream buffers, table reads and writes, and the
offsets read, committed and at the log end per partition. ``asdict()`` returns it
all with Faust's keys; ``/`` serves it when ``web_stats_enabled`` (or ``debug``) is
on. ``app.monitor`` makes one and registers it on first use; ``App(monitor=...)``
registers your own (a subclass, say).

Time is the running loop's (virtual under the simulator, so a run's numbers depend
only on its seed), and the monitor schedules nothing: Faust's once-a-second
sampler is replaced by reading the clock where the monitor already does, so
``events_s`` and ``messages_s`` are the counts of the last whole second (0 once a
second passed without any), and the ``*_avg`` values are the medians of their
history when read. A sensor must not slow a worker down: the monitor keeps no
reference to a message and formats no string per event.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable, Mapping, MutableMapping
from http import HTTPStatus
from statistics import median
from typing import Any

from .sensors import Sensor, sensor_time

__all__ = ["Monitor", "TableState", "by_topic", "tp_label"]

#: how many values each history keeps (Faust's defaults).
MAX_AVG_HISTORY = 100
MAX_COMMIT_LATENCY_HISTORY = 30
MAX_SEND_LATENCY_HISTORY = 30
MAX_ASSIGNMENT_LATENCY_HISTORY = 30


class TableState:
    """How often a table's keys were read, written and deleted."""

    def __init__(self, table: Any, *, keys_retrieved: int = 0, keys_updated: int = 0,
                 keys_deleted: int = 0) -> None:
        self.table = table
        self.keys_retrieved = keys_retrieved
        self.keys_updated = keys_updated
        self.keys_deleted = keys_deleted

    def asdict(self) -> dict[str, int]:
        return {
            "keys_retrieved": self.keys_retrieved,
            "keys_updated": self.keys_updated,
            "keys_deleted": self.keys_deleted,
        }

    def __repr__(self) -> str:
        return f"<TableState: {getattr(self.table, 'name', self.table)} {self.asdict()}>"


def _push(history: deque[float], value: float, most: int) -> None:
    """Append ``value``, dropping the oldest beyond ``most`` (Faust's ``deque_pushpopmax``)."""
    history.append(value)
    while len(history) > most:
        history.popleft()


class Monitor(Sensor):
    """Faust's default sensor: statistics about this worker, in memory (see the module)."""

    max_avg_history: int = MAX_AVG_HISTORY
    max_commit_latency_history: int = MAX_COMMIT_LATENCY_HISTORY
    max_send_latency_history: int = MAX_SEND_LATENCY_HISTORY
    max_assignment_latency_history: int = MAX_ASSIGNMENT_LATENCY_HISTORY

    #: Faust's counters with no hook here to count them; kept for its ``asdict`` shape.
    send_errors = 0
    assignments_completed = 0
    assignments_failed = 0
    rebalances = 0

    def __init__(
        self,
        *,
        max_avg_history: int | None = None,
        max_commit_latency_history: int | None = None,
        max_send_latency_history: int | None = None,
        max_assignment_latency_history: int | None = None,
        messages_sent: int = 0,
        tables: MutableMapping[str, TableState] | None = None,
        messages_active: int = 0,
        events_active: int = 0,
        messages_received_total: int = 0,
        events_total: int = 0,
        events_runtime: deque[float] | None = None,
        commit_latency: deque[float] | None = None,
        send_latency: deque[float] | None = None,
        assignment_latency: deque[float] | None = None,
        rebalances: int | None = None,
        rebalance_return_latency: deque[float] | None = None,
        rebalance_end_latency: deque[float] | None = None,
        http_response_latency: deque[float] | None = None,
        time: Callable[[], float] = sensor_time,
        **kwargs: Any,
    ) -> None:
        if kwargs:  # Faust's other keywords are values its sampler overwrote: accepted
            unknown = sorted(set(kwargs) - _FAUST_SAMPLED)
            if unknown:
                raise TypeError(f"Monitor() got unexpected keyword arguments {unknown}")
        for name, value in (
            ("max_avg_history", max_avg_history),
            ("max_commit_latency_history", max_commit_latency_history),
            ("max_send_latency_history", max_send_latency_history),
            ("max_assignment_latency_history", max_assignment_latency_history),
            ("rebalances", rebalances),
        ):
            if value is not None:
                setattr(self, name, value)
        #: the clock every duration here is measured on (the running loop's by default).
        self.time = time
        self.tables: MutableMapping[str, TableState] = {} if tables is None else tables
        self.messages_active = messages_active
        self.messages_received_total = messages_received_total
        self.messages_received_by_topic: Counter[str] = Counter()
        self.messages_sent = messages_sent
        self.messages_sent_by_topic: Counter[str] = Counter()
        self.events_active = events_active
        self.events_total = events_total
        #: events per stream (keyed by the stream, named in ``asdict``).
        self.events_by_stream: Counter[Any] = Counter()
        #: events per asyncio task name (an agent's actor: ``Actor(name#index)``).
        self.events_by_task: Counter[str] = Counter()
        self.events_runtime: deque[float] = deque() if events_runtime is None else events_runtime
        self.commit_latency: deque[float] = deque() if commit_latency is None else commit_latency
        self.send_latency: deque[float] = deque() if send_latency is None else send_latency
        self.assignment_latency: deque[float] = (
            deque() if assignment_latency is None else assignment_latency
        )
        self.rebalance_return_latency: deque[float] = (
            deque() if rebalance_return_latency is None else rebalance_return_latency
        )
        self.rebalance_end_latency: deque[float] = (
            deque() if rebalance_end_latency is None else rebalance_end_latency
        )
        self.http_response_codes: Counter[HTTPStatus | int] = Counter()
        self.http_response_latency: deque[float] = (
            deque() if http_response_latency is None else http_response_latency
        )
        self.topic_buffer_full: Counter[Any] = Counter()
        self.metric_counts: Counter[str] = Counter()
        self.tp_committed_offsets: MutableMapping[Any, int] = {}
        self.tp_read_offsets: MutableMapping[Any, int] = {}
        self.tp_end_offsets: MutableMapping[Any, int] = {}
        self.stream_inbound_time: dict[Any, float] = {}
        # per-second rates: counts of the second in progress, and of the last whole one
        self._second_end: float | None = None
        self._events_this_second = 0
        self._messages_this_second = 0
        self._events_s = 0
        self._messages_s = 0

    # -- time ------------------------------------------------------------------------------
    def secs_since(self, start_time: float) -> float:
        """Seconds from ``start_time`` to now, on the monitor's clock."""
        return self.time() - start_time

    def ms_since(self, start_time: float) -> float:
        return self.secs_to_ms(self.secs_since(start_time))

    def secs_to_ms(self, timestamp: float) -> float:
        return timestamp * 1000.0

    def _tick(self, now: float) -> None:
        """Close the seconds that passed by ``now``: the rates are the last whole one's."""
        end = self._second_end
        if end is None:
            self._second_end = now + 1.0
            return
        if now < end:
            return
        if now < end + 1.0:  # the second just closed is the last whole one
            self._events_s, self._messages_s = self._events_this_second, self._messages_this_second
        else:  # a whole second went by with nothing counted
            self._events_s = self._messages_s = 0
        self._events_this_second = self._messages_this_second = 0
        self._second_end = end + 1.0 * (int(now - end) + 1)

    @property
    def events_s(self) -> int:
        """Events started in the last whole second."""
        self._tick(self.time())
        return self._events_s

    @property
    def messages_s(self) -> int:
        """Messages received in the last whole second."""
        self._tick(self.time())
        return self._messages_s

    @property
    def events_runtime_avg(self) -> float:
        """Median time an agent took per event, over the last ``max_avg_history`` events."""
        return median(self.events_runtime) if self.events_runtime else 0.0

    @property
    def rebalance_return_avg(self) -> float:
        return median(self.rebalance_return_latency) if self.rebalance_return_latency else 0.0

    @property
    def rebalance_end_avg(self) -> float:
        return median(self.rebalance_end_latency) if self.rebalance_end_latency else 0.0

    @property
    def http_response_latency_avg(self) -> float:
        return median(self.http_response_latency) if self.http_response_latency else 0.0

    # -- Faust's asdict ----------------------------------------------------------------------
    def asdict(self) -> dict[str, Any]:
        """Every statistic, with Faust's keys (offsets as ``{topic: {partition: offset}}``)."""
        return {
            "messages_active": self.messages_active,
            "messages_received_total": self.messages_received_total,
            "messages_sent": self.messages_sent,
            "messages_sent_by_topic": self.messages_sent_by_topic,
            "messages_s": self.messages_s,
            "messages_received_by_topic": self.messages_received_by_topic,
            "events_active": self.events_active,
            "events_total": self.events_total,
            "events_s": self.events_s,
            "events_runtime_avg": self.events_runtime_avg,
            "events_by_task": dict(self.events_by_task),
            "events_by_stream": {repr(s): n for s, n in self.events_by_stream.items()},
            "commit_latency": self.commit_latency,
            "send_latency": self.send_latency,
            "send_errors": self.send_errors,
            "assignment_latency": self.assignment_latency,
            "assignments_completed": self.assignments_completed,
            "assignments_failed": self.assignments_failed,
            "topic_buffer_full": {tp_label(tp): n for tp, n in self.topic_buffer_full.items()},
            "tables": {name: table.asdict() for name, table in self.tables.items()},
            "metric_counts": dict(self.metric_counts),
            "topic_committed_offsets": by_topic(self.tp_committed_offsets),
            "topic_read_offsets": by_topic(self.tp_read_offsets),
            "topic_end_offsets": by_topic(self.tp_end_offsets),
            "rebalances": self.rebalances,
            "rebalance_return_latency": self.rebalance_return_latency,
            "rebalance_end_latency": self.rebalance_end_latency,
            "rebalance_return_avg": self.rebalance_return_avg,
            "rebalance_end_avg": self.rebalance_end_avg,
            "http_response_codes": {int(c): n for c, n in self.http_response_codes.items()},
            "http_response_latency": self.http_response_latency,
            "http_response_latency_avg": self.http_response_latency_avg,
        }

    # -- what an app counts itself, and what the engine feeds a monitor -------------------
    def count(self, metric_name: str, count: int = 1) -> None:
        """Add ``count`` to an app's own metric (``metric_counts``)."""
        self.metric_counts[metric_name] += count

    def on_tp_commit(self, tp_offsets: Mapping[Any, int]) -> None:
        """Offsets were committed (the next offset to read, per partition)."""
        self.tp_committed_offsets.update(tp_offsets)

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        """The log end of ``tp`` as the last fetch saw it (for lag)."""
        self.tp_end_offsets[tp] = offset

    # -- the hooks ---------------------------------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self.messages_received_total += 1
        self.messages_active += 1
        self.messages_received_by_topic[tp.topic] += 1
        self.tp_read_offsets[tp] = offset
        self._tick(self.time())
        self._messages_this_second += 1

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        now = self.time()
        self._tick(now)
        self._events_this_second += 1
        self.events_total += 1
        self.events_active += 1
        self.stream_inbound_time[tp] = now
        self.events_by_stream[stream] += 1
        self.events_by_task[_task_name()] += 1
        return {"time_in": now, "time_out": None, "time_total": None}

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        if state is None:  # the event began before this monitor was registered
            return
        time_out = self.time()
        time_total = time_out - state["time_in"]
        self.events_active -= 1
        state.update(time_out=time_out, time_total=time_total)
        _push(self.events_runtime, time_total, self.max_avg_history)

    def on_topic_buffer_full(self, tp: Any) -> None:
        self.topic_buffer_full[tp] += 1

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        if self.messages_active > 0:  # not below 0 for messages received before registration
            self.messages_active -= 1

    def on_table_get(self, table: Any, key: Any) -> None:
        self._table(table).keys_retrieved += 1

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self._table(table).keys_updated += 1

    def on_table_del(self, table: Any, key: Any) -> None:
        self._table(table).keys_deleted += 1

    def _table(self, table: Any) -> TableState:
        state = self.tables.get(table.name)
        if state is None:
            state = self.tables[table.name] = TableState(table)
        return state

    def on_commit_initiated(self, consumer: Any) -> Any:
        return self.time()

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        if state is not None:
            _push(self.commit_latency, self.time() - state, self.max_commit_latency_history)

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        self.messages_sent += 1
        self.messages_sent_by_topic[topic] += 1
        return self.time()

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        if state is not None:
            _push(self.send_latency, self.time() - state, self.max_send_latency_history)

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        self.send_errors += 1

    def on_assignment_start(self, assignor: Any) -> Any:
        return {"time_start": self.time()}

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        if state is not None:
            _push(self.assignment_latency, self.time() - state["time_start"],
                  self.max_assignment_latency_history)
        self.assignments_failed += 1

    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        if state is not None:
            _push(self.assignment_latency, self.time() - state["time_start"],
                  self.max_assignment_latency_history)
        self.assignments_completed += 1

    def on_rebalance_start(self, app: Any) -> Any:
        self.rebalances = getattr(app, "rebalancing_count", self.rebalances + 1)
        self._clear_topic_related_sensors()
        return {"time_start": self.time()}

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        if state is None:
            return
        time_return = self.time()
        latency = time_return - state["time_start"]
        state.update(time_return=time_return, latency_return=latency)
        _push(self.rebalance_return_latency, latency, self.max_avg_history)

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        if state is not None:
            time_end = self.time()
            latency = time_end - state["time_start"]
            state.update(time_end=time_end, latency_end=latency)
            _push(self.rebalance_end_latency, latency, self.max_avg_history)
        self._clear_topic_related_sensors()

    def on_web_request_start(self, app: Any, request: Any, *, view: Any = None) -> Any:
        return {"time_start": self.time()}

    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        status = _status(response.status if response is not None else 500)
        if state is not None:
            time_end = self.time()
            latency = time_end - state["time_start"]
            state.update(time_end=time_end, latency_end=latency, status_code=status)
            _push(self.http_response_latency, latency, self.max_avg_history)
        self.http_response_codes[status] += 1

    def _clear_topic_related_sensors(self) -> None:
        """The assignment changes: per-partition numbers of the old one go (as Faust)."""
        self.tp_committed_offsets.clear()
        self.tp_read_offsets.clear()
        self.tp_end_offsets.clear()
        self.topic_buffer_full.clear()
        self.stream_inbound_time.clear()

    def __repr__(self) -> str:
        return (f"<Monitor: {self.messages_received_total} messages in, {self.events_total} "
                f"events, {self.messages_sent} sent>")


#: Faust's Monitor keywords for values its sampler recomputed (or read-only here).
_FAUST_SAMPLED = frozenset({
    "messages_received_by_topic", "events_by_stream", "events_by_task", "events_s",
    "messages_s", "events_runtime_avg", "topic_buffer_full", "rebalance_return_avg",
    "rebalance_end_avg", "http_response_codes", "http_response_latency_avg",
})


def _task_name() -> str:
    """The running task's name (an agent's actor: ``Actor(name#index)``), or ``-``."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no running loop (a monitor driven by hand)
        return "-"
    return task.get_name() if task is not None else "-"


def _status(code: int) -> HTTPStatus | int:
    try:
        return HTTPStatus(code)
    except ValueError:  # a code HTTPStatus does not name
        return code


def tp_label(tp: Any) -> str:
    """``topic[partition]`` for a TP (Faust's label of a TP was the class name)."""
    topic, partition = getattr(tp, "topic", None), getattr(tp, "partition", None)
    return f"{topic}[{partition}]" if topic is not None else str(tp)


def by_topic(tp_offsets: Mapping[Any, int]) -> dict[str, dict[int, int]]:
    """``{TP(t, p): o}`` as ``{t: {p: o}}``, partitions and topics sorted."""
    out: dict[str, dict[int, int]] = {}
    for tp, offset in sorted(tp_offsets.items()):
        out.setdefault(tp.topic, {})[tp.partition] = offset
    return out
