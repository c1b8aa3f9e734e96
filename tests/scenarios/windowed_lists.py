"""Lists in hopping windows, read, appended and assigned back: Faust's ``hopping_2`` pattern.

Each event reads its window's list (``.value()``, relative to the
reading's own time), appends to it and assigns the list back, which writes
every window of that time. Readings arrive late now and then (a sensor that
catches up), so an event can read through a window older than the newest
one. The app is exactly-once; the built-in ``table-equals-changelog`` check
proves that what a worker holds is what its changelog says. Windows that
shared one list object (the bug the ``windows-share-value`` mutant re-opens)
would change each other in place, behind their changelogs' back.
"""

from datetime import datetime

import detstream

app = detstream.App(
    "windowed-lists", broker="kafka://localhost:9092", topic_partitions=2,
    processing_guarantee="exactly_once",
)


class Reading(detstream.Record):
    at: datetime
    n: int


readings = app.topic("readings", key_type=str, value_type=Reading, partitions=2)
seen = app.Table("seen", default=list).hopping(6, 3).relative_to_field(Reading.at)


@app.agent(readings)
async def collect(stream):
    async for key, reading in stream.items():
        numbers = seen[key].value()
        numbers.append(reading.n)
        seen[key] = numbers


def _at(n: int) -> float:
    """Mostly in order, half a second apart; every seventh reading four seconds late."""
    return 1000.0 + n * 0.5 - (4.0 if n % 7 == 0 else 0.0)


READINGS = [(f"s{n % 3}", Reading(at=_at(n), n=n)) for n in range(120)]


def sim_scenario(sim):
    sim.topic("readings", partitions=2)
    sim.producer("readings", READINGS, keyed=True, every=0.1, name="sensors")

    @sim.check
    def no_reading_twice_in_a_window(result):
        table = result.table("seen")
        assert table, "no window to check"
        twice = {key: numbers for key, numbers in table.items() if len(numbers) != len(set(numbers))}
        assert not twice, f"windows holding a reading twice: {twice}"

    @sim.check
    def each_window_holds_only_its_own_key_and_readings(result):
        sent = {reading.n: key for key, reading in READINGS}
        for (key, _window), numbers in result.table("seen").items():
            strangers = [n for n in numbers if sent.get(n) != key]
            assert not strangers, f"window of {key!r} holds readings of other keys: {strangers}"
