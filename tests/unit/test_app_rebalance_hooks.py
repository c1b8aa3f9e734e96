"""Faust's overridable ``App.on_rebalance_start``/``on_rebalance_return``/``on_rebalance_end``.

The conductor calls them (through its host protocol) where Faust's consumer
does: first thing at a revoke, once the listener took the assignment, and once
the partitions are open to the agents. They keep ``app.rebalancing`` and
``app.rebalancing_count`` and tell the sensors, so an override that calls
``super()`` changes nothing else.
"""

from __future__ import annotations

import asyncio
from typing import Any

import detstream
from detstream import Sensor
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class HookedApp(detstream.App):
    """Notes each hook, with the flag and count as the override sees them after ``super()``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[Any, ...]] = []
        self.on_partitions_revoked.connect(self._note_signal("revoked"))
        self.on_partitions_assigned.connect(self._note_signal("assigned"))
        self.on_rebalance_complete.connect(self._note_signal("complete"))

    def _note_signal(self, name: str) -> Any:
        async def note(sender: Any, *args: Any, **kwargs: Any) -> None:
            self.seen.append((name,))

        return note

    def on_rebalance_start(self) -> None:
        self.seen.append(("start-before-super", self.rebalancing, self.rebalancing_count))
        super().on_rebalance_start()
        self.seen.append(("start", self.rebalancing, self.rebalancing_count))

    def on_rebalance_return(self) -> None:
        super().on_rebalance_return()
        self.seen.append(("return", self.rebalancing, self.rebalancing_count))

    def on_rebalance_end(self) -> None:
        super().on_rebalance_end()
        self.seen.append(("end", self.rebalancing, self.rebalancing_count))


class NotingSensor(Sensor):
    def __init__(self, seen: list[tuple[Any, ...]]) -> None:
        self.seen = seen

    def on_rebalance_start(self, app: Any) -> Any:
        self.seen.append(("sensor-start",))
        return super().on_rebalance_start(app)

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        self.seen.append(("sensor-return", set(state)))

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        self.seen.append(("sensor-end", set(state)))


def _hooked(name: str, *, sensor: bool) -> HookedApp:
    app = HookedApp(name, broker="sim://", topic_partitions=2)
    if sensor:
        app.sensors.add(NotingSensor(app.seen))
    counts = app.Table("counts", default=int)
    topic = app.topic("words", partitions=2, internal=True, value_type=str)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for word in stream:
            counts[word] += 1

    return app


def test_the_hooks_come_in_faust_order_around_the_signals_and_tell_the_sensors() -> None:
    app = _hooked("hooked-app", sensor=True)

    async def idle(cluster: Any) -> None:
        await asyncio.sleep(5)

    sim_testing.run_app(app, idle, seed=1, config=FAST)
    assert app.seen == [  # the first join: the (empty) revoke, then the assignment
        ("start-before-super", False, 0),
        ("sensor-start",),
        ("start", True, 1),
        ("revoked",),
        ("assigned",),
        ("sensor-return", {"time_start"}),
        ("return", True, 1),
        ("complete",),
        ("sensor-end", {"time_start"}),
        ("end", False, 1),
    ]


def test_without_sensors_the_hooks_keep_the_flag_and_the_count() -> None:
    app = _hooked("hooked-bare", sensor=False)

    async def idle(cluster: Any) -> None:
        await asyncio.sleep(5)

    sim_testing.run_app(app, idle, seed=1, config=FAST)
    hooks = [entry for entry in app.seen if entry[0] in ("start", "return", "end")]
    assert hooks == [("start", True, 1), ("return", True, 1), ("end", False, 1)]
    assert not app.rebalancing and app.rebalancing_count == 1


def test_a_second_worker_joining_rebalances_the_first_through_its_hooks() -> None:
    first = _hooked("hooked-pair", sensor=True)
    second = _hooked("hooked-pair", sensor=False)
    first.client_name, second.client_name = "w1", "w2"

    async def main(cluster: Any) -> None:
        await first.start()
        await asyncio.sleep(5)
        await second.start()
        await asyncio.sleep(10)
        await second.stop()
        await first.stop()

    sim_testing.simulate(main, seed=3, config=FAST)
    hooks = "".join({"start": "S", "return": "R", "end": "E"}.get(entry[0], "")
                    for entry in first.seen)
    # the first join, then the rebalance the second worker's join caused: each whole
    assert hooks.startswith("SRESRE"), hooks
    starts = [entry[2] for entry in first.seen if entry[0] == "start"]
    assert starts == list(range(1, len(starts) + 1)) == list(range(1, first.rebalancing_count + 1))
    ends = [entry for entry in first.seen if entry[0] == "end"]
    assert all(rebalancing is False for _, rebalancing, _ in ends)
    # the sensor got every paired hook with its own start's state
    sensed = [entry[0] for entry in first.seen if entry[0].startswith("sensor")]
    assert sensed[:6] == ["sensor-start", "sensor-return", "sensor-end"] * 2


def test_an_override_that_skips_super_is_the_only_thing_called() -> None:
    """As in Faust: the flag, the count and the sensors are the base class's work."""

    class Silent(detstream.App):
        calls = 0

        def on_rebalance_start(self) -> None:
            type(self).calls += 1

    app = Silent("silent-hooks", broker="sim://", topic_partitions=1)
    told: list[tuple[Any, ...]] = []
    app.sensors.add(NotingSensor(told))

    async def idle(cluster: Any) -> None:
        await asyncio.sleep(5)

    sim_testing.run_app(app, idle, seed=1, config=FAST)
    assert Silent.calls == 1 and app.rebalancing_count == 0
    assert told == []  # no start state: return and end have nothing to pair with
