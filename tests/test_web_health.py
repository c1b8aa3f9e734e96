"""``/health/``, ``/ready/`` and ``/metrics`` on the simulator, through the in-process client.

``examples/word_count.py`` runs on a simulated cluster (virtual time, seeded,
no sleeps in real time): readiness is 503 while the worker joins, rebalances
or recovers its tables and 200 once it works, ``/metrics`` counts what the
trace shows the worker did, and liveness turns 503 when an app crashes.
Moments inside a rebalance are caught by scraping from a trace hook: the
scrape is a task that runs at the next step of the loop.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter

import mode

import detstream
from detstream.loader import load_isolated
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.testing import simulate

TARGET = "examples/word_count.py"
CONFIG = ClusterConfig(initial_rebalance_delay=0.1)
SAMPLE = re.compile(r'(\w+)(?:\{(.*)\})? (\S+)')


def metrics(text: str) -> dict[str, dict[str, float]]:
    """name -> {labels text: value} of an exposition text."""
    found: dict[str, dict[str, float]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, labels, value = SAMPLE.fullmatch(line).groups()
        found.setdefault(name, {})[labels or ""] = float(value)
    return found


def word_count(cluster, name: str):
    """A fresh ``examples/word_count.py`` app on ``cluster`` as worker ``name``, with its trace."""
    module, app = load_isolated(TARGET)
    app.transport = SimTransport(cluster=cluster, name=name)
    app.client_name = name
    trace: list[tuple[str, dict]] = []
    app.trace_hook = lambda _worker, kind, **fields: trace.append((kind, fields))
    return module, app, trace


def scrape_at(app, trace_kind: str, paths: tuple[str, ...]) -> list[asyncio.Future]:
    """Scrape ``paths`` once, right after the app's next trace step of ``trace_kind``."""
    client, scrapes = app.web.client(), []
    hook = app.trace_hook

    def watching(worker, kind, **fields):
        hook(worker, kind, **fields)
        if kind == trace_kind and not scrapes:
            scrapes.extend(asyncio.ensure_future(client.get(path)) for path in paths)

    app.trace_hook = watching
    return scrapes


def test_ready_follows_start_and_metrics_count_what_the_trace_delivered():
    async def main(cluster):
        cluster.create_topic("sentences", 4, by="test")
        module, app, trace = word_count(cluster, "w1")
        client = app.web.client()
        before = await client.get("/ready/")
        at_assignment = scrape_at(app, "assigned", ("/ready/", "/metrics"))
        starting = asyncio.ensure_future(app.start())
        await asyncio.sleep(0.05)  # the group waits 0.1 s for more members
        joining = await client.get("/ready/")
        await starting
        sentences = module.SENTENCES[:20]
        for sentence in sentences:
            await module.sentences.send(value=sentence)
        await asyncio.sleep(10)
        ready, health, scraped = [await client.get(p) for p in ("/ready/", "/health/", "/metrics")]
        at_assignment = [await f for f in at_assignment]
        await app.stop()
        return before, joining, at_assignment, ready, health, scraped, trace, len(sentences)

    before, joining, (taking, mid), ready, health, scraped, trace, sent = simulate(
        main, seed=5, config=CONFIG
    )
    assert (before.status, before.json()["status"]) == (503, "starting")
    assert (joining.status, joining.json()["status"]) == (503, "joining")
    assert joining.json()["reason"] == "no assignment yet: joining the consumer group"
    assert (taking.status, taking.json()["status"]) == (503, "joining")  # the first one, being taken
    assert metrics(mid.text)["detstream_rebalancing"] == {"": 1.0}
    assert metrics(mid.text)["detstream_app_ready"] == {"": 0.0}
    assert ready.status == 200 and ready.json()["status"] == "ready"
    assert ready.json()["partitions"] > 0
    assert health.status == 200 and health.json()["status"] == "ok"
    assert scraped.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"

    found = metrics(scraped.text)
    delivered = [fields["tp"] for kind, fields in trace if kind == "deliver"]
    assert delivered, "the run delivered nothing"
    by_tp = Counter(delivered)
    received = {
        labels: value for labels, value in found["detstream_messages_received_total"].items()
    }
    assert received == {
        f'topic="{tp.topic}",partition="{tp.partition}"': float(n) for tp, n in by_tp.items()
    }
    events = found["detstream_agent_events_total"]
    assert sum(events.values()) == len(delivered)
    split = 'agent="examples.word_count.split_sentences",topic="sentences"'
    assert events[split] == sent
    words = sum(len(s.split()) for s in module_sentences()[:sent])
    assert events['agent="examples.word_count.count_words",topic="words"'] == words
    assert found["detstream_messages_sent_total"]['topic="sentences"'] == sent
    assert found["detstream_messages_sent_total"]['topic="words"'] == words
    assert found["detstream_rebalances_total"] == {"": 1.0}
    assert found["detstream_rebalancing"] == {"": 0.0}
    assert found["detstream_app_ready"] == {"": 1.0}
    assert found["detstream_app_crashed"] == {"": 0.0}
    commits = found["detstream_commit_latency_seconds_count"][""]
    assert commits >= 1 and found["detstream_commit_latency_seconds_bucket"]['le="+Inf"'] == commits
    assert found["detstream_commit_failures_total"] == {"": 0.0}
    assert sum(found["detstream_consumer_lag"].values()) == 0.0  # everything was read
    taken = [fields for kind, fields in trace if kind == "assigned"]
    assert found["detstream_assigned_partitions"] == {"": float(len(taken[-1]["tps"]))}


