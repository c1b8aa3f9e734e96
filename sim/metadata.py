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

from .kafka_errors import ConnectionClosedError, RequestTimedOutError, UnknownTopicOrPartitionError

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
        #: topics whose metadata a producer asked for and got (``learn``). Empty at start:
        #: aiokafka's bootstrap asks for no topic (an empty list, which Metadata v1 and later
        #: answer with none), and its ``send`` waits for a topic's metadata the first time.
        self.topics: set[str] = set()

    async def learn(self, topic: str) -> None:
        """Ask for ``topic``'s metadata until a broker answers (aiokafka's ``_wait_on_metadata``).

        One request after the other, ``retry_backoff`` between them: a host cut
        off holds them for as long as the cut lasts. Past the request timeout,
        ``UnknownTopicOrPartitionError``, as aiokafka's. Counted as
        ``send-waited-metadata`` when a fault held the wait.
        """
        network = self._cluster.network
        loop = asyncio.get_running_loop()
        began = loop.time()
        while True:
            try:
                await network.request(self._link, "metadata", _nothing)
                break
            except (RequestTimedOutError, ConnectionClosedError):
                if loop.time() - began > network.request_timeout:
                    raise UnknownTopicOrPartitionError(
                        f"no metadata for topic {topic!r} in {network.request_timeout:g}s"
                    ) from None
                await asyncio.sleep(self._cluster.config.retry_backoff)
        if loop.time() - began > 2 * network.max_latency:
            self._cluster.stats["send-waited-metadata"] += 1  # held: a fault reached the wait
        self.topics.add(topic)

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


def _nothing() -> None:
    """A metadata request at the broker: the answer is the cluster's state, read at the client."""
