"""Sensors: objects told of what a worker does, with Faust's hook names (``faust.Sensor``).

Register one with ``app.sensors.add(MySensor())``; the engine then calls its hooks
as messages arrive and leave, streams take events, a stream's buffer fills up,
tables are read and written, offsets are committed, records sent, partitions
rebalanced and assigned, and web requests answered (docs/faust-differences.md
says when each is called). A hook is a plain method, called in the worker's
loop: it must be quick and must not await.

The hooks cost nothing while no sensor is registered: ``app.sensors.enabled`` is
False, and every place that would call a hook checks it first (as the trace checks
``Tracer.enabled``), so a worker without sensors makes no call per event. Under the
simulator hooks run where the engine already is: they add no trace step and no
scheduled callback, so a run with a sensor takes the same steps as one without.

Hooks in pairs (``on_stream_event_in``/``out``, ``on_commit_initiated``/``completed``,
``on_send_initiated``/``completed``, ``on_rebalance_start``/``return``/``end``,
``on_assignment_start``/``completed``/``error``, ``on_web_request_start``/``end``)
pass on a state: what the first returns, the others get (a timer's start, say). The
base class's ``on_rebalance_start``, ``on_assignment_start`` and
``on_web_request_start`` return ``{"time_start": ...}`` as Faust's do, read from the
running loop's clock (virtual under the simulator).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from .clock import wall_time

__all__ = ["Sensor", "SensorDelegate", "sensor_time"]


def sensor_time() -> float:
    """Seconds on the running loop's clock (virtual under the simulator); wall time outside one."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return wall_time()


class Sensor:
    """Faust's sensor hooks, each doing nothing: override the ones you want."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        """A fetched record was handed to the streams of its topic."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        """A stream gives ``event`` to its agent; the return value goes to ``..._out``."""

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        """The agent asked for the next event: it is done with ``event``."""

    def on_topic_buffer_full(self, tp: Any) -> None:
        """A fetched batch of ``tp`` filled a stream's buffer: the next fetch waits for room."""

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        """Every stream of the record acked it: its offset may be committed."""

    def on_table_get(self, table: Any, key: Any) -> None:
        """``table[key]`` was read."""

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        """``table[key] = value`` was written (its changelog record queued)."""

    def on_table_del(self, table: Any, key: Any) -> None:
        """``del table[key]`` (its tombstone queued)."""

    def on_commit_initiated(self, consumer: Any) -> Any:
        """A commit of processed offsets begins; the return value goes to ``..._completed``."""

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        """The offsets were committed (not called when the commit failed)."""

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        """A record is queued for ``topic``; the return value goes to the completion hook."""

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        """The broker acknowledged the record."""

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        """The broker (or the client) refused the record."""

    def on_assignment_start(self, assignor: Any) -> Any:
        """This worker, the group leader, starts computing the partition assignment."""
        return {"time_start": sensor_time()}

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        """Computing the assignment failed with ``exc``."""

    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        """The assignment is computed (it goes to the group next)."""

    def on_rebalance_start(self, app: Any) -> Any:
        """A rebalance began: partitions are being revoked (or the first ones assigned)."""
        return {"time_start": sensor_time()}

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        """The new assignment was taken: the listener returned (tables may still recover)."""

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        """The rebalance is complete: tables recovered, the partitions open to agents."""

    def on_web_request_start(self, app: Any, request: Any, *, view: Any = None) -> Any:
        """A web view starts answering ``request``."""
        return {"time_start": sensor_time()}

    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        """The view answered ``response`` (an error answer too)."""

    def asdict(self) -> dict[str, Any]:
        """The sensor's state as a dict (Faust's; served at ``/`` with ``web_stats_enabled``)."""
        return {}


