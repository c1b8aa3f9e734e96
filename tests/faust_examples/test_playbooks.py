"""The patterns of Faust's playbooks (and its README) run with ``import faust`` under `detstream sim --faust-compat`.

faust-streaming's docs/playbooks (quickstart, pageviews, leaderelection,
cheatsheet, vskafka) and its README show small apps. Their code is Faust's and is not kept
here: each test writes a project of its own with the same pattern, plus a
scenario feeding what the playbook sends with ``faust send`` (see
docs/faust-differences.md, "Where a Faust example's input comes from"), and
runs it as a user would, in a subprocess, with faults. Every check must pass
(seeds ``DETSTREAM_PLAYBOOK_SEEDS``, default ``1..5``; they pass over ``1..20``).

What the playbooks get wrong in Faust too is written as it works: the
cheatsheet's ``hopping()`` is given its step, its ``group_by`` a field of
the model; vskafka's ``event.forward()`` is awaited over ``stream.events()``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SEEDS = os.environ.get("DETSTREAM_PLAYBOOK_SEEDS", "1..5")

QUICKSTART = '''
import faust

app = faust.App("pb-hello", broker="kafka://localhost:9092", value_serializer="raw")
greetings_topic = app.topic("greetings")

@app.agent(greetings_topic)
async def greet(greetings):
    async for greeting in greetings:
        assert isinstance(greeting, bytes), greeting
        print(greeting)
'''

QUICKSTART_INPUT = '''
def sim_scenario(sim):
    sim.topic("greetings", partitions=2)
    sim.producer("greetings", [f"Hello Faust {i}" for i in range(12)], every=0.2, name="send")
'''

PAGEVIEWS = '''
import faust

app = faust.App("pb-page-views", broker="kafka://localhost:9092", topic_partitions=4)

class PageView(faust.Record):
    id: str
    user: str

page_view_topic = app.topic("page_views", value_type=PageView)
page_views = app.Table("page_views", default=int)

@app.agent(page_view_topic)
async def count_page_views(views):
    async for view in views.group_by(PageView.id):
        page_views[view.id] += 1
'''

PAGEVIEWS_INPUT = '''
VIEWS = [{"id": f"page-{i % 4}", "user": f"user-{i % 3}"} for i in range(80)]

def sim_scenario(sim):
    sim.topic("page_views", partitions=4)
    sim.producer("page_views", VIEWS, every=0.1, name="send")

    @sim.check
    def every_view_counted(result):
        counts = result.table("page_views")
        assert sorted(counts) == [f"page-{i}" for i in range(4)], counts
        for page, count in counts.items():
            assert count >= 20 if result.crashes else count == 20, (page, count)
'''

LEADER = '''
import random

import faust

app = faust.App("pb-leader", broker="kafka://localhost:9092", value_serializer="raw")

@app.agent()
async def say(greetings):
    async for greeting in greetings:
        print(greeting)

@app.timer(2.0, on_leader=True)
async def publish_greetings():
    print("PUBLISHING ON LEADER!")
    await say.send(value=str(random.random()))
'''

CHEATSHEET = '''
from datetime import datetime, timedelta

import faust

app = faust.App("pb-cheatsheet", broker="kafka://localhost")

raw_orders = app.topic("raw-orders", value_serializer="json")

@app.agent(raw_orders)
async def process_raw(orders):
    async for order in orders:
        print(order["product_id"])

class Order(faust.Record, serializer="json", isodates=True):
    id: str
    product_id: str
    country_origin: str
    amount: float
    date_created: datetime = None

model_orders = app.topic("model-orders", value_type=Order)
batched_orders = app.topic("batched-orders", value_type=Order)
country_orders = app.topic("country-orders", value_type=Order)
window_orders = app.topic("window-orders", value_type=Order)

@app.agent(model_orders)
async def process_model(orders):
    async for order in orders:
        assert isinstance(order.date_created, datetime), order

@app.agent(batched_orders)
async def process_batches(orders):
    async for orders_batch in orders.take(100, within=30.0):
        print(len(orders_batch))

orders_by_country = app.Table("orders_by_country", default=int)

@app.agent(country_orders)
async def process_countries(orders):
    async for order in orders.group_by(Order.country_origin):
        orders_by_country[order.country_origin] += 1

recent_by_country = app.Table("recent_by_country", default=int).hopping(
    timedelta(days=2), timedelta(days=1))

@app.task
async def count_recent():  # a topic's stream iterated outside any agent
    async for order in window_orders.stream():
        recent_by_country[order.country_origin] += 1
        print(recent_by_country[order.country_origin].current())
'''

CHEATSHEET_INPUT = '''
ORDERS = [{"id": f"o{i}", "product_id": f"p{i % 3}", "country_origin": ["NO", "SE"][i % 2],
           "amount": 1.0, "date_created": "2023-11-14T22:13:20+00:00"} for i in range(30)]
TOPICS = ["raw-orders", "model-orders", "batched-orders", "country-orders", "window-orders"]

def sim_scenario(sim):
    for topic in TOPICS:
        partitions = 1 if topic == "window-orders" else 2  # (the recent table has 1 partition)
        sim.topic(topic, partitions=partitions)
        sim.producer(topic, [(o["id"], o) for o in ORDERS], keyed=True, every=0.1, name=topic)

    @sim.check
    def counted_per_country(result):
        counts = result.table("orders_by_country")
        assert sorted(counts) == ["NO", "SE"], counts
        assert all(n >= 15 if result.crashes else n == 15 for n in counts.values()), counts
        recent = {}
        for (country, _window), n in result.table("recent_by_country").items():
            recent[country] = max(recent.get(country, 0), n)
        assert sorted(recent) == ["NO", "SE"], recent
        assert all(n >= 15 if result.crashes else n == 15 for n in recent.values()), recent
'''

VSKAFKA = '''
import faust

app = faust.App("pb-vskafka", broker="kafka://localhost")

class Transfer(faust.Record, serializer="json"):
    amount: float

class Text(faust.Record, serializer="json"):
    text: str

transfers = app.topic("transfers", value_type=Transfer)
large = app.topic("large_transfers", value_type=Transfer)
small = app.topic("small_transfers", value_type=Transfer)
sentences = app.topic("sentences", value_type=Text)
words = app.topic("words", value_type=Text)
totals = app.topic("totals", value_type=Transfer)

@app.agent(transfers)
async def branch(stream):  # .branch(): forward each record where it belongs
    async for event in stream.events():
        await event.forward(large if event.value.amount >= 1000.0 else small)

@app.agent(sentences, sink=[words])
async def flat_map(stream):  # .flatMap() through another topic
    async for event in stream.through("sentences-through"):
        for word in event.text.split():
            yield event.derive(text=word)

class Buffer:
    def __init__(self):
        self.pending = []

buffer = Buffer()

@app.agent(large)
async def collect(stream):  # .process(): a timer punctuates
    async for transfer in stream:
        buffer.pending.append(transfer.amount)

@app.timer(interval=1.0)
async def flush_buffer():
    if buffer.pending:
        await totals.send(value=Transfer(sum(buffer.pending)))
        buffer.pending.clear()
'''

VSKAFKA_INPUT = '''
import json

AMOUNTS = [5.0, 150.0, 2000.0, 50.0, 3000.0]

def sim_scenario(sim):
    sim.topic("transfers", partitions=2)
    sim.topic("sentences", partitions=1)
    sim.producer("transfers", [{"amount": a} for a in AMOUNTS], every=0.5, name="transfers")
    sim.producer("sentences", [{"text": "hello big world"}], every=0.5, name="sentences")

    @sim.check
    def branched_and_split(result):
        # forwarded as they came (the scenario's bytes), at least once each
        large = {r.value for r in result.records("large_transfers")}
        assert large == {b'{"amount":2000.0}', b'{"amount":3000.0}'}, large
        small = {r.value for r in result.records("small_transfers")}
        assert small == {b'{"amount":5.0}', b'{"amount":150.0}', b'{"amount":50.0}'}, small
        texts = {json.loads(r.value)["text"] for r in result.records("words")}
        assert texts == {"hello", "big", "world"}, texts
'''

README = '''
import faust

app = faust.App("pb-readme", broker="kafka://localhost")

class Greeting(faust.Record):
    from_name: str
    to_name: str

@app.agent(value_type=Greeting)  # its own topic, of Greetings
async def hello(greetings):
    async for greeting in greetings:
        print(f"Hello from {greeting.from_name} to {greeting.to_name}")

@app.timer(interval=1.0)
async def example_sender(app):
    await hello.send(value=Greeting(from_name="Faust", to_name="you"))

click_topic = app.topic("clicks", key_type=str, value_type=int)
counts = app.Table("click_counts", default=int)

@app.agent(click_topic)
async def count_click(clicks):
    async for url, count in clicks.items():
        counts[url] += count
'''

README_INPUT = '''
CLICKS = [(f"http://example.com/{i % 3}", i % 4 + 1) for i in range(30)]

def sim_scenario(sim):
    sim.topic("clicks", partitions=8)  # as the table (topic_partitions)
    sim.producer("clicks", CLICKS, keyed=True, every=0.1, name="clicks")

    @sim.check
    def clicks_counted(result):
        expected = {}
        for url, count in CLICKS:
            expected[url] = expected.get(url, 0) + count
        counts = result.table("click_counts")
        assert sorted(counts) == sorted(expected), counts
        for url, total in expected.items():
            assert counts[url] >= total if result.crashes else counts[url] == total, counts
'''

PLAYBOOKS = {
    "readme": (README, README_INPUT),
    "quickstart": (QUICKSTART, QUICKSTART_INPUT),
    "pageviews": (PAGEVIEWS, PAGEVIEWS_INPUT),
    "leaderelection": (LEADER, None),
    "cheatsheet": (CHEATSHEET, CHEATSHEET_INPUT),
    "vskafka": (VSKAFKA, VSKAFKA_INPUT),
}


@pytest.mark.parametrize("playbook", sorted(PLAYBOOKS))
def test_playbook_pattern_passes_every_check_under_faults(playbook: str, tmp_path: Path) -> None:
    code, scenario = PLAYBOOKS[playbook]
    project = tmp_path / f"playbook_{playbook}.py"  # a module name of its own per test
    project.write_text(textwrap.dedent(code))
    command = [sys.executable, "-m", "detstream", "sim", str(project), "--faust-compat",
               "--seeds", SEEDS, "--faults", "default"]
    if scenario is not None:
        scenario_file = tmp_path / f"input_{playbook}.py"
        scenario_file.write_text(textwrap.dedent(scenario))
        command += ["--scenario", str(scenario_file)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=900)
    tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
    first, last = (int(part) for part in SEEDS.split(".."))
    assert result.returncode == 0, tail
    assert f"{last - first + 1} passed, 0 failed" in result.stdout, tail
    assert "Traceback" not in result.stdout + result.stderr, tail
