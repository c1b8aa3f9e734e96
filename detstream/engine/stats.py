"""The engine's own counters: what ``/metrics`` reports that nothing else keeps.

Most of what an operator wants to see is already kept by the engine for
its own work (the assignment, the offsets committed, table recovery
progress, the streams' ``events_total``) and is read where it is. What is
left is counted here, on the cheapest path available: records handed to
streams per fetched batch (not per record), records sent per topic (one
dict increment per send), commits and their latency, rebalances.

Nothing here does I/O or reads a clock: the callers pass durations measured
on the event loop's clock (virtual under the simulator, so a run's numbers
depend only on its seed).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from detstream._types import TP

__all__ = ["COMMIT_LATENCY_BOUNDS", "ConsumerStats", "Histogram", "SendStats"]

#: upper bounds (seconds) of the commit latency histogram's buckets: a plain commit takes
#: milliseconds, an exactly-once one waits for events in progress and may take seconds.
COMMIT_LATENCY_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Histogram:
    """Observations counted into buckets by upper bound, with their sum (Prometheus' histogram)."""

    def __init__(self, bounds: Sequence[float]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"histogram bounds must be increasing, got {bounds!r}")
        self.bounds: tuple[float, ...] = tuple(bounds)
        #: observations per bucket (not cumulative); the last one is above every bound.
        self.counts: list[int] = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        """Observations at or below each bound, then the total (the ``+Inf`` bucket)."""
        total, out = 0, []
        for count in self.counts:
            total += count
            out.append(total)
        return out


class ConsumerStats:
    """What the conductor counts: records handed to streams, commits, rebalances."""

    def __init__(self) -> None:
        #: records of each partition handed to the streams' buffers (added per fetched batch).
        self.received: dict[TP, int] = {}
        #: commits that committed offsets (or an exactly-once transaction), and their latency
        #: from the moment the offsets were taken to the broker's answer (flush included).
        self.commit_latency = Histogram(COMMIT_LATENCY_BOUNDS)
        #: commits refused or failed (fenced, a refused send, a broker error).
        self.commit_failures = 0
        #: assignments taken (each completed rebalance this worker took part in).
        self.rebalances = 0
        #: between giving partitions up (or losing them) and taking the next assignment.
        self.rebalancing = False

    @property
    def commits(self) -> int:
        return self.commit_latency.count

    def committed(self, seconds: float) -> None:
        self.commit_latency.observe(seconds)

    def commit_failed(self) -> None:
        self.commit_failures += 1


class SendStats:
    """What the producer counts: records sent per topic, and sends refused.

    Kept by the App across restarts of its producer, so the counters only grow.
    """

    def __init__(self) -> None:
        #: records handed to the producer per topic (table changelogs and repartition topics too).
        self.sent: dict[str, int] = {}
        #: sends the broker or the client refused for good.
        self.errors = 0
