"""A program bug: the agent forwards a value larger than ``producer_max_request_size``.

The producer refuses it every time. The engine neither skips the event nor
commits past it: each worker that gets the partition crashes on it, so the
partition never gets past it. The simulator's verdict must be red, and say why:
``send-refused`` in the coverage, ``send-failed`` and ``app-crashed`` in the
trace, and the partition's consumer lag (``converged``).
"""

import detstream

app = detstream.App(
    "poison-output", broker="kafka://localhost:9092", topic_partitions=2,
    producer_max_request_size=10_000,
)
documents = app.topic("documents", value_type=str, partitions=2, internal=True)
archive = app.topic("archive", value_type=str, internal=True)


@app.agent(documents)
async def store(stream):
    async for document in stream:
        await archive.send(value=document * (5_000 if document == "huge" else 1))


DOCUMENTS = ["memo", "letter", "huge", "note", "memo"] * 3


def sim_scenario(sim):
    sim.producer("documents", [(d.encode(), d) for d in DOCUMENTS], keyed=True, every=0.2, name="clerk")
