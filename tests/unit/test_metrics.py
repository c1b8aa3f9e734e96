"""``/metrics``' text: Prometheus' exposition format 0.0.4, exact for a fixed state.

The rendering is pure (``RunState`` -> ``families`` -> ``render``), so the
whole text of a small state is compared, and every line of a larger one is
checked against the format's grammar. The numbers a real run gives are
checked in ``tests/test_web_health.py`` (simulated) and
``tests/integration/test_web.py`` (Kafka).
"""

from __future__ import annotations

import math
import re

import pytest

from detstream._types import TP
from detstream.engine.stats import Histogram
from detstream.web.exposition import MetricFamily, escape_label, format_value, render
from detstream.web.metrics import RunState, TableProgress, families

#: one sample line of the format: name, optional {labels}, value.
SAMPLE = re.compile(
    r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(?:\{(?P<labels>(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})?'
    r' (?P<value>[-+]?(?:[0-9.e+-]+|Inf|NaN))'
)


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """name -> labels -> value; asserts every line is HELP, TYPE or a sample of a typed family."""
    assert text.endswith("\n")
    typed: dict[str, str] = {}
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram"), line
            typed[name] = kind
            continue
        match = SAMPLE.fullmatch(line)
        assert match, f"not a sample line: {line!r}"
        name = match["name"]
        family = next((f for f in typed if name == f or name.startswith(f + "_")), None)
        assert family is not None, f"{name} has no TYPE line before it"
        labels = tuple(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', match["labels"] or ""))
        samples.setdefault(name, {})[labels] = float(match["value"])
    return samples


def test_a_small_state_renders_exactly():
    latency = Histogram((0.01, 0.1))
    for seconds in (0.004, 0.05, 0.25):
        latency.observe(seconds)
    state = RunState(
        app="shop", worker="w1", ready=True,
        received={TP("orders", 1): 7, TP("orders", 0): 3},
        agent_events={("proj.count", "orders"): 10},
        sent={"shop-totals-changelog": 4},
        commit_latency=latency, rebalances=2,
        assigned={TP("orders", 0), TP("orders", 1), TP("shop-totals-changelog", 0)},
        offsets={TP("orders", 0): (3, 5)},
        committed={TP("orders", 0): 3},
        recovering=[TableProgress("totals", TP("shop-totals-changelog", 0), 2, 8)],
        recovered={"totals": (1, 12)},
    )
    assert render(families(state)) == EXPECTED


EXPECTED = """\
# HELP detstream_app_info The app and worker this process runs (always 1).
# TYPE detstream_app_info gauge
detstream_app_info{app="shop",worker="w1"} 1
# HELP detstream_app_crashed 1 once the app crashed, else 0.
# TYPE detstream_app_crashed gauge
detstream_app_crashed 0
# HELP detstream_app_ready 1 while /ready/ answers 200 (assigned, tables recovered), else 0.
# TYPE detstream_app_ready gauge
detstream_app_ready 1
# HELP detstream_messages_received_total Records fetched and handed to the streams, per partition.
# TYPE detstream_messages_received_total counter
detstream_messages_received_total{topic="orders",partition="0"} 3
detstream_messages_received_total{topic="orders",partition="1"} 7
# HELP detstream_agent_events_total Events the agent's streams started, per agent and topic read.
# TYPE detstream_agent_events_total counter
detstream_agent_events_total{agent="proj.count",topic="orders"} 10
# HELP detstream_messages_sent_total Records handed to the producer, per topic (changelogs included).
# TYPE detstream_messages_sent_total counter
detstream_messages_sent_total{topic="shop-totals-changelog"} 4
# HELP detstream_send_errors_total Sends the broker or the client refused for good.
# TYPE detstream_send_errors_total counter
detstream_send_errors_total 0
# HELP detstream_commit_latency_seconds Offset commits (exactly-once: transactions), from taking \
the offsets to the broker's answer; _count is the number of commits.
# TYPE detstream_commit_latency_seconds histogram
detstream_commit_latency_seconds_bucket{le="0.01"} 1
detstream_commit_latency_seconds_bucket{le="0.1"} 2
detstream_commit_latency_seconds_bucket{le="+Inf"} 3
detstream_commit_latency_seconds_sum 0.304
detstream_commit_latency_seconds_count 3
# HELP detstream_commit_failures_total Commits refused or failed (fenced, a refused send, a broker error).
# TYPE detstream_commit_failures_total counter
detstream_commit_failures_total 0
# HELP detstream_rebalances_total Assignments taken (rebalances this worker completed).
# TYPE detstream_rebalances_total counter
detstream_rebalances_total 2
# HELP detstream_rebalancing 1 between giving partitions up and taking the next assignment.
# TYPE detstream_rebalancing gauge
detstream_rebalancing 0
# HELP detstream_assigned_partitions Partitions assigned to this worker (sources, changelogs, leader topic).
# TYPE detstream_assigned_partitions gauge
detstream_assigned_partitions 3
# HELP detstream_assigned_topic_partitions Partitions of each topic assigned to this worker.
# TYPE detstream_assigned_topic_partitions gauge
detstream_assigned_topic_partitions{topic="orders"} 2
detstream_assigned_topic_partitions{topic="shop-totals-changelog"} 1
# HELP detstream_standby_partitions Changelog partitions this worker keeps a standby copy of.
# TYPE detstream_standby_partitions gauge
detstream_standby_partitions 0
# HELP detstream_consumer_position Next offset the consumer fetches, per assigned source partition.
# TYPE detstream_consumer_position gauge
detstream_consumer_position{topic="orders",partition="0"} 3
# HELP detstream_consumer_log_end_offset Log end offset the last fetch reported (read_committed: \
last stable offset).
# TYPE detstream_consumer_log_end_offset gauge
detstream_consumer_log_end_offset{topic="orders",partition="0"} 5
# HELP detstream_consumer_lag Records not fetched yet: log end offset minus position.
# TYPE detstream_consumer_lag gauge
detstream_consumer_lag{topic="orders",partition="0"} 2
# HELP detstream_consumer_committed_offset Offset this worker last committed, per partition it holds.
# TYPE detstream_consumer_committed_offset gauge
detstream_consumer_committed_offset{topic="orders",partition="0"} 3
# HELP detstream_table_recovering_partitions Table partitions whose recovery has not reached its end offset.
# TYPE detstream_table_recovering_partitions gauge
detstream_table_recovering_partitions 1
# HELP detstream_table_recovery_done_records Changelog offsets replayed so far, per table partition \
being recovered.
# TYPE detstream_table_recovery_done_records gauge
detstream_table_recovery_done_records{table="totals",partition="0"} 2
# HELP detstream_table_recovery_target_records Changelog offsets to replay, per table partition \
being recovered.
# TYPE detstream_table_recovery_target_records gauge
detstream_table_recovery_target_records{table="totals",partition="0"} 8
# HELP detstream_table_recoveries_total Table recoveries finished, per table.
# TYPE detstream_table_recoveries_total counter
detstream_table_recoveries_total{table="totals"} 1
# HELP detstream_table_recovered_records_total Changelog records the finished recoveries applied, per table.
# TYPE detstream_table_recovered_records_total counter
detstream_table_recovered_records_total{table="totals"} 12
"""


def test_label_values_escape_backslash_quote_and_newline():
    family = MetricFamily("x_total", "counter", 'help with \\ and\nnewline and "quotes"')
    family.add(1, topic='a"b\\c\nd')
    assert render([family]) == (
        '# HELP x_total help with \\\\ and\\nnewline and "quotes"\n'
        "# TYPE x_total counter\n"
        'x_total{topic="a\\"b\\\\c\\nd"} 1\n'
    )
    assert escape_label("plain-topic.v1") == "plain-topic.v1"
    parsed = parse(render([family]))
    assert parsed["x_total"] == {(("topic", 'a\\"b\\\\c\\nd'),): 1.0}


def test_awkward_names_in_a_state_still_parse():
    """Agent names with <locals>, topics with dots and quotes: every line stays a valid sample."""
    state = RunState(app='a"pp', worker="host\\1",
                     agent_events={("tests.make.<locals>.count", 'we"ird\ntopic'): 2})
    samples = parse(render(families(state)))
    assert samples["detstream_agent_events_total"] == {
        (("agent", "tests.make.<locals>.count"), ("topic", 'we\\"ird\\ntopic')): 2.0
    }
    assert samples["detstream_app_info"] == {(("app", 'a\\"pp'), ("worker", "host\\\\1")): 1.0}
    assert samples["detstream_commit_latency_seconds_count"] == {(): 0.0}
    assert samples["detstream_commit_latency_seconds_bucket"][(("le", "+Inf"),)] == 0.0


@pytest.mark.parametrize(("value", "text"), [
    (0, "0"), (12, "12"), (True, "1"), (2.5, "2.5"), (3.0, "3"), (math.inf, "+Inf"),
    (-math.inf, "-Inf"), (math.nan, "NaN"), (1e20, "1e+20"),
])
def test_values_are_written_as_prometheus_reads_them(value, text):
    assert format_value(value) == text


def test_bad_names_are_refused_where_they_are_made():
    with pytest.raises(ValueError, match="metric name"):
        MetricFamily("bad-name", "gauge", "")
    with pytest.raises(ValueError, match="metric type"):
        MetricFamily("ok", "meter", "")
    with pytest.raises(ValueError, match="label name"):
        MetricFamily("ok", "gauge", "").add(1, **{"__reserved": "x"})


def test_a_histogram_counts_each_value_in_the_first_bucket_that_holds_it():
    histogram = Histogram((1.0, 2.0))
    for value in (0.5, 1.0, 1.5, 2.0, 9.0):
        histogram.observe(value)
    assert histogram.counts == [2, 2, 1]
    assert histogram.cumulative() == [2, 4, 5]
    assert (histogram.count, histogram.sum) == (5, 14.0)
    with pytest.raises(ValueError, match="increasing"):
        Histogram((2.0, 1.0))


def test_an_empty_family_list_renders_nothing():
    assert render([]) == ""
