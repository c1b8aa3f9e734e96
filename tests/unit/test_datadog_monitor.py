"""``DatadogMonitor`` (``faust.sensors.datadog``): Faust's DogStatsD metrics and tags.

The datadog package is in the ``dev`` extra; without it these tests are skipped, loudly.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from typing import Any

import pytest

SKIP = "SKIPPED LOUDLY: datadog is not installed (pip install -e '.[dev]')"
pytest.importorskip("datadog", reason=SKIP)

import detstream  # noqa: E402
from detstream.contrib import udp_metrics  # noqa: E402
from detstream.contrib.datadog import DatadogMonitor, DatadogStatsClient, encode_tags  # noqa: E402
from detstream.errors import ImproperlyConfigured  # noqa: E402

from .monitor_apps import WORDS, counting_app, receive_lines, run_counting, udp_server  # noqa: E402


class Table:
    name = "totals"


def parse(line: str) -> tuple[str, float, str, set[str]]:
    """``name:value|type[|@rate][|#tags][|...]`` as (name, value, type, tags)."""
    head, kind, *fields = line.split("|")
    name, value = head.rsplit(":", 1)
    tags = {tag for f in fields if f.startswith("#") for tag in f[1:].split(",")}
    return name, float(value), kind, tags


class RecordingClient:
    """What a DatadogStatsClient was asked to send: (kind, name, labels) -> values."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, str, tuple[tuple[str, Any], ...]], list[float]] = (
            defaultdict(list))

    def _record(self, kind: str, metric: str, value: float, labels: Any) -> None:
        self.sent[kind, metric, tuple(sorted((labels or {}).items()))].append(value)

    def increment(self, metric: str, value: float = 1, labels: Any = None) -> None:
        self._record("c", metric, value, labels)

    def decrement(self, metric: str, value: float = 1, labels: Any = None) -> None:
        self._record("c", metric, -value, labels)

    def gauge(self, metric: str, value: float, labels: Any = None) -> None:
        self._record("g", metric, value, labels)

    def timing(self, metric: str, value: float, labels: Any = None) -> None:
        self._record("ms", metric, value, labels)

    def total(self, metric: str, kind: str = "c", **labels: Any) -> float:
        return sum(sum(values) for (k, m, ls), values in self.sent.items()
                   if k == kind and m == metric and labels.items() <= dict(ls).items())


class RecordingDatadogMonitor(DatadogMonitor):
    def _new_datadog_stats_client(self) -> Any:
        self.recorded = RecordingClient()
        return self.recorded


def test_events_reach_dogstatsd_with_fausts_names_and_tags() -> None:
    app = detstream.App("datadog-lines", broker="sim://")
    stream = app.topic("orders").stream()
    tp = detstream.TP("orders", 1)
    now = [100.0]
    with udp_server() as server:
        monitor = DatadogMonitor("127.0.0.1", server.getsockname()[1], "shop",
                                 time=lambda: now[0])
        monitor.on_message_in(tp, 41, None)
        state = monitor.on_stream_event_in(tp, 41, stream, None)
        now[0] += 0.25
        monitor.on_stream_event_out(tp, 41, stream, None, state)
        monitor.on_table_get(Table(), "k")
        monitor.count("orders_checked", 3)
        lines = [parse(line) for line in receive_lines(server, 10, prefix="shop.")]
    tp_tags = {"topic:orders", "partition:1"}
    stream_tags = tp_tags | {"stream:topic_orders"}
    expected = [
        ("shop.messages_received", 1, "c", tp_tags),
        ("shop.messages_active", 1, "c", tp_tags),
        ("shop.topic_messages_received", 1, "c", {"topic:orders"}),
        ("shop.read_offset", 41, "g", tp_tags),
        ("shop.events", 1, "c", stream_tags),
        ("shop.events_active", 1, "c", stream_tags),
        ("shop.events_active", -1, "c", stream_tags),
        ("shop.events_runtime", 250.0, "ms", stream_tags),
        ("shop.table_keys_retrieved", 1, "c", {"table:totals"}),
        ("shop.orders_checked", 3, "c", set()),
    ]
    assert [line[:3] for line in lines] == [e[:3] for e in expected]
    for (_, _, _, tags), (_, _, _, wanted) in zip(lines, expected, strict=True):
        assert wanted <= tags  # (DD_ENV and the like may add tags of the environment)


def test_the_client_takes_statsds_names_and_sanitises_tags() -> None:
    assert encode_tags({"topic": "orders.eu-1", "status code": 200}) == [
        "topic:orders_eu_1", "status_code:200"]
    assert encode_tags({}) is None and encode_tags(None) is None
    with udp_server() as server:
        client = DatadogStatsClient("127.0.0.1", server.getsockname()[1], prefix="shop")
        client.incr("hits", 2)
        client.decr("hits")
        client.histogram("size", 3, labels={"topic": "a"})
        lines = [parse(line) for line in receive_lines(server, 3, prefix="shop.")]
    assert [line[:3] for line in lines] == [
        ("shop.hits", 2, "c"), ("shop.hits", -1.0, "c"), ("shop.size", 3, "h")]
    assert "topic:a" in lines[2][3]


def test_a_run_sends_fausts_metrics_with_tags() -> None:
    app, topic = counting_app("datadog-run")
    monitor = app.monitor = RecordingDatadogMonitor()
    run_counting(app, topic)
    client = monitor.recorded
    assert client.total("messages_received") == client.total("events") == WORDS
    assert client.total("events", topic="words", stream="topic_words") == WORDS
    assert client.total("topic_messages_received", topic="words") == WORDS
    assert client.total("messages_active") == client.total("events_active") == 0
    assert client.total("events_runtime", "ms") == pytest.approx(WORDS * 250.0)
    assert client.total("table_keys_retrieved", table="counts") == WORDS
    assert client.total("table_keys_updated", table="counts") == WORDS
    assert client.total("topic_messages_sent", topic="words") == WORDS
    assert client.total("messages_sent") == monitor.messages_sent
    assert client.total("assignments_complete") == 1
    assert client.total("rebalances") == client.total("rebalances_recovering") == 0
    assert client.total("rebalance_end_latency", "ms") == pytest.approx(
        monitor.rebalance_end_latency[0] * 1000)


def test_under_the_simulator_nothing_is_sent_and_the_run_is_the_same(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, topic = counting_app("datadog-sim")
    monitor = app.monitor = DatadogMonitor()
    with caplog.at_level(logging.INFO):
        digest = run_counting(app, topic)
    refusals = [r.getMessage() for r in caplog.records if r.name == udp_metrics.__name__]
    assert len(refusals) == 1
    assert "DatadogMonitor: no client for DogStatsD at localhost:8125" in refusals[0]
    assert not [r for r in caplog.records if r.name.startswith("datadog")]  # no error per packet
    assert monitor.asdict()["events_total"] == WORDS

    app, topic = counting_app("datadog-sim")
    assert run_counting(app, topic) == digest


def test_without_datadog_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datadog", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "datadog.dogstatsd", None)
    with pytest.raises(ImproperlyConfigured, match="pip install datadog"):
        DatadogMonitor()
