"""A run's simulated cluster on the wire: its brokers' addresses, and the apps' bootstrap.

``detstream sim --driver aiokafka`` builds one per run: every simulated
broker listens at ``b{n}.sim:9092``, each app's own broker URL
(``kafka://localhost:9092`` in the examples) reaches broker 1, and each
worker's App gets the production transport its URL names, as ``detstream
worker`` would. A crash severs the connections the dead process opened.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from detstream._types import TP
from detstream.transport import aiokafka_logs, driver_class
from sim.cluster import SimCluster
from sim.history import Write
from sim.network import LinkConditions

from .broker import WireBroker, serve_cluster
from .connection import install, sever
from .network import WireNetwork

__all__ = ["WireCluster", "bootstrap_addresses"]

DEFAULT_URL = "kafka://localhost:9092"


def bootstrap_addresses(url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each server in a broker URL (``kafka://h1:9092;h2``, port 9092 by default)."""
    _, _, servers = url.partition("://")
    found = []
    for server in servers.replace(";", ",").split(","):
        host, _, port = server.strip().partition(":")
        if host:
            found.append((host, int(port) if port else 9092))
    return found


class WireCluster:
    """The simulated brokers served on the virtual loop's wire, for the production driver."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.loop = asyncio.get_running_loop()
        self.loop.hash_by_creation_order()  # type: ignore[attr-defined]  # aiokafka's sets
        self.loop.set_exception_handler(_quiet_about_abandoned_clients)
        #: the worker hosts' network faults, as their connections meet them.
        self.network = WireNetwork(cluster)
        self.brokers: list[WireBroker] = serve_cluster(self.loop, cluster, [], self.network)
        #: aiokafka's repeated errors rate-limited in virtual time (per run: the filter
        #: starts afresh on each run's loop), the expected ones of a start-up at DEBUG.
        self.logs = aiokafka_logs.install()

    def finish(self) -> None:
        """The run is over: summarise aiokafka's log lines held back since their last summary."""
        self.logs.flush()

    def cut_from_group(self, actor: str, until: float) -> None:
        """A stall (zombie): ``actor``'s group requests wait until ``until``, the rest go on."""
        self.network.cut_from_group(actor, until)

    def host(self, actor: str, conditions: LinkConditions) -> None:
        """A worker process of ``actor`` runs on a host with these network conditions."""
        self.network.host(actor, conditions)

    def transport_for(self, app: Any) -> Any:
        """The production transport of ``app``'s broker URL (a ``sim://`` app gets the default)."""
        url = str(app.conf.broker_url)
        if url.partition("://")[0].lower() not in ("kafka", "aiokafka"):
            url = DEFAULT_URL
        for address in bootstrap_addresses(url):
            if address not in self.loop.simulated_endpoints:  # type: ignore[attr-defined]
                install(self.loop, address, functools.partial(_same, self.brokers[0]))
        transport = driver_class(url)(url, app=app)
        transport.send_observer = WireHistory(self.cluster, app.client_name)
        return transport

    def sever(self, owner: str) -> int:
        """A process died: its connections close (requests already sent still arrive)."""
        return sever(self.loop, owner)


def _quiet_about_abandoned_clients(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's exception handler under the wire: aiokafka's "Unclosed AIOKafkaConsumer".

    A killed worker process (kill -9) never closes its clients: the sim drops
    them with it, and aiokafka reports each one when it is collected, long
    after the run, as if it had leaked. Everything else goes to the default.
    """
    if str(context.get("message", "")).startswith("Unclosed AIOKafka"):
        return
    loop.default_exception_handler(context)


def _same(broker: WireBroker) -> WireBroker:
    return broker


class WireHistory:
    """The write history of one App's production driver (``SendObserver``): the final read's.

    The sim driver's producer records each send, its offsets and its refusal
    in the cluster's ``WriteHistory``; under the wire, aiokafka sends, so the
    driver tells this observer instead. ``sent`` runs in the sender's context,
    so the write's origin is the event being processed, as with the sim driver.
    """

    def __init__(self, cluster: SimCluster, client: str) -> None:
        self.cluster = cluster
        self.label = cluster.history.new_producer(client)

    def sent(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, *,
        idempotent: bool, transactional: bool,
    ) -> Write:
        return self.cluster.history.sent(
            self.label, TP(topic, partition), key, value, idempotent=idempotent, transactional=transactional
        )

    def delivered(self, token: object, offset: int) -> None:
        """The broker acknowledged the record: acked, as the sim driver's producer marks it (the
        final read holds acknowledged writes to be readable, and counts an event's acked
        write as its output)."""
        assert isinstance(token, Write)
        token.acked = True
        if offset not in token.offsets:
            self.cluster.history.appended(token, offset)

    def refused(self, token: object, error: BaseException) -> None:
        assert isinstance(token, Write)
        token.refused = type(error).__name__