def module_sentences() -> list[str]:
    module, _ = load_isolated(TARGET)
    return module.SENTENCES


def test_ready_is_503_while_tables_recover_and_metrics_show_the_progress():
    async def main(cluster):
        cluster.create_topic("sentences", 4, by="test")
        module, first, _ = word_count(cluster, "w1")
        await first.start()
        for sentence in module.SENTENCES[:30]:
            await module.sentences.send(value=sentence)
        await asyncio.sleep(10)
        await first.stop()  # its counts are in the changelog; a new worker recovers them

        _, second, _ = word_count(cluster, "w2")
        during = scrape_at(second, "recovery-start", ("/ready/", "/metrics", "/health/"))
        await second.start()
        await asyncio.sleep(10)
        client = second.web.client()
        after = [await client.get(p) for p in ("/ready/", "/metrics")]
        recoveries = list(second.tables.recoveries)
        await second.stop()
        return [await f for f in during], after, recoveries

    (ready, mid, health), (ready_after, after), recoveries = simulate(main, seed=7, config=CONFIG)
    assert ready.status == 503
    body = ready.json()
    assert body["status"] == "recovering"
    table = body["tables"]["word_counts"]
    assert table["partitions_left"] == table["partitions"] > 0
    assert body["reason"] == (
        f"recovering tables: {table['partitions_left']} of {table['partitions']} changelog "
        f"partitions left ({table['records_done']} of {table['records']} records replayed)"
    )
    assert health.status == 200  # recovering is alive, only not ready

    during = metrics(mid.text)
    assert during["detstream_app_ready"] == {"": 0.0}
    assert during["detstream_table_recovering_partitions"] == {"": float(table["partitions"])}
    targets = during["detstream_table_recovery_target_records"]
    assert sum(targets.values()) == table["records"] > 0
    assert set(during["detstream_table_recovery_done_records"]) == set(targets)

    assert ready_after.status == 200
    finished = metrics(after.text)
    assert finished["detstream_table_recovering_partitions"] == {"": 0.0}
    assert "detstream_table_recovery_target_records" not in finished
    assert finished["detstream_table_recoveries_total"] == {'table="word_counts"': float(len(recoveries))}
    assert finished["detstream_table_recovered_records_total"] == {
        'table="word_counts"': float(sum(r.records for r in recoveries))
    }


