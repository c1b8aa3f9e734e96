"""What one client believes about the cluster: which broker leads each partition.

A Kafka client sends each request to the broker its metadata names, and
learns that its metadata is stale only from an error (``NOT_LEADER``,
``NOT_COORDINATOR``, a dead connection). It then waits ``retry_backoff``
(aiokafka's ``retry_backoff_ms``, 100 ms), sends a metadata request (a round
trip, which a drop fault may lose too) and tries again. ``ClientMetadata`` is
that snapshot; coordinators are the leaders of their internal partitions
(``sim.brokers.coordinator_partition``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from detstream._types import TP

if TYPE_CHECKING:
    from .cluster import SimCluster
    from .network import Link


class ClientMetadata:
    """A client's snapshot of partition leaders; first lookups come with the topic's metadata."""

    def __init__(self, cluster: SimCluster, link: Link) -> None:
        self._cluster = cluster
        self._link = link
        self._leaders: dict[TP, int | None] = {}
        #: how many times a refresh emptied the snapshot.
        self.generation = 0

    @property
    def known(self) -> dict[TP, int | None]:
        """The leaders this client knows now (read-only by convention; a refresh empties it)."""
        return self._leaders

    def leader(self, tp: TP) -> int | None:
        """The broker this client sends ``tp``'s requests to."""
        try:
            return self._leaders[tp]
        except KeyError:
            leader = self._leaders[tp] = self._cluster.brokers.leader(tp)
            return leader

    async def refresh(self) -> None:
        """After a retriable error: back off, then fetch fresh metadata (one round trip).

        Raises ``RequestTimedOutError`` if a drop fault lost the metadata
        request; the caller's retry loop goes round again.
        """
        await asyncio.sleep(self._cluster.config.retry_backoff)
        await self._cluster.network.request(self._link, "metadata", self._forget)

    def _forget(self) -> None:
        """At the broker: the metadata response replaces everything this client knew."""
        self._leaders.clear()
        self.generation += 1
