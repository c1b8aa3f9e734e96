"""An at-least-once keyed counter with a short session: where zombies write.

A worker paused, blocked, or cut off from its group coordinator for longer
than ``broker_session_timeout`` (6 s here) is expelled, and its partitions'
new owner recovers their tables and counts on, while the zombie does not
know yet. At least once nothing fences it: if it flushed the table writes it
cached since its last commit, they would land in the changelogs after the
new owner's, a count would go back, and the new owner's table would differ
from its changelog. So the zombie must hold its commits while its membership
is in doubt (``Consumer.membership_in_doubt``). Under at-least-once a count
may come out higher than the input's (an event redone after a crash), never
lower.

In the zoo since session 38. A worker that stops while in doubt gives its
final commit up and closes its producer as an abort before it leaves the
group (mutant ``stop-waits-in-doubt``): before that, about 6% of this
scenario's chaos seeds lost counts to a changelog send its client retried
after the partitions moved (docs/production.md, Guarantees).
A running worker whose commit's writes are still unacknowledged when the
doubt begins crashes instead (mutant ``flush-waits-in-doubt``, pinned with a
network cut of w1's host for 11 s). tests/test_planted_mutants.py pins ``commit-in-doubt``,
``stop-waits-in-doubt`` and ``flush-waits-in-doubt`` here.
"""

from collections import Counter

import detstream

app = detstream.App(
    "short-session", broker="kafka://localhost:9092", topic_partitions=8,
    broker_session_timeout=6.0, broker_heartbeat_interval=1.0, broker_rebalance_timeout=10.0,
    table_standby_replicas=0,
)
clicks = app.topic("clicks", key_type=str, value_type=str, partitions=8)
counts = app.Table("counts", default=int, key_type=str, value_type=int)
#: 40 keys, each clicked 30 times, over the first 18 s of the run.
KEYS = [f"k{i % 40}" for i in range(1200)]


@app.agent(clicks)
async def count(stream):
    async for key in stream:  # (the value is the record's key too)
        counts[key] += 1


def sim_scenario(sim):
    sim.topic("clicks", partitions=8)
    sim.producer("clicks", [(key, key) for key in KEYS], keyed=True, every=0.015, name="feed")

    @sim.check
    def no_count_below_input(result):
        expected = Counter(result.produced("clicks"))
        table = result.table("counts")
        low = {k: (table.get(k, 0), n) for k, n in expected.items() if table.get(k, 0) < n}
        assert not low, f"{len(low)} counts below the input's (table, input), e.g. " \
            f"{dict(list(low.items())[:5])}"
