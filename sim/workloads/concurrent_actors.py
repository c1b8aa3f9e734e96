"""Concurrent actors: an agent with ``concurrency=3`` that awaits per event, at-least-once.

Three actors share the agent's buffer and each awaits a lookup of its own
length (0.05 to 0.2 s) per order, so the events of one partition finish out
of order: the commit point may move only over the contiguous prefix of acked
offsets (``OffsetTracker``), and a revoke or commit must wait for all three
actors' events in hand. Each actor forwards a receipt with ``send_soon``
(not awaited: it sits in the producer buffer while later events finish); a
second agent, with ``concurrency=1`` (tables demand it), counts receipts per
customer.

Checks: every order produced has a receipt (at least once; at-least-once
may repeat); each customer's count in the table is at least its number of
receipts in the log, and with no fault that can make the group redo work, it
is exactly that, and the receipts are exactly the orders.
"""

import asyncio
import json
from collections import Counter

import detstream

app = detstream.App(
    "concurrent-actors", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="at_least_once", broker_commit_interval=0.3,
)
orders = app.topic("orders", key_type=str, value_type=str, partitions=4, internal=True)
receipts = app.topic("receipts", key_type=str, value_type=str, partitions=4, internal=True)
counts = app.Table("receipt_counts", default=int, key_type=str, value_type=int)


@app.agent(orders, concurrency=3)
async def process(stream):
    async for customer, order in stream.items():
        await asyncio.sleep(0.05 * (1 + int(order.rsplit("-", 1)[1]) % 4))  # the lookup
        receipts.send_soon(key=customer, value=order)


@app.agent(receipts)
async def count(stream):
    async for customer, _ in stream.items():
        counts[customer] += 1


ORDERS = [(f"c{i % 7}", f"order-{i}") for i in range(240)]


def _may_redo(result):
    """A fault after which at-least-once may process some input twice (a graceful stop with
    the cluster unreachable cannot commit either)."""
    return result.crashes or any(f.unreachable for f in result.faults)


def sim_scenario(sim):
    sim.producer("orders", ORDERS, keyed=True, every=0.03, name="shop")

    @sim.check
    def every_order_has_a_receipt(result):
        receipted = Counter(json.loads(r.value) for r in result.records("receipts"))
        missing = sorted(set(result.produced("orders")) - set(receipted))
        assert not missing, f"{len(missing)} orders without a receipt, e.g. {missing[:5]}"
        if not _may_redo(result):
            repeated = sorted(o for o, n in receipted.items() if n > 1)
            assert not repeated, f"receipts repeated with no fault to excuse it: {repeated[:5]}"

    @sim.check
    def counts_cover_receipts(result):
        logged = Counter(r.key.decode() for r in result.records("receipts"))
        table = result.table("receipt_counts")
        low = {c: (table.get(c, 0), n) for c, n in logged.items() if table.get(c, 0) < n}
        assert not low, f"customers counted below their receipts (table, log): {low}"
        extra = sorted(set(table) - set(logged))
        assert not extra, f"customers counted without a receipt: {extra}"
        if not _may_redo(result):
            assert table == dict(logged), f"table {table} != receipts {dict(logged)}"
