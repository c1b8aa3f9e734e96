"""A GlobalTable join: orders priced from a reference table every worker holds whole.

A client writes 40 product prices to ``prices`` first; an agent puts each in
``app.GlobalTable("prices")``. Orders, keyed by customer (so an order and its
product's price are on different partitions), follow from t=6 s; the joining
agent reads the price from the global table, waiting (0.1 s at a time) while
its worker's copy does not have it yet, and sends the priced order with the
number of waits and the time its worker incarnation started. Every worker
reads the whole changelog with a reader outside the group: at start up to
the end offsets it sees then, before any agent gets an event, then follows it
in the background. Crashes make restarted workers recover the global table
from the changelog (kill -9 included), and an own write is read back at once.

Checks (at-least-once): every order is priced, at least once, and always
with its product's price (never a missing or wrong value); and a worker
incarnation that started after a product's price was in the changelog
never waited for it: the global table was read to its end before its first
event (no lookup of a missing key that was written before the start).
"""

import asyncio
import json
import time

import detstream

app = detstream.App(
    "global-lookup", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="at_least_once", broker_commit_interval=0.3,
)
prices = app.topic("prices", key_type=str, value_type=int, partitions=4, internal=True)
orders = app.topic("orders", key_type=str, value_type=str, partitions=4, internal=True)
priced = app.topic("priced", key_type=str, partitions=4, internal=True)
price_table = app.GlobalTable("prices", key_type=str, value_type=int)

#: when this incarnation started (virtual seconds: the loop's clock under the simulator),
#: before the app reads its global tables.
STARTED = time.monotonic()  # noqa: TID251 - virtual under the simulator


@app.agent(prices)
async def load_prices(stream):
    async for product, price in stream.items():
        price_table[product] = price


@app.agent(orders)
async def join_orders(stream):
    async for order in stream:
        product = order.split("/")[1]
        waits = 0
        while (price := price_table.get(product)) is None:
            waits += 1
            await asyncio.sleep(0.1)
        await priced.send(
            key=order, value={"order": order, "price": price, "waits": waits, "started": STARTED})


PRICES = {f"p{i}": 100 + 7 * i for i in range(40)}
ORDERS = [(f"c{i % 11}", f"o{i}/p{(i * 13) % 40}") for i in range(200)]


def sim_scenario(sim):
    sim.producer("prices", list(PRICES.items()), keyed=True, every=0.02, name="catalog")
    sim.producer("orders", ORDERS, keyed=True, start=6.0, every=0.05, name="shop")

    @sim.check
    def every_order_priced_right(result):
        got: dict[str, set[int]] = {}
        for record in result.records("priced"):
            joined = json.loads(record.value)
            got.setdefault(joined["order"], set()).add(joined["price"])
        missing = sorted(set(result.produced("orders")) - set(got))
        assert not missing, f"{len(missing)} orders never priced, e.g. {missing[:5]}"
        wrong = {o: p for o, p in got.items() if p != {PRICES[o.split('/')[1]]}}
        assert not wrong, f"orders priced wrong: {dict(list(wrong.items())[:5])}"

    @sim.check
    def no_wait_for_a_price_written_before_the_start(result):
        changelog = "global-lookup-prices-changelog"
        written: dict[str, float] = {}  # product -> when its price was first appended to the changelog
        for event in result.events("produce"):
            if event.fields["tp"].topic == changelog:
                written.setdefault(json.loads(event.fields["key"]), event.time)
        assert set(written) == set(PRICES), "prices missing from the changelog"
        stale = []
        for record in result.records("priced"):
            joined = json.loads(record.value)
            product = joined["order"].split("/")[1]
            if joined["waits"] and written[product] < joined["started"]:
                stale.append((joined["order"], written[product], joined["started"]))
        assert not stale, (
            f"{len(stale)} lookups waited for a price in the changelog before their "
            f"worker started (order, written, started): {stale[:5]}"
        )
