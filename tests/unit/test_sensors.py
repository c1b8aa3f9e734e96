"""Sensors (``app.sensors``): which hooks the engine calls in a run, and that they change nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import detstream
from detstream import Sensor, SensorDelegate
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class Recorder(Sensor):
    """Counts every hook call and checks paired hooks get back their own state."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.mismatched: list[str] = []

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        self._count("message_in")

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        self._count("message_out")

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        self._count("stream_event_in")
        return ("event", tp, offset)

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        self._count("stream_event_out")
        if state != ("event", tp, offset):
            self.mismatched.append("stream_event")

    def on_table_get(self, table: Any, key: Any) -> None:
        self._count("table_get")

    def on_table_set(self, table: Any, key: Any, value: Any) -> None:
        self._count("table_set")

    def on_table_del(self, table: Any, key: Any) -> None:
        self._count("table_del")

    def on_commit_initiated(self, consumer: Any) -> Any:
        self._count("commit_initiated")
        return "commit"

    def on_commit_completed(self, consumer: Any, state: Any) -> None:
        self._count("commit_completed")
        if state != "commit":
            self.mismatched.append("commit")

    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        self._count("send_initiated")
        return ("send", topic, valsize)

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        self._count("send_completed")
        if not (isinstance(state, tuple) and state[0] == "send"):
            self.mismatched.append("send")


def counting_run(sensor: Sensor | None, *, seed: int = 3) -> str:
    """A counting app fed seven records; returns the run's trace hash."""
    app = detstream.App("sensed", broker="sim://", topic_partitions=2)
    if sensor is not None:
        app.sensors.add(sensor)
    topic = app.topic("in", partitions=2, internal=True, value_type=str)
    counts = app.Table("counts", default=int, partitions=2)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for word in stream:
            counts[word] += 1
            if counts[word] > 1:
                del counts[word]

    async def body(cluster: Any) -> Any:
        await asyncio.sleep(1)
        for i in range(7):
            await topic.send(key=f"k{i % 2}".encode(), value=f"w{i % 3}")
        await asyncio.sleep(10)
        return cluster

    cluster = sim_testing.run_app(app, body, seed=seed, config=FAST)
    return str(cluster.trace.sha256())


def test_a_sensor_sees_messages_events_tables_commits_and_sends() -> None:
    sensor = Recorder()
    counting_run(sensor)
    calls = sensor.calls
    assert calls["message_in"] == calls["message_out"] == 7
    assert calls["stream_event_in"] == calls["stream_event_out"] == 7
    assert calls["table_get"] >= 7 and calls["table_set"] == 7 and calls["table_del"] >= 1
    assert calls["commit_completed"] >= 1
    assert calls["commit_initiated"] >= calls["commit_completed"]
    assert calls["send_initiated"] > 7  # the records, then changelog writes (coalesced per key)
    assert calls["send_completed"] == calls["send_initiated"]
    assert sensor.mismatched == []


def test_a_run_with_a_sensor_takes_the_same_steps() -> None:
    assert counting_run(Recorder()) == counting_run(None)


def test_delegate_add_remove_iterate_and_enabled() -> None:
    delegate = SensorDelegate()
    first, second = Recorder(), Recorder()
    assert not delegate.enabled and list(delegate) == []
    delegate.add(first)
    delegate.add(second)
    assert delegate.enabled and list(delegate) == [first, second] and second in delegate
    delegate.on_table_set(None, "k", 1)
    assert first.calls == second.calls == {"table_set": 1}
    state = delegate.on_commit_initiated(None)
    delegate.on_commit_completed(None, state)
    assert first.mismatched == second.mismatched == []
    delegate.remove(first)
    assert list(delegate) == [second] and delegate.enabled
    delegate.discard(first)
    delegate.remove(second)
    assert not delegate.enabled and len(delegate) == 0


def test_app_sensors_is_a_delegate_and_faust_sensors_maps_here() -> None:
    app = detstream.App("sensors-attr", broker="sim://")
    assert isinstance(app.sensors, SensorDelegate)
    from detstream.faust_compat import faust_alias

    with faust_alias():
        from faust.sensors import Sensor as FaustSensor  # type: ignore[import-not-found]
    assert FaustSensor is Sensor
