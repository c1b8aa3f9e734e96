"""Records told apart with ``isinstance``, on several workers: each decodes to its own classes.

A topic carries two Record types, told apart by their ``__faust`` namespace;
the agent counts each kind by ``isinstance``, as Faust apps dispatch on a
union-typed topic. On Kafka every worker is a process with one copy of each
class. The simulator imports the project once per worker incarnation, so
this holds only if a payload decodes to the reading worker's own class.
"""

from collections import Counter

import detstream

app = detstream.App(
    "record-types", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="exactly_once",
)


class Created(detstream.Record):
    order: str


class Cancelled(detstream.Record):
    order: str


orders = app.topic("orders", partitions=4)
kinds = app.Table("kinds", default=int)


@app.agent(orders)
async def tally(stream):
    async for order in stream:
        kinds[_kind(order)] += 1


def _kind(order):
    if isinstance(order, Created):
        return "created"
    if isinstance(order, Cancelled):
        return "cancelled"
    raise TypeError(f"not one of this worker's orders: {order!r} of {type(order)!r}")


INPUT = [Created(order=f"o{i}") if i % 3 else Cancelled(order=f"o{i}") for i in range(120)]


def sim_scenario(sim):
    # keyed by kind: each kind's count lives in the table partition of its input partition
    sim.producer("orders", [(_kind(order).encode(), order) for order in INPUT], keyed=True,
                 every=0.05, name="feed")

    @sim.check
    def kinds_equal_input(result):
        expected = Counter(_kind(order) for order in INPUT)
        assert result.table("kinds") == dict(expected), result.table("kinds")
