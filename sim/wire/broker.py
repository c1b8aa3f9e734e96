"""What a simulated broker answers on the Kafka wire, served from the ``SimCluster``.

One ``WireBroker`` per simulated broker (``b1``, ``b2``, ...), at
``b{n}.sim:9092``; the bootstrap address the app names (``localhost:9092``
by default) reaches broker 1. Each request is decoded with aiokafka's struct
for its API and version, handled against the cluster's state (topics,
partition leaders, live brokers) and answered in the same version.

Served so far (``SERVED``, advertised by ApiVersions): ApiVersions v0 and
Metadata v5. Every other API is refused by closing the connection, as a
broker does with a request it cannot parse; the rest of issue 12's list
(Produce, Fetch, groups, transactions, offsets, admin) comes in later steps.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

from aiokafka.protocol.admin import ApiVersionResponse_v0
from aiokafka.protocol.metadata import MetadataResponse_v5

from detstream._types import TP

from .codec import Decoded, decode_request, encode_response
from .connection import install

if TYPE_CHECKING:
    from sim.cluster import SimCluster

__all__ = ["PORT", "SERVED", "WireBroker", "serve_cluster"]

logger = logging.getLogger(__name__)

PORT = 9092
#: api key -> (min version, max version) served, as ApiVersions advertises them.
SERVED: dict[int, tuple[int, int]] = {
    18: (0, 0),  # ApiVersions
    3: (5, 5),  # Metadata
}
CLUSTER_ID = "detstream-sim"
NO_ERROR, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE = 0, 3, 5


def host_of(broker: int) -> str:
    return f"b{broker}.sim"


class WireBroker:
    """Simulated broker ``b{number}`` answering Kafka requests."""

    def __init__(self, cluster: SimCluster, number: int) -> None:
        self.cluster = cluster
        self.number = number
        self.name = f"b{number}"

    def latency(self) -> float:
        return self.cluster.latency()

    def serve(self, message: bytes) -> bytes | None:
        try:
            request = decode_request(message)
        except (ValueError, EOFError) as exc:
            logger.warning("%s: closing a connection over a request it cannot read: %s", self.name, exc)
            return None
        handler = _HANDLERS.get(request.api_key)
        low, high = SERVED.get(request.api_key, (0, -1))
        if handler is None or not low <= request.api_version <= high:
            logger.warning("%s: api key %d version %d is not served yet: closing the connection",
                           self.name, request.api_key, request.api_version)
            return None
        return encode_response(request, handler(self, request))

    # -- APIs ----------------------------------------------------------------------------
    def api_versions(self, request: Decoded) -> Any:
        versions = [(key, low, high) for key, (low, high) in sorted(SERVED.items())]
        return ApiVersionResponse_v0(NO_ERROR, versions)

    def metadata(self, request: Decoded) -> Any:
        cluster = self.cluster
        brokers = cluster.brokers
        live = [b for b in sorted(brokers.up) if brokers.registered(b)]
        wanted = request.body.topics
        names = sorted(cluster.topics) if wanted is None else list(wanted)
        topics = [self._topic_metadata(name) for name in names]
        return MetadataResponse_v5(
            0, [(b, host_of(b), PORT, None) for b in live], CLUSTER_ID, live[0] if live else -1, topics,
        )

    def _topic_metadata(self, name: str) -> tuple[Any, ...]:
        state = self.cluster.topics.get(name)
        if state is None:
            return (UNKNOWN_TOPIC_OR_PARTITION, name, False, [])
        brokers = self.cluster.brokers
        partitions = []
        for partition in range(len(state.logs)):
            tp = TP(name, partition)
            leader = brokers.leader(tp)
            replicas = list(brokers.replicas(tp))
            isr = [b for b in replicas if brokers.registered(b)]
            offline = [b for b in replicas if not brokers.registered(b)]
            error = NO_ERROR if leader is not None and brokers.registered(leader) else LEADER_NOT_AVAILABLE
            partitions.append((error, partition, leader if leader is not None else -1, replicas, isr, offline))
        return (NO_ERROR, name, False, partitions)


_HANDLERS = {18: WireBroker.api_versions, 3: WireBroker.metadata}


def serve_cluster(loop: Any, cluster: SimCluster, bootstrap: list[tuple[str, int]]) -> list[WireBroker]:
    """Put the cluster's brokers on ``loop``'s wire, and ``bootstrap`` addresses on broker 1."""
    wire = [WireBroker(cluster, number) for number in range(1, cluster.brokers.count + 1)]
    for broker in wire:
        install(loop, (host_of(broker.number), PORT), functools.partial(_same, broker))
    for address in bootstrap:
        install(loop, address, functools.partial(_same, wire[0]))
    return wire


def _same(broker: WireBroker) -> WireBroker:
    return broker