class SensorDelegate:
    """``app.sensors``: the registered sensors, and each hook called on every one of them.

    Sensors are called in the order they were added. A paired hook's state is a
    dict of each sensor's own, so every sensor gets back what it returned.
    ``enabled`` is True while at least one sensor is registered.
    """

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self._sensors: dict[Sensor, None] = {}  # a set that keeps the order of addition
        #: some sensor is registered: callers check it before calling any hook.
        self.enabled = False
        #: the sensors fed offsets (those with Faust's Monitor's ``on_tp_commit`` and
        #: ``track_tp_end_offset``); ``offsets_watched`` says whether there are any.
        self._offset_watchers: list[Any] = []
        self.offsets_watched = False

    def add(self, sensor: Sensor) -> None:
        self._sensors[sensor] = None
        self._changed()

    def remove(self, sensor: Sensor) -> None:
        del self._sensors[sensor]
        self._changed()

    def _changed(self) -> None:
        self.enabled = bool(self._sensors)
        self._offset_watchers = [
            s for s in self._sensors
            if callable(getattr(s, "on_tp_commit", None))
            and callable(getattr(s, "track_tp_end_offset", None))
        ]
        self.offsets_watched = bool(self._offset_watchers)

    def discard(self, sensor: Sensor) -> None:
        if sensor in self._sensors:
            self.remove(sensor)

    def __iter__(self) -> Iterator[Sensor]:
        return iter(list(self._sensors))

    def __len__(self) -> int:
        return len(self._sensors)

    def __contains__(self, sensor: object) -> bool:
        return sensor in self._sensors

    def __repr__(self) -> str:
        return f"<SensorDelegate: {list(self._sensors)!r}>"

    # -- the hooks, fanned out ---------------------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        for sensor in self._sensors:
            sensor.on_message_in(tp, offset, message)

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> dict[Sensor, Any]:
        return {s: s.on_stream_event_in(tp, offset, stream, event) for s in self._sensors}

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_stream_event_out(tp, offset, stream, event, states.get(sensor))

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        for sensor in self._sensors:
            sensor.on_message_out(tp, offset, message)

    def on_table_get(self, table: Any, key: Any) -> None:
        for sensor in self._sensors:
            sensor.on_table_get(table, key)

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        for sensor in self._sensors:
            sensor.on_table_set(table, key, value)

    def on_table_del(self, table: Any, key: Any) -> None:
        for sensor in self._sensors:
            sensor.on_table_del(table, key)

    def on_commit_initiated(self, consumer: Any) -> dict[Sensor, Any]:
        return {s: s.on_commit_initiated(consumer) for s in self._sensors}

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_commit_completed(consumer, states.get(sensor))

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> dict[Sensor, Any]:
        return {
            s: s.on_send_initiated(producer, topic, message, keysize, valsize)
            for s in self._sensors
        }

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_send_completed(producer, states.get(sensor), metadata)

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_send_error(producer, exc, states.get(sensor))

    def on_topic_buffer_full(self, tp: Any) -> None:
        for sensor in self._sensors:
            sensor.on_topic_buffer_full(tp)

    def on_tp_commit(self, offsets: Any) -> None:
        """Offsets were committed: told to the sensors that keep them (a Monitor)."""
        for sensor in self._offset_watchers:
            sensor.on_tp_commit(offsets)

    def track_tp_end_offset(self, tp: Any, offset: int) -> None:
        """A fetch saw ``tp``'s log end at ``offset``: told to the sensors that keep it."""
        for sensor in self._offset_watchers:
            sensor.track_tp_end_offset(tp, offset)

    def on_assignment_start(self, assignor: Any) -> dict[Sensor, Any]:
        return {s: s.on_assignment_start(assignor) for s in self._sensors}

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_assignment_error(assignor, states.get(sensor), exc)

    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_assignment_completed(assignor, states.get(sensor))

    def on_rebalance_start(self, app: Any) -> dict[Sensor, Any]:
        return {s: s.on_rebalance_start(app) for s in self._sensors}

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_rebalance_return(app, states.get(sensor))

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_rebalance_end(app, states.get(sensor))

    def on_web_request_start(self, app: Any, request: Any, *, view: Any = None) -> dict[Sensor, Any]:
        return {s: s.on_web_request_start(app, request, view=view) for s in self._sensors}

    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        states = state or {}
        for sensor in self._sensors:
            sensor.on_web_request_end(app, request, response, states.get(sensor), view=view)
