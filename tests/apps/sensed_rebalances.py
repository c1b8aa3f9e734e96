"""A counting app whose sensor writes each rebalance, assignment and buffer hook to the trace.

The trace is how a test reads what every worker's sensors saw across crashes and
restarts (each incarnation imports this module afresh): a line ``sensor`` with
the hook's name and, for paired hooks, the number of the rebalance or assignment
their state came from, so a test can check they come in order and pair up.
"""

from collections import Counter
from typing import Any

import detstream

app = detstream.App("sensed-rebalances", broker="kafka://localhost:9092", topic_partitions=4)
words = app.topic("words", value_type=str, partitions=4, internal=True)
counts = app.Table("counts", default=int)


class TracingSensor(detstream.Sensor):
    """Writes each rebalance and assignment hook to the app's trace."""

    def __init__(self, target: detstream.App) -> None:
        self.app = target
        self.started = 0

    def _record(self, hook: str, **fields: Any) -> None:
        self.app.tracer.record("sensor", hook=hook, **fields)

    def on_rebalance_start(self, app: Any) -> Any:
        self.started += 1
        self._record("rebalance_start", n=self.started, count=app.rebalancing_count)
        return {"n": self.started, **super().on_rebalance_start(app)}

    def on_rebalance_return(self, app: Any, state: Any) -> None:
        self._record("rebalance_return", n=state["n"])

    def on_rebalance_end(self, app: Any, state: Any) -> None:
        self._record("rebalance_end", n=state["n"])

    def on_assignment_start(self, assignor: Any) -> Any:
        self._record("assignment_start")
        return "assigning"

    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        self._record("assignment_completed", state=state)


app.sensors.add(TracingSensor(app))


@app.agent(words)
async def count(stream):
    async for word in stream:
        counts[word] += 1


WORDS = [f"w{i % 11}" for i in range(200)]


def sim_scenario(sim):
    sim.producer("words", [(w.encode(), w) for w in WORDS], keyed=True, every=0.05, name="feed")

    @sim.check
    def counts_match_input(result):
        assert result.table("counts") == dict(Counter(result.produced("words")))
