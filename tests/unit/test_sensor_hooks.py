"""The sensor hooks of rebalances, assignments, full buffers and web requests."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from click.testing import CliRunner

import detstream
from detstream import Sensor, SensorDelegate
from detstream.assignor_wire import plan_observed
from detstream.cli.main import main
from sim import testing as sim_testing
from sim.cluster import ClusterConfig
from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run

FAST = ClusterConfig(initial_rebalance_delay=0.1)
PROJECT = "tests/apps/sensed_rebalances.py"


class HookRecorder(Sensor):
    """Keeps every hook call of this file's concern, in order, with what paired hooks got."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def on_rebalance_start(self, app: Any) -> Any:
        state = super().on_rebalance_start(app)
        self.calls.append(("rebalance_start", app.rebalancing_count))
        return state

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        self.calls.append(("rebalance_return", state))

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        self.calls.append(("rebalance_end", state))

    def on_assignment_start(self, assignor: Any) -> Any:
        self.calls.append(("assignment_start", type(assignor).__name__))
        return "state"

    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        self.calls.append(("assignment_completed", state))

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        self.calls.append(("assignment_error", state, type(exc).__name__))

    def on_topic_buffer_full(self, tp: Any) -> None:
        self.calls.append(("topic_buffer_full", tp))

    def on_web_request_start(self, app: Any, request: Any, *, view: Any = None) -> Any:
        self.calls.append(("web_start", request.path, type(view).__name__))
        return request.path

    def on_web_request_end(
        self, app: Any, request: Any, response: Any, state: Any, *, view: Any = None
    ) -> None:
        self.calls.append(("web_end", state, response.status))

    def named(self, *prefixes: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0].startswith(prefixes)]


def one_worker(sensor: Sensor | None, *, body: Any = None, maxsize: int = 4096) -> str:
    """An app on one simulated worker fed a few records; returns the trace hash."""
    app = detstream.App("hooked", broker="sim://", topic_partitions=1,
                        stream_buffer_maxsize=maxsize)
    if sensor is not None:
        app.sensors.add(sensor)
    topic = app.topic("in", partitions=1, internal=True, value_type=str)

    @app.agent(topic)
    async def slow(stream: Any) -> None:
        async for _ in stream:
            await asyncio.sleep(0.5)

    async def feed(cluster: Any) -> Any:
        await asyncio.sleep(1)
        for i in range(12):
            await topic.send(key=b"k", value=f"v{i}")
        if body is not None:
            await body(app)
        await asyncio.sleep(10)
        return cluster

    return str(sim_testing.run_app(app, feed, seed=2, config=FAST).trace.sha256())


def test_rebalance_hooks_come_in_order_with_their_state() -> None:
    sensor = HookRecorder()
    one_worker(sensor)
    rebalance = sensor.named("rebalance")
    assert [name for name, *_ in rebalance] == [  # the first join (the stop leaves quietly)
        "rebalance_start", "rebalance_return", "rebalance_end",
    ]
    assert rebalance[0][1] == 1  # app.rebalancing_count
    returned, ended = rebalance[1][1], rebalance[2][1]
    assert returned is ended and set(returned) == {"time_start"}  # the base class's state
    assert returned["time_start"] >= 0


def test_the_leader_reports_computing_the_assignment() -> None:
    sensor = HookRecorder()
    one_worker(sensor)
    assert sensor.named("assignment") == [
        ("assignment_start", "GroupMember"), ("assignment_completed", "state"),
    ]


def test_a_full_stream_buffer_is_reported_with_its_partition() -> None:
    sensor = HookRecorder()
    one_worker(sensor, maxsize=1)
    full = sensor.named("topic_buffer_full")
    assert full and {tp for _, tp in full} == {detstream.TP("in", 0)}
    roomy = HookRecorder()
    one_worker(roomy)
    assert roomy.named("topic_buffer_full") == []


def test_web_requests_are_reported_with_their_answer() -> None:
    sensor = HookRecorder()

    async def browse(app: detstream.App) -> None:
        @app.page("/boom/")
        async def boom(web: Any, request: Any) -> Any:
            raise RuntimeError("boom")

        client = app.web.client()
        assert (await client.get("/table/")).status == 200
        assert (await client.get("/boom/")).status == 500
        assert (await client.get("/nowhere/")).status == 404  # no view: nothing to tell

    one_worker(sensor, body=browse)
    assert sensor.named("web") == [
        ("web_start", "/table/", "TableList"), ("web_end", "/table/", 200),
        ("web_start", "/boom/", "boom"), ("web_end", "/boom/", 500),
    ]


def test_hooks_change_nothing_in_a_run() -> None:
    assert one_worker(HookRecorder(), maxsize=1) == one_worker(None, maxsize=1)


