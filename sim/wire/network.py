"""What a worker host's network faults do to its connections on the wire (``--driver aiokafka``).

The sim driver's requests meet ``delay`` and ``drop`` faults one request at a
time (``sim.network``). A TCP connection is a stream: nothing is lost on it,
bytes wait. So on the wire a fault acts on each message (a request on its
way in, a response on its way back) as TCP would carry it:

- ``delay``: the message takes the fault's extra latency;
- ``drop`` with loss 1 (a partition of the host): the message waits until
  the window heals; a client whose request times out meanwhile gives up on
  the connection itself (aiokafka closes it and reconnects), and a
  connection closed as an abort (the Kafka driver's with requests in
  flight, and a dead process's) discards what it held
  (``sim.wire.connection``);
- ``drop`` with loss below 1: each time the message is lost, TCP sends it
  again after a retransmission timeout;
- and for a share of lost messages (``ClusterConfig.reset_share``, as the
  sim driver) the connection is reset instead: the client sees it closed
  (aiokafka's ``KafkaConnectionError``), with the request applied or not,
  and retries on a new connection.

Hosts are found by the owner of the connection (``sim.loop.task_owner``:
``{actor}#{incarnation}``): the conditions belong to the host, so they
outlive a crash of its process, as in the sim driver.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from sim.network import RETRANSMIT, Link, LinkConditions

if TYPE_CHECKING:
    from sim.cluster import SimCluster

__all__ = ["RESET", "WireNetwork"]

#: ``WireNetwork.delay``'s answer when the connection is reset instead.
RESET = -1.0
#: the APIs a consumer sends its group coordinator: OffsetCommit, OffsetFetch, JoinGroup,
#: Heartbeat, LeaveGroup, SyncGroup, TxnOffsetCommit.
GROUP_APIS = frozenset({8, 9, 11, 12, 13, 14, 28})


def _api_key(message: bytes) -> int:
    return int.from_bytes(message[:2], "big", signed=True)


def actor_of(owner: str) -> str:
    """The worker a connection owner (``{actor}#{incarnation}``) belongs to."""
    return owner.rpartition("#")[0] or owner


class WireNetwork:
    """The host network faults of one run, as its connections meet them."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        #: actor -> its host's conditions (registered when a worker's process starts).
        self.hosts: dict[str, LinkConditions] = {}
        #: actor -> until when its group requests are held (a ``stall`` or ``twin`` zombie).
        self.group_cuts: dict[str, float] = {}

    def cut_from_group(self, actor: str, until: float) -> None:
        self.group_cuts[actor] = until

    def group_held(self, owner: str | None, message: bytes) -> float:
        """Seconds a group request (join, sync, heartbeat, leave, offsets) of a stalled
        worker waits: the process lost touch with its group coordinator, not with the
        partition leaders (aiokafka talks to the coordinator over connections of its own)."""
        if owner is None or not self.group_cuts or _api_key(message) not in GROUP_APIS:
            return 0.0
        until = self.group_cuts.get(actor_of(owner), 0.0)
        return max(0.0, until - asyncio.get_running_loop().time())

    def host(self, actor: str, conditions: LinkConditions) -> None:
        self.hosts[actor] = conditions

    def conditions_of(self, owner: str | None) -> LinkConditions | None:
        if owner is None:
            return None
        return self.hosts.get(actor_of(owner))

    def delay(self, owner: str | None, what: str) -> float:
        """Seconds the host's faults add to one message sent now, or ``RESET``."""
        conditions = self.conditions_of(owner)
        if conditions is None:
            return 0.0
        network = self.cluster.network
        now = asyncio.get_running_loop().time()
        extra = conditions.extra(now)
        link = Link(owner or "", conditions)
        while conditions.dropping(now + extra) and network.loses(link, now + extra):
            if network.chance(self.cluster.config.reset_share):
                network.lost(link, what, applied=what == "response", reset=True)
                return RESET
            if conditions.loss >= 1.0:
                extra = conditions.drop_until - now  # held until the partition heals
            else:
                extra += network.uniform(*RETRANSMIT)
        return extra
