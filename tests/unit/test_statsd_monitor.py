"""``StatsdMonitor`` (``faust.sensors.statsd``): Faust's statsd lines, and nothing sent under sim.

The statsd package is in the ``dev`` extra; without it these tests are skipped, loudly.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from typing import Any

import pytest

SKIP = "SKIPPED LOUDLY: statsd is not installed (pip install -e '.[dev]')"
pytest.importorskip("statsd", reason=SKIP)

import detstream  # noqa: E402
from detstream.contrib import udp_metrics  # noqa: E402
from detstream.contrib.statsd import StatsdMonitor  # noqa: E402
from detstream.errors import ImproperlyConfigured  # noqa: E402

from .monitor_apps import WORDS, counting_app, receive_lines, run_counting, udp_server  # noqa: E402


class Table:
    name = "totals"


class RecordingClient:
    """What a StatsClient was asked to send: (kind, name) -> values."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, str], list[float]] = defaultdict(list)

    def incr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self.sent["c", stat].append(count)

    def decr(self, stat: str, count: int = 1, rate: float = 1) -> None:
        self.sent["c", stat].append(-count)

    def gauge(self, stat: str, value: float, rate: float = 1, delta: bool = False) -> None:
        self.sent["g", stat].append(value)

    def timing(self, stat: str, delta: float, rate: float = 1) -> None:
        self.sent["ms", stat].append(delta)

    def total(self, stat: str) -> float:
        return sum(self.sent["c", stat])


class RecordingStatsdMonitor(StatsdMonitor):
    def _new_statsd_client(self) -> Any:
        self.recorded = RecordingClient()
        return self.recorded


def test_events_reach_a_statsd_server_as_fausts_lines() -> None:
    app = detstream.App("statsd-lines", broker="sim://")
    stream = app.topic("orders").stream()
    tp = detstream.TP("orders", 1)
    now = [100.0]
    with udp_server() as server:
        monitor = StatsdMonitor("127.0.0.1", server.getsockname()[1], "shop",
                                time=lambda: now[0])
        monitor.on_message_in(tp, 41, None)
        state = monitor.on_stream_event_in(tp, 41, stream, None)
        now[0] += 0.25
        monitor.on_stream_event_out(tp, 41, stream, None, state)
        monitor.on_message_out(tp, 41, None)
        monitor.on_table_set(Table(), "k", 1)
        monitor.count("orders_checked", 3)
        monitor.on_tp_commit({tp: 42})
        lines = receive_lines(server, 13)
    assert lines == [
        "shop.messages_received:1|c",
        "shop.messages_active:1|c",
        "shop.topic.orders.messages_received:1|c",
        "shop.read_offset.orders.1:41|g",
        "shop.events:1|c",
        "shop.stream.topic_orders.events:1|c",  # the stream as Faust named it
        "shop.events_active:1|c",
        "shop.events_active:-1|c",
        "shop.events_runtime:250.000000|ms",
        "shop.messages_active:-1|c",
        "shop.table.totals.keys_updated:1|c",
        "shop.orders_checked:3|c",
        "shop.committed_offset.orders.1:42|g",
    ]
    assert monitor.asdict()["events_total"] == 1  # still the app's Monitor


def test_a_run_sends_fausts_metrics() -> None:
    app, topic = counting_app("statsd-run")
    monitor = app.monitor = RecordingStatsdMonitor()
    run_counting(app, topic)
    client = monitor.recorded
    assert client.total("messages_received") == client.total("events") == WORDS
    assert client.total("topic.words.messages_received") == WORDS
    assert client.total("stream.topic_words.events") == WORDS
    assert client.total("messages_active") == client.total("events_active") == 0
    assert client.sent["ms", "events_runtime"] == [pytest.approx(250.0)] * WORDS
    assert client.total("table.counts.keys_retrieved") == WORDS
    assert client.total("table.counts.keys_updated") == WORDS
    assert client.total("topic.words.messages_sent") == WORDS
    assert client.total("messages_sent") == monitor.messages_sent
    assert len(client.sent["ms", "send_latency"]) == monitor.messages_sent
    assert client.sent["ms", "commit_latency"]
    assert client.total("assignments_complete") == 1
    assert len(client.sent["ms", "assignment_latency"]) == 1
    assert client.total("rebalances") == client.total("rebalances_recovering") == 0
    (end_latency,) = client.sent["ms", "rebalance_end_latency"]
    assert end_latency == pytest.approx(monitor.rebalance_end_latency[0] * 1000) and end_latency > 0
    reads = {int(stat.rsplit(".", 1)[1]): values[-1] for (kind, stat), values in client.sent.items()
             if kind == "g" and stat.startswith("read_offset.words.")}
    committed = {p: client.sent["g", f"committed_offset.words.{p}"][-1] for p in reads}
    assert committed == {p: o + 1 for p, o in reads.items()}
    assert sum(o + 1 for o in reads.values()) == WORDS


def test_under_the_simulator_nothing_is_sent_and_the_run_is_the_same(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, topic = counting_app("statsd-sim")
    monitor = app.monitor = StatsdMonitor()
    with caplog.at_level(logging.WARNING, logger=udp_metrics.__name__):
        digest = run_counting(app, topic)
    refusals = [r.getMessage() for r in caplog.records if r.name == udp_metrics.__name__]
    assert len(refusals) == 1
    assert "StatsdMonitor: no client for statsd at localhost:8125" in refusals[0]
    assert "RealIOForbidden" in refusals[0] and "metrics are not sent" in refusals[0]
    assert monitor.asdict()["events_total"] == WORDS  # the monitor still counts
    monitor.client.incr("mine")  # the application's own metrics are dropped too

    app, topic = counting_app("statsd-sim")
    assert run_counting(app, topic) == digest  # the same steps as without the monitor


def test_a_client_that_cannot_be_made_yet_is_made_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[float] = []
    now = [0.0]

    class Flaky(StatsdMonitor):
        def _new_statsd_client(self) -> Any:
            attempts.append(now[0])
            if len(attempts) < 3:
                raise OSError("Name or service not known")
            return RecordingClient()

    monitor = Flaky(time=lambda: now[0])
    tp = detstream.TP("t", 0)
    with caplog.at_level(logging.WARNING, logger=udp_metrics.__name__):
        for moment in (0.0, 1.0, udp_metrics.RETRY_AFTER, 2 * udp_metrics.RETRY_AFTER):
            now[0] = moment
            monitor.on_message_in(tp, 0, None)
    assert attempts == [0.0, udp_metrics.RETRY_AFTER, 2 * udp_metrics.RETRY_AFTER]
    assert isinstance(monitor.client, RecordingClient)
    assert monitor.client.total("messages_received") == 1  # sent once it could be
    assert monitor.messages_received_total == 4
    (warning,) = [r.getMessage() for r in caplog.records if r.name == udp_metrics.__name__]
    assert "cannot reach statsd at localhost:8125" in warning and "retrying" in warning


def test_without_statsd_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "statsd", None)  # as if not installed
    with pytest.raises(ImproperlyConfigured, match="pip install statsd"):
        StatsdMonitor()


def test_the_dropping_client_takes_timers_pipelines_and_decorators() -> None:
    """What an app does with ``app.monitor.client`` works while metrics are dropped (under sim)."""
    from detstream.contrib.udp_metrics import DROPPED

    with DROPPED.timer("lookup"):
        pass
    with DROPPED.pipeline() as pipe:
        pipe.incr("a").decr("b")

    @DROPPED.timed("work")
    def work() -> int:
        return 7

    assert work() == 7
    assert DROPPED.incr("x", rate=0.5) is DROPPED
