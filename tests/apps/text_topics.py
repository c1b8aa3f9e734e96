"""Two text topics: one as Faust declares them (``value_type=str``: JSON text under
the app's default value_serializer), one whose upstream writes plain text
(``value_serializer="raw"``). The simulated clients write each as its topic reads it.
"""

import detstream

app = detstream.App("text-topics", broker="kafka://localhost:9092", topic_partitions=2)
notes = app.topic("notes", value_type=str, partitions=2, internal=True)
lines = app.topic("lines", value_type=str, value_serializer="raw", partitions=2, internal=True)
tagged = app.topic("tagged", key_type=str, key_serializer="json", value_type=str, partitions=2,
                   internal=True)
letters = app.Table("letters", default=int, key_type=str, value_type=int)

NOTES = ["buy milk", 'say "hi"', "ünïcode"]
LINES = ["plain text", "no quotes"]


@app.agent(notes)
async def read_notes(stream):
    async for note in stream:
        letters[note] += 1


@app.agent(lines)
async def read_lines(stream):
    async for line in stream:
        letters[line] += 1


@app.agent(tagged)
async def read_tagged(stream):
    async for key, text in stream.items():
        letters[f"{key}:{text}"] += 1


def sim_scenario(sim):
    sim.producer("notes", NOTES, every=0.1, name="notes-client")
    sim.producer("lines", LINES, every=0.1, name="lines-client")
    sim.producer("tagged", [("k1", "one")], keyed=True, name="tagged-client")

    @sim.check
    def every_text_read_as_written(result):
        assert result.table("letters") == {**{text: 1 for text in NOTES + LINES}, "k1:one": 1}
