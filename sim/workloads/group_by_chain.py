"""A chain of repartitions under exactly-once: ``group_by`` twice, a table at each end.

Clicks arrive unkeyed (round-robin over 4 partitions). ``by_user`` regroups
them by user (``group_by(Click.user)``, an internal repartition topic), counts
clicks per user and yields each click to ``visits``; ``by_page`` reads
``visits`` and regroups them by page, then by page again under another name
(a ``group_by`` of a grouped stream: two hops in one agent), and counts per
page. So a click crosses four topics and two tables' changelogs, each hop a
transactional send whose input offset commits in the same transaction; the
partitions a table is written from are the repartition topics'.

Checks: at the end, each table (as its changelog says) holds exactly the
input's count per user and per page, under any fault (exactly-once: no click
lost or counted twice); ``visits``, read_committed, holds every click exactly
once.
"""

from collections import Counter
from typing import cast

import detstream

app = detstream.App(
    "group-by-chain", broker="kafka://localhost:9092", topic_partitions=4,
    processing_guarantee="exactly_once", broker_commit_interval=0.5,
)


class Click(detstream.Record):
    id: int
    user: str
    page: str


clicks = app.topic("clicks", value_type=Click, partitions=4, internal=True)
visits = app.topic("visits", value_type=Click, partitions=3, internal=True)
user_counts = app.Table("user_counts", default=int, key_type=str, value_type=int)
page_counts = app.Table("page_counts", default=int, key_type=str, value_type=int)


@app.agent(clicks, sink=[visits])
async def by_user(stream):
    async for click in stream.group_by(Click.user):
        user_counts[click.user] += 1
        yield click


@app.agent(visits)
async def by_page(stream):
    async for click in stream.group_by(Click.page).group_by(lambda c: c.page, name="page-again"):
        page_counts[click.page] += 1


CLICKS = [Click(id=i, user=f"u{i % 13}", page=f"/p{(i * 7) % 5}") for i in range(300)]


def sim_scenario(sim):
    sim.producer("clicks", CLICKS, every=0.04, name="browser")

    @sim.check
    def tables_count_the_input_exactly(result):
        users = Counter(c.user for c in result.produced("clicks"))
        pages = Counter(c.page for c in result.produced("clicks"))
        assert result.table("user_counts") == dict(users), (result.table("user_counts"), users)
        assert result.table("page_counts") == dict(pages), (result.table("page_counts"), pages)

    @sim.check
    def every_click_visits_once(result):
        seen = Counter(cast(Click, Click.loads(r.value)).id for r in result.records("visits"))
        expected = Counter(c.id for c in result.produced("clicks"))
        assert seen == expected, f"visits differ from clicks: {(seen - expected) + (expected - seen)}"
