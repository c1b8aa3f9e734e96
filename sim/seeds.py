"""The random streams of one run, each derived from the seed and a name.

A run draws from several independent streams, one per subsystem, so that a
change in one (a fault plan drawn differently, one more network decision)
does not shift the draws of the others: ``faults`` (the plan), ``network``
(latencies, losses, which dropped requests were applied), ``schedule``
(``--shuffle``: the order of ready callbacks), ``errors`` (how a client
meets an error response: ``sim.network``), ``admin`` (the broker an
admin request picks: ``sim.admin``), ``stops`` (whether a consumer's stop
lets its rebalance in flight finish: ``SimConsumer.stop``) and the sandbox's own, which
app code sees through ``random``, ``uuid4`` and ``os.urandom``
(``sim.sandbox``), and two for faults of the client library
(``sim.client_faults``): ``stalls`` (which stalls also hold the worker's
group coordinator requests) and ``client-faults`` (which transactional
producers' senders die on a lost coordinator lookup); each is drawn only
when its situation arises, so runs that never meet it keep their traces.
Their derivations are fixed: changing one changes every trace hash.
"""

from __future__ import annotations

import random

__all__ = ["SeedStreams"]


class SeedStreams:
    """Hands out the named streams of ``seed`` (a fresh ``random.Random`` per call)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def stream(self, name: str) -> random.Random:
        """The stream ``{seed}/{name}``."""
        return random.Random(f"{self.seed}/{name}")

    def faults(self) -> random.Random:
        return self.stream("faults")

    def network(self) -> random.Random:
        return self.stream("network")

    def schedule(self) -> random.Random:
        return self.stream("schedule")

    def errors(self) -> random.Random:
        """How a client meets an error response: busy or not, and after how many hops."""
        return self.stream("errors")

    def members(self) -> random.Random:
        """The random part of group member ids (Kafka's UUID), which orders members."""
        return self.stream("members")

    def stalls(self) -> random.Random:
        """Which ``stall`` faults also hold the worker's group coordinator requests."""
        return self.stream("stalls")

    def client_faults(self) -> random.Random:
        """Which transactional producers' senders die on a lost coordinator lookup (aiokafka#1151)."""
        return self.stream("client-faults")

    def refusals(self) -> random.Random:
        """Whether a refused commit's rejoin reaches the engine before the refusal (aiokafka)."""
        return self.stream("refusals")

    def admin(self) -> random.Random:
        """Which known broker each admin metadata request goes to (aiokafka picks at random)."""
        return self.stream("admin")

    def stops(self) -> random.Random:
        """Whether a consumer stopping mid-rebalance lets it run to its listener (as aiokafka)."""
        return self.stream("stops")

    def app(self) -> random.Random:
        """The sandbox's ``random`` (what the run's own code may draw, beside the global one)."""
        return random.Random(self.seed)

    def entropy(self) -> random.Random:
        """Where ``uuid4``, ``os.urandom`` and an unseeded ``Random()`` draw from under the sandbox."""
        return random.Random(f"sim.sandbox.entropy:{self.seed}")
