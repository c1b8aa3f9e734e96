"""``app.monitor``: Faust's in-memory statistics sensor, its ``asdict()`` and the stats page."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import pytest

import detstream
from detstream import Monitor
from detstream.errors import InvalidArgument
from detstream.monitor import TableState
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)

#: the keys of Faust's ``Monitor.asdict()``, in its order.
FAUST_KEYS = [
    "messages_active", "messages_received_total", "messages_sent", "messages_sent_by_topic",
    "messages_s", "messages_received_by_topic", "events_active", "events_total", "events_s",
    "events_runtime_avg", "events_by_task", "events_by_stream", "commit_latency",
    "send_latency", "send_errors", "assignment_latency", "assignments_completed",
    "assignments_failed", "topic_buffer_full", "tables", "metric_counts",
    "topic_committed_offsets", "topic_read_offsets", "topic_end_offsets", "rebalances",
    "rebalance_return_latency", "rebalance_end_latency", "rebalance_return_avg",
    "rebalance_end_avg", "http_response_codes", "http_response_latency",
    "http_response_latency_avg",
]


def counting_app(**settings: Any) -> tuple[detstream.App, Any]:
    app = detstream.App("monitored", broker="sim://", topic_partitions=2, **settings)
    topic = app.topic("words", partitions=2, internal=True, value_type=str)
    counts = app.Table("counts", default=int, partitions=2)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for word in stream:
            counts[word] += 1
            await asyncio.sleep(0.25)

    return app, topic


def run_counting(app: detstream.App, topic: Any, *, body: Any = None, seed: int = 4) -> str:
    async def feed(cluster: Any) -> Any:
        await asyncio.sleep(1)
        for i in range(8):
            await topic.send(key=f"k{i % 2}".encode(), value=f"w{i % 3}")
        await asyncio.sleep(8)
        if body is not None:
            await body(app)
        return cluster

    return str(sim_testing.run_app(app, feed, seed=seed, config=FAST).trace.sha256())


def count_agent(app: detstream.App) -> Any:
    return next(iter(app.agents.values()))


def plain(stats: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, deque) else v for k, v in stats.items()}


def test_app_monitor_is_made_once_and_registered() -> None:
    app = detstream.App("lazy-monitor", broker="sim://")
    assert not app.sensors.enabled  # nothing until asked for
    monitor = app.monitor
    assert isinstance(monitor, Monitor) and app.monitor is monitor
    assert list(app.sensors) == [monitor]


def test_app_takes_its_own_monitor_and_replaces_it() -> None:
    class Mine(Monitor):
        pass

    mine = Mine()
    app = detstream.App("own-monitor", broker="sim://", monitor=mine)
    assert app.monitor is mine and list(app.sensors) == [mine]
    other = Monitor()
    app.monitor = other
    assert list(app.sensors) == [other]
    with pytest.raises(InvalidArgument, match="must be a detstream.Monitor"):
        detstream.App("bad-monitor", broker="sim://", monitor="yes")  # type: ignore[arg-type]


def test_a_run_is_counted_with_fausts_keys() -> None:
    app, topic = counting_app()
    monitor = app.monitor
    run_counting(app, topic)
    stats = monitor.asdict()
    assert list(stats) == FAUST_KEYS
    assert stats["messages_received_total"] == stats["events_total"] == 8
    assert stats["messages_active"] == stats["events_active"] == 0
    assert stats["messages_received_by_topic"] == {"words": 8}
    assert stats["messages_sent_by_topic"]["words"] == 8
    assert stats["messages_sent_by_topic"]["monitored-counts-changelog"] >= 3
    assert stats["messages_sent"] == sum(stats["messages_sent_by_topic"].values())
    assert stats["tables"] == {"counts": {"keys_retrieved": 8, "keys_updated": 8, "keys_deleted": 0}}
    assert stats["events_by_stream"] == {"<Stream: words>": 8}
    assert stats["events_by_task"] == {f"Actor({count_agent(app).name}#0)": 8}
    assert stats["events_runtime_avg"] == pytest.approx(0.25)  # virtual time: exact
    assert len(stats["send_latency"]) == min(30, stats["messages_sent"])
    assert stats["commit_latency"] and stats["send_errors"] == 0
    assert stats["rebalances"] == 1 and len(stats["rebalance_end_latency"]) == 1
    assert stats["assignments_completed"] == 1 and len(stats["assignment_latency"]) == 1
    read = stats["topic_read_offsets"]["words"]
    committed = stats["topic_committed_offsets"]["words"]
    ends = stats["topic_end_offsets"]["words"]
    assert sum(o + 1 for o in read.values()) == 8  # last offset read per partition
    assert committed == {p: o + 1 for p, o in read.items()} == ends  # all committed, no lag


def test_monitor_numbers_depend_only_on_the_seed_and_change_no_step() -> None:
    def once(with_monitor: bool) -> tuple[str, dict[str, Any]]:
        app, topic = counting_app()
        monitor = app.monitor if with_monitor else None
        digest = run_counting(app, topic)
        return digest, plain(monitor.asdict()) if monitor is not None else {}

    first, again, without = once(True), once(True), once(False)
    assert first == again
    assert first[0] == without[0]


def test_rates_are_counts_of_the_last_whole_second() -> None:
    now = [10.0]
    monitor = Monitor(time=lambda: now[0])
    tp = detstream.TP("t", 0)
    monitor.on_message_in(tp, 0, None)  # the first second: [10, 11)
    for i in range(5):
        now[0] = 10.1 + i * 0.1
        monitor.on_message_in(tp, i + 1, None)
        monitor.on_stream_event_in(tp, i + 1, "stream", None)
    assert monitor.events_s == 0  # no whole second yet
    now[0] = 11.5
    assert (monitor.events_s, monitor.messages_s) == (5, 6)
    now[0] = 12.2  # the second [11, 12) had nothing
    assert (monitor.events_s, monitor.messages_s) == (0, 0)


def test_latencies_pair_with_their_state_and_histories_are_bounded() -> None:
    now = [0.0]
    monitor = Monitor(time=lambda: now[0], max_commit_latency_history=2)
    for latency in (1.0, 2.0, 3.0):
        state = monitor.on_commit_initiated(None)
        now[0] += latency
        monitor.on_commit_completed(None, state)
    assert list(monitor.commit_latency) == [2.0, 3.0]
    state = monitor.on_rebalance_start(None)
    now[0] += 4.0
    monitor.on_rebalance_return(None, state)
    now[0] += 1.0
    monitor.on_rebalance_end(None, state)
    assert (monitor.rebalance_return_avg, monitor.rebalance_end_avg) == (4.0, 5.0)
    assert monitor.rebalances == 1 and state["latency_end"] == 5.0
    monitor.on_rebalance_return(None, None)  # registered mid-rebalance: nothing to pair
    monitor.count("my_metric", 3)
    assert monitor.asdict()["metric_counts"] == {"my_metric": 3}
    assert TableState("t", keys_updated=2).asdict()["keys_updated"] == 2
    with pytest.raises(TypeError, match="nope"):
        Monitor(nope=1)


def test_the_web_index_serves_the_stats_when_enabled() -> None:
    answers: dict[str, Any] = {}

    async def browse(app: detstream.App) -> None:
        client = app.web.client()
        answers["index"] = (await client.get("/")).json()
        answers["again"] = (await client.get("/")).json()

    app, topic = counting_app(web_stats_enabled=True)
    run_counting(app, topic, body=browse)
    index = answers["index"]
    assert list(index) == ["Sensor0"] and list(index["Sensor0"]) == FAUST_KEYS
    assert index["Sensor0"]["events_total"] == 8
    assert app.monitor in app.sensors  # installed at start, so it counted from the start
    assert answers["again"]["Sensor0"]["http_response_codes"] == {"200": 1}

    app, topic = counting_app(debug=True)  # Faust's default: stats when debugging
    run_counting(app, topic, body=browse)
    assert "Sensor0" in answers["index"]

    app, topic = counting_app()
    run_counting(app, topic, body=browse)
    assert answers["index"]["app"] == "monitored"  # detstream's status page otherwise
    assert not app.sensors.enabled


def test_faust_names_map_to_the_monitor() -> None:
    from detstream import faust_compat

    with faust_compat.faust_alias():
        import faust  # type: ignore[import-not-found]
        from faust.sensors import TableState as FaustTableState  # type: ignore[import-not-found]
        from faust.sensors.monitor import Monitor as FaustMonitor  # type: ignore[import-not-found]

    assert faust.Monitor is FaustMonitor is Monitor and FaustTableState is TableState
