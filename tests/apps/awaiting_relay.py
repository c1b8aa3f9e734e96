"""An at-least-once relay whose agent awaits per event: nothing may be lost across crashes.

Each order takes a while to process (an awaited lookup, as an agent calling
a service does) and then forwards a receipt without waiting for its ack. So
a commit can fall while an event is half processed, and while its receipt
sits in the producer's buffer: the engine must commit neither past it. The
sim's crashes then catch an ack given at delivery (``ack-before-processing``)
or offsets committed before the flush (``commit-before-flush``).
"""

import asyncio

import detstream

app = detstream.App(
    "awaiting-relay", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="at_least_once", broker_commit_interval=0.2,
)
orders = app.topic("orders", value_type=str, partitions=4, internal=True)
receipts = app.topic("receipts", key_type=str, value_type=str, internal=True)


@app.agent(orders)
async def relay(stream):
    async for order in stream:
        await asyncio.sleep(0.1)  # the lookup
        receipts.send_soon(key=order, value=f"{order}:ok")


ORDERS = [f"order-{i}" for i in range(300)]


def sim_scenario(sim):
    sim.producer("orders", [(o.encode(), o) for o in ORDERS], keyed=True, every=0.04, name="shop")

    @sim.check
    def every_order_has_a_receipt(result):
        receipted = {r.key.decode() for r in result.records("receipts")}
        missing = sorted(set(result.produced("orders")) - receipted)
        assert not missing, f"{len(missing)} orders without a receipt, e.g. {missing[:5]}"