def test_plan_observed_reports_a_failed_assignment(monkeypatch: pytest.MonkeyPatch) -> None:
    delegate = SensorDelegate()
    sensor = HookRecorder()
    delegate.add(sensor)

    class Listener:  # what the engine's listener does with the hooks: tell the sensors
        def on_assignment_start(self, assignor: Any) -> Any:
            return delegate.on_assignment_start(assignor)

        def on_assignment_completed(self, assignor: Any, state: Any) -> None:
            delegate.on_assignment_completed(assignor, state)

        def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
            delegate.on_assignment_error(assignor, state, exc)

    def broken(*args: Any) -> Any:
        raise ValueError("no plan")

    monkeypatch.setattr("detstream.assignor_wire.plan_from_subscriptions", broken)
    with pytest.raises(ValueError, match="no plan"):
        plan_observed(Listener(), object(), {"m": frozenset({"t"})}, {}, {"t": 1})
    assert sensor.calls == [("assignment_start", "object"), ("assignment_error", "state", "ValueError")]
    # a listener without the hooks (a test's, a driver's own) is not told, and the plan is made
    monkeypatch.undo()
    plan = plan_observed(object(), object(), {"m": frozenset({"t"})}, {}, {"t": 1})
    assert plan["m"].active == {detstream.TP("t", 0)}


def test_the_kafka_assignor_tells_its_consumers_listener() -> None:
    from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

    from detstream.transport.kafka.consumer import CopartitionedAssignor

    app = detstream.App("hooked-kafka", broker="kafka://localhost:9092")
    sensor = HookRecorder()
    app.sensors.add(sensor)
    member = app.transport.create_consumer(client_id="one", group_id="g")
    member.subscribe(["src"], app.conductor.listener)

    class Metadata:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1}

    plain = ConsumerProtocolMemberMetadata(0, ["src"], b"")
    CopartitionedAssignor(member).assign(Metadata(), {"m1": plain})
    assert sensor.calls == [
        ("assignment_start", "CopartitionedAssignor"), ("assignment_completed", "state"),
    ]


def _hooks_by_worker(report: Any) -> dict[str, list[tuple[str, Any]]]:
    by_worker: dict[str, list[tuple[str, Any]]] = {}
    for event in report.trace.of_kind("sensor"):
        by_worker.setdefault(event.actor, []).append((event.fields["hook"], event.fields))
    return by_worker


def test_under_the_simulator_every_worker_sees_its_rebalances_in_order() -> None:
    plan = FaultPlan("file", ("join", "restart"), (
        Fault(4.0, "join", "w3"), Fault(7.0, "restart", "w1"),
    ))
    report = run(PROJECT, SimOptions(seed=1, workers=2, duration=12.0, plan=plan))
    assert report.ok, report.violations
    hooks = _hooks_by_worker(report)
    assert {"w1", "w2", "w3"} <= set(hooks)
    for worker, calls in hooks.items():
        names = "".join(
            {"rebalance_start": "S", "rebalance_return": "R", "rebalance_end": "E"}.get(name, "")
            for name, _ in calls
        )
        # each rebalance: begun, then (if this worker took an assignment) returned, then
        # (if its partitions opened) ended; never out of order, never twice
        assert re.fullmatch(r"(S(R(E)?)?)+", names), (worker, names)
        assert "SRE" in names, (worker, names)
        paired = [(name, f["n"]) for name, f in calls if name.startswith("rebalance")]
        for (_, n), (after, m) in zip(paired, paired[1:], strict=False):
            if after != "rebalance_start":
                assert m == n, (worker, paired)  # return/end get their own start's state
    # w2 lived through the join and w1's restart: several rebalances, counted by the app
    w2_starts = [f["count"] for name, f in hooks["w2"] if name == "rebalance_start"]
    assert len(w2_starts) >= 3 and w2_starts == sorted(w2_starts)
    leaders = [w for w, calls in hooks.items() if any(n == "assignment_completed" for n, _ in calls)]
    assert leaders  # some worker computed each assignment and said so


def test_detstream_sim_runs_the_sensed_project(tmp_path: Any) -> None:
    """The same through the command line: the sensor's lines are in the run's trace file."""
    trace = tmp_path / "trace.txt"
    result = CliRunner().invoke(main, [
        "sim", PROJECT, "--seed", "2", "--workers", "2", "--duration", "6s",
        "--faults", "none", "--trace", str(trace),
    ], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line for line in trace.read_text().splitlines() if " sensor " in line]
    hooks = [re.search(r"hook=(\w+)", line).group(1) for line in lines]  # type: ignore[union-attr]
    assert "rebalance_start" in hooks and "rebalance_end" in hooks
    assert hooks.index("rebalance_start") < hooks.index("rebalance_return") < hooks.index("rebalance_end")


def test_the_aiokafka_driver_on_the_simulated_wire_calls_the_same_hooks() -> None:
    report = run(PROJECT, SimOptions(seed=1, workers=2, duration=8.0, faults="none",
                                     driver="aiokafka"))
    assert report.ok, report.violations
    hooks = _hooks_by_worker(report)
    for worker in ("w1", "w2"):
        names = [name for name, _ in hooks[worker] if name.startswith("rebalance")]
        assert names == ["rebalance_start", "rebalance_return", "rebalance_end"], worker
    assignments = [name for calls in hooks.values() for name, _ in calls if "assignment" in name]
    assert assignments == ["assignment_start", "assignment_completed"]  # by the leader, once
