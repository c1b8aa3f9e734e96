"""The sim driver's admin client: topics created at the controller, metadata from any broker.

A CreateTopics request that a drop fault loses (its connection reset, or held past the
request timeout) fails as aiokafka's does, and is asked again by the engine
(``detstream.transport.any_broker.to_the_controller``).

aiokafka's admin sends a metadata request (describe a topic, list topics) to
a random known broker and raises ``NodeNotReadyError`` at once when that one
is down. A crashed broker stays known until the controller notices
(``Brokers.registered``), so for a while a share of those requests fail.
While some known broker is down the sim admin draws its broker from the
run's ``admin`` stream (``SeedStreams.admin``) and fails the same way; the
retry is the engine's (``detstream.transport.any_broker``, shared with the
production driver). Counter and trace line ``admin-node-not-ready``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import TypeVar

from detstream.transport.any_broker import to_any_broker, to_the_controller

from .brokers import broker_name
from .cluster import SimCluster
from .kafka_errors import ConnectionClosedError, NodeNotReadyError, RequestTimedOutError
from .network import Link

T = TypeVar("T")


class SimAdmin:
    """Topic administration over a SimCluster, on ``link``."""

    def __init__(self, cluster: SimCluster, name: str, link: Link | None = None) -> None:
        self._cluster = cluster
        self._name = name
        self._link = link or Link(name)

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> bool:
        """Create ``name`` at the controller; asked again while the request is lost (the engine's
        ``to_the_controller``, as in production: aiokafka raises a connection closed
        mid-request or a request timeout). A retry after a lost response finds the topic
        there: False, as Kafka says."""
        return await to_the_controller(
            functools.partial(
                self._cluster.network.request, self._link, "create-topics",
                lambda: self._cluster.create_topic(name, partitions, config, by=self._name),
            ),
            unreachable=(ConnectionClosedError, RequestTimedOutError),
            timeout=self._cluster.config.request_timeout, what=f"create-topics {name}",
        )

    async def partitions_for(self, name: str) -> int | None:
        return await self._metadata(
            "describe-topic", lambda: self._cluster.partitions_for(name, by=self._name)
        )

    async def list_topics(self) -> set[str]:
        """Every topic in the cluster (a metadata request; the sim has no internal topics)."""
        return await self._metadata("list-topics", lambda: set(self._cluster.topics))

    async def _metadata(self, what: str, answer: Callable[[], T]) -> T:
        """A metadata request to a random known broker, asked again while it is down."""
        return await to_any_broker(
            functools.partial(self._ask_a_known_broker, what, answer),
            unreachable=(NodeNotReadyError,),
            timeout=self._cluster.config.request_timeout, what=what,
        )

    async def _ask_a_known_broker(self, what: str, answer: Callable[[], T]) -> T:
        broker = self._pick_broker()
        if broker is not None and not self._cluster.brokers.up[broker]:
            self._cluster.stats["admin-node-not-ready"] += 1
            self._cluster.trace.record(
                self._name, "admin-node-not-ready", broker=broker_name(broker), request=what
            )
            raise NodeNotReadyError(f"{what}: {broker_name(broker)} is not ready (down)")
        return answer()

    def _pick_broker(self) -> int | None:
        """The broker a request goes to; None while every known broker is up.

        Then any pick answers alike, and nothing is drawn: a run in which no
        admin request meets a down broker keeps the trace it had.
        """
        picks = self._cluster.admin_picks
        brokers = self._cluster.brokers
        known = [broker for broker in sorted(brokers.up) if brokers.registered(broker)]
        if picks is None or all(brokers.up[broker] for broker in known):
            return None
        return picks.choice(known)
