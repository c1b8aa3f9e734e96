"""Page views per minute: a tumbling windowed table (a Faust classic).

Run it on a simulated cluster (no broker needed)::

    detstream sim examples/page_views.py --seed 1

A simulated client sends page views keyed by page, so each page's views land
on one partition and its counts in one table partition (Faust's version
repartitions with ``group_by(PageView.id)``; keying at the source does the
same without the extra topic). The table counts views per page and per
minute of *event time*: the Kafka timestamp each view was produced with.
The run's check proves the table holds exactly the per-minute counts of the
input, also when the fault plan kills workers (``--faults default``).
"""

import json
from collections import Counter
from datetime import timedelta

import detstream

WINDOW = 60.0  # seconds


class PageView(detstream.Record):
    id: str
    user: str


# exactly_once: counts stay exact when a worker is killed mid-stream.
app = detstream.App(
    "page-views",
    broker="kafka://localhost:9092",
    topic_partitions=4,
    processing_guarantee="exactly_once",
)

page_view_topic = app.topic("page_views", value_type=PageView, partitions=4)

# Windows older than an hour are deleted (with changelog tombstones).
page_views = app.Table("page_views", default=int).tumbling(
    WINDOW, expires=timedelta(hours=1)
)


@app.agent(page_view_topic)
async def count_page_views(views):
    """Count each view in the minute of its timestamp."""
    async for view in views:
        page_views[view.id] += 1


@app.timer(WINDOW)
async def report():
    """Log this worker's counts for the current minute (processing time)."""
    for page, count in sorted(page_views.relative_to_now().items()):
        app.log.info("%s: %d views this minute", page, count)


PAGES = ["/", "/about", "/blog", "/docs", "/pricing"]
VIEWS = [PageView(id=PAGES[(i * 7) % 5 if i % 3 else 0], user=f"u{i % 11}") for i in range(480)]


def expected_counts(records):
    """Views per (page, minute window) of the input, from the records' timestamps."""
    window = detstream.TumblingWindow(WINDOW)
    counts = Counter()
    for record in records:
        page = json.loads(record.value)["id"]
        for window_range in window.ranges(record.timestamp):
            counts[(page, window_range)] += 1
    return dict(counts)


def sim_scenario(sim):
    sim.topic("page_views", partitions=4)
    sim.producer(
        "page_views", [(view.id, view) for view in VIEWS], keyed=True, every=0.25, name="browsers"
    )

    @sim.check
    def counts_per_minute_equal_input(result):
        expected = expected_counts(result.records("page_views"))
        actual = result.table("page_views")
        assert len({window for _, window in expected}) >= 2, "the input should span minutes"
        if result.exactly_once or not result.crashes:
            assert actual == expected, f"table {actual} != input counts {expected}"
        else:  # at-least-once: a crash re-processes what was not yet committed
            low = {k: (actual.get(k, 0), n) for k, n in expected.items() if actual.get(k, 0) < n}
            assert not low, f"counts below the input (lost updates): {low}"


if __name__ == "__main__":
    app.main()
