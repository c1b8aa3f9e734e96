"""An agent that raises on some events: restarted each time, the others still processed.

As in Faust, an agent under the default supervisor that raises is restarted
and the worker goes on; the event it raised on is acked, not retried.
"""

import detstream

app = detstream.App("raising-agent", broker="kafka://localhost:9092", topic_partitions=2)
numbers = app.topic("numbers", value_type=int, partitions=2)
evens = app.Table("evens", default=int)


@app.agent(numbers)
async def halve(stream):
    async for number in stream:
        if number % 2:
            raise ValueError(f"{number} is odd")
        evens["count"] += 1


INPUT = list(range(20))


def sim_scenario(sim):
    sim.producer("numbers", [(b"n", n) for n in INPUT], keyed=True, every=0.1, name="feed")
