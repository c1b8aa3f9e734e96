"""Word count: split sentences into words, repartition by word, count in a table.

Run it on a simulated cluster (no broker needed)::

    detstream sim examples/word_count.py --seed 42

The sentences come from a simulated client declared in ``sim_scenario``
(an upstream system, not a worker), and the run's check proves the table
holds exactly the word counts of the input.
"""

from collections import Counter

import detstream


class Word(detstream.Record):
    text: str


# exactly_once: the counts stay exact when a worker is killed mid-stream (the sim's
# default fault plans do that); with Faust's default, at_least_once, a crash can
# make a word count twice.
app = detstream.App(
    "word-count",
    broker="kafka://localhost:9092",
    topic_partitions=8,
    processing_guarantee="exactly_once",
)

sentences = app.topic("sentences", value_type=str)
words = app.topic("words", value_type=Word, partitions=8, internal=True)
word_counts = app.Table("word_counts", default=int, key_type=str, value_type=int)


@app.agent(sentences, sink=[words])
async def split_sentences(stream):
    """Split each sentence into words (yielded values go to the `words` topic)."""
    async for sentence in stream:
        for text in sentence.lower().split():
            yield Word(text=text)


@app.agent(words)
async def count_words(stream):
    """Count words; group_by routes equal words to one worker's table partition."""
    async for word in stream.group_by(Word.text):
        word_counts[word.text] += 1


SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a stream is an infinite async iterable",
    "the table needs to relate every update to a source event",
    "same seed same trace byte for byte",
    "the quick table counts the lazy words",
] * 24


def sim_scenario(sim):
    sim.topic("sentences", partitions=4)
    sim.producer("sentences", SENTENCES, every=0.1, name="sentence-feed")

    @sim.check
    def counts_equal_input(result):
        expected = dict(Counter(w for s in result.produced("sentences") for w in s.lower().split()))
        actual = result.table("word_counts")
        if result.exactly_once or not result.crashes:
            assert actual == expected, f"table {actual} != input counts {expected}"
        else:  # at-least-once: a crash re-processes what was not yet committed
            assert set(actual) == set(expected), f"words {set(actual) ^ set(expected)} differ"
            low = {w: (actual[w], n) for w, n in expected.items() if actual[w] < n}
            assert not low, f"counts below the input (lost updates): {low}"


if __name__ == "__main__":
    app.main()