def test_ready_is_503_while_a_second_worker_joins_and_both_count_the_rebalance():
    async def main(cluster):
        cluster.create_topic("sentences", 4, by="test")
        module, w1, _ = word_count(cluster, "w1")
        await w1.start()
        for sentence in module.SENTENCES[:10]:
            await module.sentences.send(value=sentence)
        await asyncio.sleep(5)
        during = scrape_at(w1, "assigned", ("/ready/", "/metrics", "/"))  # its second one
        _, w2, _ = word_count(cluster, "w2")
        await w2.start()
        await asyncio.sleep(10)
        after = [[await app.web.client().get(p) for p in ("/ready/", "/metrics")] for app in (w1, w2)]
        await w2.stop()
        await w1.stop()
        return [await f for f in during], after

    (ready, mid, index), after = simulate(main, seed=3, config=CONFIG)
    assert (ready.status, ready.json()["status"]) == (503, "rebalancing")
    # the index page too (it said "running": kill9 read a restarted worker's stale table there)
    assert index.json()["status"] == "rebalancing"
    assert ready.json()["reason"] == "rebalancing: waiting for the group's next assignment"
    assert metrics(mid.text)["detstream_rebalancing"] == {"": 1.0}
    (ready1, text1), (ready2, text2) = after
    assert ready1.status == ready2.status == 200
    m1, m2 = metrics(text1.text), metrics(text2.text)
    assert m1["detstream_rebalances_total"] == {"": 2.0}
    assert m2["detstream_rebalances_total"] == {"": 1.0}
    assigned = m1["detstream_assigned_topic_partitions"], m2["detstream_assigned_topic_partitions"]
    assert assigned[0]['topic="sentences"'] + assigned[1]['topic="sentences"'] == 4


def test_health_is_503_with_the_reason_once_the_app_crashed():
    app = detstream.App("crashy", broker="sim://", topic_partitions=1)
    numbers = app.topic("numbers", value_type=int)

    @app.agent(numbers, supervisor_strategy=mode.CrashingSupervisor)
    async def check(stream):
        async for number in stream:
            if number < 0:
                raise ValueError(f"negative: {number}")

    async def main(cluster):
        await app.start()
        client = app.web.client()
        alive = await client.get("/health/")
        await numbers.send(value=1)
        await numbers.send(value=-1)
        await asyncio.sleep(5)
        answers = [await client.get(p) for p in ("/health/", "/ready/", "/metrics")]
        await app.stop()
        return alive, answers

    alive, (health, ready, scraped) = simulate(main, seed=1, config=CONFIG)
    assert alive.status == 200
    assert health.status == 503
    assert health.json() == {"status": "crashed", "reason": "the app crashed: ValueError: negative: -1",
                             "app": "crashy", "worker": "crashy"}
    assert (ready.status, ready.json()["status"]) == (503, "crashed")
    assert metrics(scraped.text)["detstream_app_crashed"] == {"": 1.0}


def test_probes_answer_get_and_head_ignore_the_query_and_refuse_other_methods():
    app = detstream.App("probed", broker="sim://", topic_partitions=1)

    async def main(cluster):
        await app.start()
        await asyncio.sleep(1)
        client = app.web.client()
        answers = {}
        for path in ("/health/", "/health", "/ready/", "/ready", "/metrics", "/metrics/"):
            answers[path] = [
                await client.get(path + "?verbose=1&x"), await client.head(path),
                await client.post(path), await client.delete(path),
            ]
        await app.stop()
        return answers

    answers = simulate(main, seed=1, config=CONFIG)
    for path, (get, head, post, delete) in answers.items():
        assert get.status == head.status == 200, path
        assert head.body == b"" and get.body, path
        assert post.status == delete.status == 405, path
        assert post.headers["Allow"] == "GET, HEAD", path
    assert answers["/metrics"][0].text == answers["/metrics/"][0].text
