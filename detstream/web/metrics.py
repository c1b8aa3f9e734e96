"""``/metrics``: the worker's numbers in Prometheus' text format.

Read at each scrape from what the engine keeps (``RunState.read``): the
conductor's counters and assignment, the offset tracker's commits, the
consumer's positions and the log ends its fetches reported (no broker
request per scrape), the agents' streams' ``events_total``, the producer's
sends, table recovery progress. ``families`` turns that plain data into
metric families, ``exposition.render`` into text: both are pure, so the
exact text is tested for a fixed state.

Every name starts with ``detstream_``; counters end in ``_total``. The
metric list, with their labels, is in ``docs/production.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detstream._types import TP
from detstream.engine.stats import COMMIT_LATENCY_BOUNDS, Histogram

from .exposition import CONTENT_TYPE, MetricFamily, render
from .observed import Observed
from .probes import readiness
from .views import Request, Response, View

__all__ = ["Metrics", "RunState", "TableProgress", "families", "metrics_text"]


@dataclass
class TableProgress:
    """One table partition being recovered: changelog offsets done of those to replay."""

    table: str
    tp: TP
    done: int
    target: int


@dataclass
class RunState:
    """Everything ``/metrics`` shows, as plain data read from the app at one moment."""

    app: str
    worker: str
    crashed: bool = False
    ready: bool = False
    #: records handed to streams, per partition.
    received: dict[TP, int] = field(default_factory=dict)
    #: (agent, topic) -> events its streams started.
    agent_events: dict[tuple[str, str], int] = field(default_factory=dict)
    #: topic -> records sent.
    sent: dict[str, int] = field(default_factory=dict)
    send_errors: int = 0
    commit_latency: Histogram = field(default_factory=lambda: Histogram(COMMIT_LATENCY_BOUNDS))
    commit_failures: int = 0
    rebalances: int = 0
    rebalancing: bool = False
    assigned: set[TP] = field(default_factory=set)
    standbys: set[TP] = field(default_factory=set)
    #: (position, log end) per assigned source partition.
    offsets: dict[TP, tuple[int, int]] = field(default_factory=dict)
    committed: dict[TP, int] = field(default_factory=dict)
    recovering: list[TableProgress] = field(default_factory=list)
    #: table -> (recoveries finished, records they applied).
    recovered: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def read(cls, app: Observed) -> RunState:
        conductor, tables = app.conductor, app.tables
        stats = conductor.stats
        agent_events = {
            (name, topic): count
            for name, agent in app.agents.items()
            for topic, count in agent.event_counts().items()
        }
        recovering = [
            TableProgress(r.table, tp, min(r.positions.get(tp, start), end) - start, end - start)
            for r in tables.progress.running()
            for tp, (start, end) in r.spans.items()
        ]
        recovered: dict[str, tuple[int, int]] = {}
        for r in tables.progress.finished:
            count, records = recovered.get(r.table, (0, 0))
            recovered[r.table] = (count + 1, records + r.records)
        return cls(
            app=app.conf.id, worker=app.client_name, crashed=app.state == "crashed",
            ready=readiness(app).ok, received=dict(stats.received), agent_events=agent_events,
            sent=dict(app.send_stats.sent), send_errors=app.send_stats.errors,
            commit_latency=stats.commit_latency, commit_failures=stats.commit_failures,
            rebalances=stats.rebalances, rebalancing=stats.rebalancing,
            assigned=conductor.assignment(), standbys=set(tables.standbys.partitions),
            offsets=conductor.consumer_offsets(), committed=conductor.tracker.committed_offsets(),
            recovering=recovering, recovered=recovered,
        )


def _tp_labels(tp: TP) -> dict[str, object]:
    return {"topic": tp.topic, "partition": tp.partition}


def _per_topic(tps: set[TP]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tp in tps:
        counts[tp.topic] = counts.get(tp.topic, 0) + 1
    return counts


def families(state: RunState) -> list[MetricFamily]:
    """The metric families of ``state``, in a fixed order, samples sorted by label."""
    out = [
        MetricFamily("detstream_app_info", "gauge", "The app and worker this process runs (always 1).")
        .add(1, app=state.app, worker=state.worker),
        MetricFamily("detstream_app_crashed", "gauge", "1 once the app crashed, else 0.")
        .add(int(state.crashed)),
        MetricFamily("detstream_app_ready", "gauge",
                     "1 while /ready/ answers 200 (assigned, tables recovered), else 0.")
        .add(int(state.ready)),
    ]
    received = MetricFamily("detstream_messages_received_total", "counter",
                            "Records fetched and handed to the streams, per partition.")
    for tp, count in sorted(state.received.items()):
        received.add(count, **_tp_labels(tp))
    events = MetricFamily("detstream_agent_events_total", "counter",
                          "Events the agent's streams started, per agent and topic read.")
    for (agent, topic), count in sorted(state.agent_events.items()):
        events.add(count, agent=agent, topic=topic)
    sent = MetricFamily("detstream_messages_sent_total", "counter",
                        "Records handed to the producer, per topic (changelogs included).")
    for topic, count in sorted(state.sent.items()):
        sent.add(count, topic=topic)
    out += [
        received, events, sent,
        MetricFamily("detstream_send_errors_total", "counter",
                     "Sends the broker or the client refused for good.").add(state.send_errors),
        _histogram("detstream_commit_latency_seconds",
                   "Offset commits (exactly-once: transactions), from taking the offsets to "
                   "the broker's answer; _count is the number of commits.", state.commit_latency),
        MetricFamily("detstream_commit_failures_total", "counter",
                     "Commits refused or failed (fenced, a refused send, a broker error).")
        .add(state.commit_failures),
        MetricFamily("detstream_rebalances_total", "counter",
                     "Assignments taken (rebalances this worker completed).").add(state.rebalances),
        MetricFamily("detstream_rebalancing", "gauge",
                     "1 between giving partitions up and taking the next assignment.")
        .add(int(state.rebalancing)),
        MetricFamily("detstream_assigned_partitions", "gauge",
                     "Partitions assigned to this worker (sources, changelogs, leader topic).")
        .add(len(state.assigned)),
    ]
    by_topic = MetricFamily("detstream_assigned_topic_partitions", "gauge",
                            "Partitions of each topic assigned to this worker.")
    for topic, count in sorted(_per_topic(state.assigned).items()):
        by_topic.add(count, topic=topic)
    out += [
        by_topic,
        MetricFamily("detstream_standby_partitions", "gauge",
                     "Changelog partitions this worker keeps a standby copy of.")
        .add(len(state.standbys)),
    ]
    out += _offset_families(state)
    out += _recovery_families(state)
    return out


def _histogram(name: str, help: str, histogram: Histogram) -> MetricFamily:
    family = MetricFamily(name, "histogram", help)
    cumulative = histogram.cumulative()
    for bound, count in zip(histogram.bounds, cumulative[:-1], strict=True):
        family.add(count, "_bucket", le=repr(float(bound)))
    family.add(cumulative[-1], "_bucket", le="+Inf")
    family.add(histogram.sum, "_sum")
    family.add(histogram.count, "_count")
    return family


def _offset_families(state: RunState) -> list[MetricFamily]:
    position = MetricFamily("detstream_consumer_position", "gauge",
                            "Next offset the consumer fetches, per assigned source partition.")
    end = MetricFamily("detstream_consumer_log_end_offset", "gauge",
                       "Log end offset the last fetch reported (read_committed: last stable offset).")
    lag = MetricFamily("detstream_consumer_lag", "gauge",
                       "Records not fetched yet: log end offset minus position.")
    for tp, (pos, log_end) in sorted(state.offsets.items()):
        position.add(pos, **_tp_labels(tp))
        end.add(log_end, **_tp_labels(tp))
        lag.add(max(log_end - pos, 0), **_tp_labels(tp))
    committed = MetricFamily("detstream_consumer_committed_offset", "gauge",
                             "Offset this worker last committed, per partition it holds.")
    for tp, offset in sorted(state.committed.items()):
        committed.add(offset, **_tp_labels(tp))
    return [position, end, lag, committed]


def _recovery_families(state: RunState) -> list[MetricFamily]:
    done = MetricFamily("detstream_table_recovery_done_records", "gauge",
                        "Changelog offsets replayed so far, per table partition being recovered.")
    target = MetricFamily("detstream_table_recovery_target_records", "gauge",
                          "Changelog offsets to replay, per table partition being recovered.")
    left = 0
    for p in sorted(state.recovering, key=lambda p: (p.table, p.tp)):
        labels = {"table": p.table, "partition": p.tp.partition}
        done.add(p.done, **labels)
        target.add(p.target, **labels)
        left += p.done < p.target
    recoveries = MetricFamily("detstream_table_recoveries_total", "counter",
                              "Table recoveries finished, per table.")
    records = MetricFamily("detstream_table_recovered_records_total", "counter",
                           "Changelog records the finished recoveries applied, per table.")
    for table, (count, applied) in sorted(state.recovered.items()):
        recoveries.add(count, table=table)
        records.add(applied, table=table)
    return [
        MetricFamily("detstream_table_recovering_partitions", "gauge",
                     "Table partitions whose recovery has not reached its end offset.").add(left),
        done, target, recoveries, records,
    ]


def metrics_text(app: Observed) -> str:
    """``app``'s metrics, in the exposition format."""
    return render(families(RunState.read(app)))


class Metrics(View):
    """``/metrics``: Prometheus' text format, version 0.0.4."""

    async def get(self, request: Request) -> Response:
        return self.text(metrics_text(self.app), content_type=CONTENT_TYPE,
                         headers={"Content-Type": CONTENT_TYPE})
