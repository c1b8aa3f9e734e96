"""``PrometheusMonitor``, ``setup_prometheus_sensors`` (``faust.sensors.prometheus``).

Every test has a registry of its own (``CollectorRegistry()``), so none touches the
process's default one. prometheus_client is in the ``dev`` extra; without it these
tests are skipped, loudly.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest

SKIP = "SKIPPED LOUDLY: prometheus_client is not installed (pip install -e '.[dev]')"
pytest.importorskip("prometheus_client", reason=SKIP)

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry  # noqa: E402

import detstream  # noqa: E402
from detstream.contrib.prometheus import (  # noqa: E402
    METRICS,
    FaustMetrics,
    PrometheusMonitor,
    setup_prometheus_sensors,
)
from detstream.errors import ImproperlyConfigured  # noqa: E402

from .monitor_apps import WORDS, counting_app, run_counting  # noqa: E402

#: faust-streaming 0.15.3's metrics (after ``{prefix}_``) and their types, typos included.
FAUST_METRICS = {
    "messages_received": "counter", "active_messages": "gauge",
    "messages_received_per_topic": "counter", "messages_received_per_topics_partition": "gauge",
    "events_runtime_ms": "histogram", "total_events": "counter", "total_active_events": "gauge",
    "total_events_per_stream": "counter", "table_operations": "counter",
    "topic_messages_sent": "counter", "total_sent_messages": "counter",
    "producer_send_latency": "histogram", "total_error_messages_sent": "counter",
    "producer_error_send_latency": "histogram", "assignment_operations": "counter",
    "assign_latency": "histogram", "total_rebalances": "gauge",
    "total_rebalances_recovering": "gauge", "rebalance_done_consumer_latency": "histogram",
    "rebalance_done_latency": "histogram", "metrics_by_name": "gauge",
    "http_status_codes": "counter", "http_latency": "histogram",
    "topic_partition_end_offset": "gauge", "topic_partition_offset_commited": "gauge",
    "consumer_commit_latency": "histogram",
}
SAMPLE = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})? (\S+)")


def samples(text: str) -> dict[str, dict[str, float]]:
    """name -> {labels text: value} of an exposition text."""
    found: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            match = SAMPLE.fullmatch(line)
            assert match is not None, line
            name, labels, value = match.groups()
            found.setdefault(name, {})[labels or ""] = float(value)
    return found


def scrape(paths: tuple[str, ...]) -> tuple[dict[str, Any], Any]:
    answers: dict[str, Any] = {}

    async def body(app: detstream.App) -> None:
        client = app.web.client()
        for path in paths:
            answers[path] = await client.get(path)

    return answers, body


def test_setup_serves_fausts_metrics_at_the_pattern_and_detstreams_stay_at_the_slash() -> None:
    registry = CollectorRegistry()
    app, topic = counting_app("prom-app.eu")
    setup_prometheus_sensors(app, registry=registry)
    monitor = app.monitor
    assert isinstance(monitor, PrometheusMonitor) and monitor in app.sensors
    answers, body = scrape(("/metrics", "/metrics/"))
    run_counting(app, topic, body=body)

    page = answers["/metrics"]
    assert page.status == 200 and page.headers["Content-Type"] == CONTENT_TYPE_LATEST
    found = samples(page.text)
    p = "prom_app_eu"  # the app's name, "-" and "." as "_"
    assert found[f"{p}_messages_received_total"][""] == WORDS
    assert found[f"{p}_total_events_total"][""] == WORDS
    assert found[f"{p}_total_events_per_stream_total"] == {
        'stream="stream.topic_words.events"': WORDS}
    assert found[f"{p}_messages_received_per_topic_total"] == {'topic="words"': WORDS}
    assert found[f"{p}_active_messages"][""] == found[f"{p}_total_active_events"][""] == 0
    assert found[f"{p}_events_runtime_ms_count"][""] == WORDS
    assert found[f"{p}_events_runtime_ms_sum"][""] == pytest.approx(WORDS * 250.0)
    assert found[f"{p}_events_runtime_ms_bucket"]['le="500.0"'] == WORDS  # ms buckets
    assert found[f"{p}_events_runtime_ms_bucket"]['le="100.0"'] == 0
    assert found[f"{p}_table_operations_total"] == {
        'operation="keys_retrieved",table="table.counts"': WORDS,
        'operation="keys_updated",table="table.counts"': WORDS,
    }
    assert found[f"{p}_topic_messages_sent_total"]['topic="topic.words"'] == WORDS
    assert found[f"{p}_total_sent_messages_total"][""] == monitor.messages_sent
    assert found[f"{p}_assignment_operations_total"] == {'operation="completed"': 1}
    assert found[f"{p}_total_rebalances"][""] == found[f"{p}_total_rebalances_recovering"][""] == 0
    assert found[f"{p}_rebalance_done_latency_count"][""] == 1
    assert found[f"{p}_rebalance_done_latency_sum"][""] == pytest.approx(
        monitor.rebalance_end_latency[0] * 1000)
    assert found[f"{p}_consumer_commit_latency_count"][""] >= 1
    reads = found[f"{p}_messages_received_per_topics_partition"]
    committed = found[f"{p}_topic_partition_offset_commited"]
    assert committed == {labels: offset + 1 for labels, offset in reads.items()}
    assert not any(name.startswith("detstream_") for name in found)

    ours = samples(answers["/metrics/"].text)  # detstream's own, at the other spelling
    assert sum(ours["detstream_messages_received_total"].values()) == WORDS
    assert not any(name.startswith(p) for name in ours)
    assert monitor.asdict()["events_total"] == WORDS  # still the app's Monitor


def test_another_pattern_leaves_metrics_to_detstream_and_counts_the_scrape() -> None:
    registry = CollectorRegistry()
    app, topic = counting_app("prom-pattern")
    setup_prometheus_sensors(app, "/faust-metrics", registry, "shop")
    answers, body = scrape(("/metrics", "/faust-metrics"))
    run_counting(app, topic, body=body)
    assert "detstream_messages_received_total" in samples(answers["/metrics"].text)
    found = samples(answers["/faust-metrics"].text)
    assert found["shop_messages_received_total"][""] == WORDS
    # web requests are counted once answered: the scrape of /metrics before this one
    assert found["shop_http_status_codes_total"] == {'status_code="200"': 1}
    assert samples(registry_text(registry))["shop_http_latency_count"][""] == 2


def registry_text(registry: CollectorRegistry) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry).decode()


def test_metrics_have_fausts_names_and_a_second_app_starts_from_zero() -> None:
    registry = CollectorRegistry()
    first = FaustMetrics.create(registry, "app")
    assert list(FaustMetrics._fields) == [field for field, *_ in METRICS]
    first.messages_received.inc(5)
    second = FaustMetrics.create(registry, "app")  # the same app made again (a sim worker)
    found = samples(registry_text(registry))
    assert found["app_messages_received_total"][""] == 0
    first.messages_received.inc()  # unregistered: recorded, unseen
    assert samples(registry_text(registry))["app_messages_received_total"][""] == 0
    second.messages_received.inc()
    assert samples(registry_text(registry))["app_messages_received_total"][""] == 1
    families = {family.name: family.type for family in registry.collect()}
    assert families == {f"app_{name}": kind for name, kind in FAUST_METRICS.items()}


def test_a_rebalance_clears_the_partitions_series_and_pairs_its_gauges() -> None:
    registry = CollectorRegistry()
    now = [0.0]
    monitor = PrometheusMonitor(metrics=FaustMetrics.create(registry, "app"), time=lambda: now[0])
    tp = detstream.TP("orders", 0)
    monitor.on_message_in(tp, 7, None)
    monitor.on_tp_commit({tp: 8})
    monitor.count("checked", 2)
    first = monitor.on_rebalance_start(None)
    second = monitor.on_rebalance_start(None)  # the first never returned
    found = samples(registry_text(registry))
    assert "app_topic_partition_offset_commited" not in found  # cleared
    assert "app_messages_received_per_topics_partition" not in found
    assert found["app_metrics_by_name"] == {'metric="checked"': 2}
    assert found["app_total_rebalances"][""] == 1
    now[0] = 2.0
    monitor.on_rebalance_return(None, second)
    monitor.on_rebalance_return(None, first)  # stale: not paired any more
    now[0] = 3.0
    monitor.on_rebalance_end(None, second)
    found = samples(registry_text(registry))
    assert found["app_total_rebalances"][""] == found["app_total_rebalances_recovering"][""] == 0
    assert found["app_rebalance_done_consumer_latency_sum"][""] == pytest.approx(2000.0)
    assert found["app_rebalance_done_latency_sum"][""] == pytest.approx(3000.0)


def test_without_prometheus_client_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    app = detstream.App("prom-missing", broker="sim://")
    with pytest.raises(ImproperlyConfigured, match="pip install prometheus_client"):
        setup_prometheus_sensors(app)
    assert not app.sensors.enabled
