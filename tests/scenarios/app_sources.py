"""No false alarm: an app whose own timers, tasks and crontabs send until the run ends.

Faust apps often feed themselves (Faust's ``windowed_aggregation.py`` sends
from an ``@app.timer(0.1)``). Nothing ever stops such a source by itself, so
the run could not drain: the records sent just before the end were reported
never processed ("no-lost-input") and never committed ("converged"), even
with ``--faults none``. The runner stops every worker's tasks, timers and
crontabs when the main phase ends (and keeps them stopped on a worker that
starts later), then drains and checks at a consistent cut.
"""

import asyncio
from collections import Counter

import detstream

app = detstream.App("app-sources", broker="kafka://localhost:9092", topic_partitions=3)
ticks = app.topic("ticks", key_type=str, value_type=int, partitions=3, internal=True)
seen = app.Table("seen", default=int)

SENT = Counter()  # per worker incarnation: each one imports this module afresh


@app.agent(ticks)
async def count(stream):
    async for key, _ in stream.items():
        seen[key] += 1


async def _send(source):
    SENT[source] += 1
    await ticks.send(key=f"{source}-{SENT[source] % 4}", value=SENT[source])


@app.timer(0.1)
async def every_tenth():
    await _send("timer")


@app.timer(0.7, on_leader=True)
async def on_the_leader():
    await _send("leader")


@app.crontab("* * * * *")
async def every_minute():
    for _ in range(5):
        await _send("cron")


@app.task
async def pump():
    while True:
        await _send("task")
        await asyncio.sleep(0.33)


def sim_scenario(sim):
    @sim.check
    def every_tick_counted(result):
        sent = Counter(r.key.decode() for r in result.records("ticks"))
        table = result.table("seen")
        if not sent:  # no worker became operational (chaos kept its group from settling)
            return  # that the sources do send is shown by the tests with no faults
        if result.exactly_once or not result.crashes:
            assert table == dict(sent), (table, dict(sent))
        else:  # at-least-once: a crash makes the group count some ticks again
            low = {k: (table.get(k, 0), n) for k, n in sent.items() if table.get(k, 0) < n}
            assert not low, f"counts below what was sent: {low}"
