"""A correct program whose output the producer refuses for a while: nothing may be lost.

An upstream incident: until ``INCIDENT_END`` (virtual seconds) the note this
agent attaches to some receipts comes back bloated, larger than the app's
``producer_max_request_size``, so the producer refuses those receipts. The
engine must fail each such event: no offset is committed past it, the worker
crashes, and the events are redone (after the incident, they succeed):
every order gets its receipt.

With the ``send-failure-ignored`` mutant the refusals go unseen, the orders'
offsets are committed, and their receipts are lost: the final read reports
``final-read-refused-committed`` and the scenario's check fails too.
"""

import asyncio
import os

import detstream

#: virtual time at which the upstream incident ends.
INCIDENT_END = 9.0

app = detstream.App(
    "refused", broker="kafka://localhost:9092", topic_partitions=4, producer_max_request_size=10_000,
    processing_guarantee=os.environ.get("REFUSED_OUTPUT_GUARANTEE", "at_least_once"),
)
orders = app.topic("orders", value_type=str, partitions=4, internal=True)
receipts = app.topic("receipts", key_type=str, value_type=str, internal=True)


def note_for(order: str) -> str:
    """The upstream's note: one order in three gets a 20 kB one during the incident."""
    bloated = asyncio.get_running_loop().time() < INCIDENT_END and int(order.split("-")[1]) % 3 == 0
    return "n" * (20_000 if bloated else 8)


@app.agent(orders)
async def receipt(stream):
    async for order in stream:
        await receipts.send(key=order, value=f"{order}:{note_for(order)}")


ORDERS = [f"order-{i}" for i in range(100)]


def sim_scenario(sim):
    sim.producer("orders", [(o.encode(), o) for o in ORDERS], keyed=True, every=0.1, name="shop")

    @sim.check
    def every_order_has_a_receipt(result):
        receipted = {r.key.decode() for r in result.records("receipts")}
        missing = sorted(set(result.produced("orders")) - receipted)
        assert not missing, f"{len(missing)} orders without a receipt, e.g. {missing[:5]}"
