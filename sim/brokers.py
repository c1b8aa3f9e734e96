"""Brokers and partition leadership, with a controller that fails leaders over.

The cluster has ``brokers`` brokers (``b1`` ... ``bN``). Each partition has
``replication_factor`` replicas placed deterministically (from the crc32 of
the topic name plus the partition number, never Python's ``hash``), and its
*leader* is the first live replica in that order. Only the leader serves the
partition's produce and fetch requests; the group and transaction
coordinators live on the leader of a partition of ``__consumer_offsets`` and
``__transaction_state`` (crc32 of the group or transactional id mod 50), as
in Kafka.

The logs themselves are kept once, in ``SimCluster``: every replica is in
sync (``acks=all``), so a new leader has every acknowledged record and a
failover loses nothing. What a failover does change is who answers:

- ``crash``: the broker is gone at once. Its partitions keep the dead
  broker as leader until the controller notices, ``session_timeout``
  virtual seconds later (Kafka's ``broker.session.timeout.ms``); requests
  sent to it meanwhile fail (``BrokerNotAvailableError``). Then each
  partition fails over to its next live replica, or goes offline
  (``LeaderNotAvailableError``) if none is alive.
- ``shutdown`` (a controlled shutdown): leadership moves off the broker
  first, then it stops; clients with old metadata get
  ``NotLeaderForPartitionError`` or ``BrokerNotAvailableError`` and refresh.
- ``move_leaders``: leadership of the broker's partitions moves to other
  live replicas (a preferred-leader election or reassignment).
- ``restart``: the broker comes back; offline partitions it replicates elect
  it. Partitions that failed over stay with their new leaders.

Trace lines, actor ``controller``: ``broker-crash``, ``broker-shutdown``,
``broker-restart`` (field ``broker``) and ``leader tp= leader= previous=
reason=`` for every change of a partition's leader.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import Counter
from collections.abc import Callable, Iterable

from detstream._types import TP

from .kafka_errors import (
    BrokerNotAvailableError,
    CoordinatorNotAvailableError,
    LeaderNotAvailableError,
    NotCoordinatorError,
    NotLeaderForPartitionError,
)
from .trace import Trace

#: partitions of Kafka's internal coordinator topics (``offsets.topic.num.partitions``).
COORDINATOR_PARTITIONS = 50
GROUP_COORDINATOR_TOPIC = "__consumer_offsets"
TXN_COORDINATOR_TOPIC = "__transaction_state"


def coordinator_partition(topic: str, key: str) -> TP:
    """The internal partition whose leader coordinates ``key`` (a group or transactional id)."""
    return TP(topic, zlib.crc32(key.encode()) % COORDINATOR_PARTITIONS)


def broker_name(broker: int | None) -> str:
    return "-" if broker is None else f"b{broker}"


def parse_broker(name: str) -> int | None:
    """``"b2"`` -> 2; None if ``name`` does not name a broker."""
    if name.startswith("b") and name[1:].isdigit():
        return int(name[1:])
    return None


class Brokers:
    """Which brokers are up, and which one leads each partition."""

    def __init__(
        self,
        trace: Trace,
        *,
        count: int,
        replication_factor: int,
        session_timeout: float,
        stats: Counter[str],
        on_leader_change: Callable[[TP], None],
    ) -> None:
        if count < 1:
            raise ValueError(f"a cluster needs at least one broker, got {count}")
        self.trace = trace
        self.count = count
        self.replication_factor = max(1, min(replication_factor, count))
        self.session_timeout = session_timeout
        self._stats = stats
        self._on_leader_change = on_leader_change
        self.up: dict[int, bool] = {b: True for b in range(1, count + 1)}
        #: no broker ever stopped and no leader ever moved: every client's metadata is right.
        self.undisturbed = True
        self._leaders: dict[TP, int | None] = {}
        #: brokers that crashed and whose partitions the controller has not failed over yet.
        self._unnoticed: dict[int, asyncio.TimerHandle] = {}

    # -- placement and lookup ----------------------------------------------------
    def replicas(self, tp: TP) -> tuple[int, ...]:
        """The partition's replicas, preferred leader first (deterministic)."""
        start = zlib.crc32(tp.topic.encode()) + tp.partition
        return tuple(1 + (start + i) % self.count for i in range(self.replication_factor))

    def add_partition(self, tp: TP) -> None:
        """Elect the first leader of a new partition."""
        if tp not in self._leaders:
            self._leaders[tp] = self._first_live(self.replicas(tp))

    def leader(self, tp: TP) -> int | None:
        """The partition's current leader (maybe a crashed broker the controller has not noticed)."""
        try:
            return self._leaders[tp]
        except KeyError:
            self.add_partition(tp)
            return self._leaders[tp]

    def serving(self, tp: TP, broker: int | None) -> bool:
        """Whether ``broker`` would answer requests for ``tp`` now (no exception: the fetch path)."""
        if self.undisturbed:
            return True
        return broker is not None and self.up[broker] and self.leader(tp) == broker

    def serve(self, tp: TP, broker: int | None) -> None:
        """Raise what a client sees when it sends a request for ``tp`` to ``broker``."""
        if broker is None:
            raise LeaderNotAvailableError(f"{tp} has no leader")
        if not self.up[broker]:
            raise BrokerNotAvailableError(f"{broker_name(broker)} is down")
        if self.leader(tp) != broker:
            raise NotLeaderForPartitionError(f"{broker_name(broker)} does not lead {tp}")

    def serve_coordinator(self, tp: TP, broker: int | None) -> None:
        """As ``serve``, with the errors of a coordinator request."""
        if broker is None:
            raise CoordinatorNotAvailableError(f"the coordinator partition {tp} has no leader")
        if not self.up[broker]:
            raise CoordinatorNotAvailableError(f"coordinator {broker_name(broker)} is down")
        if self.leader(tp) != broker:
            raise NotCoordinatorError(f"{broker_name(broker)} no longer coordinates ({tp})")

    def registered(self, broker: int) -> bool:
        """Whether the controller still counts ``broker`` as alive (up, or crashed unnoticed).

        What metadata shows: a crashed broker stays listed, and stays the
        leader of its partitions, until its session with the controller expires.
        """
        return self.up[broker] or broker in self._unnoticed

    # -- faults -----------------------------------------------------------------------
    def crash(self, broker: int) -> None:
        """Kill the broker; the controller fails its partitions over ``session_timeout`` later."""
        self.undisturbed = False
        self.up[broker] = False
        self.trace.record("controller", "broker-crash", broker=broker_name(broker))
        loop = asyncio.get_running_loop()
        self._unnoticed[broker] = loop.call_later(self.session_timeout, self._fail_over, broker)

    def shutdown(self, broker: int) -> None:
        """Controlled shutdown: move leadership off the broker, then stop it."""
        self.undisturbed = False
        self.trace.record("controller", "broker-shutdown", broker=broker_name(broker))
        self._move_off(broker, reason="shutdown", offline_if_alone=True)
        self.up[broker] = False

    def restart(self, broker: int) -> None:
        """Bring the broker back; offline partitions it replicates elect it."""
        self.up[broker] = True
        self.trace.record("controller", "broker-restart", broker=broker_name(broker))
        pending = self._unnoticed.pop(broker, None)
        if pending is not None:  # it re-registers before the controller noticed: fail over now
            pending.cancel()
            self._fail_over(broker, restarted=True)
        for tp in sorted(tp for tp, leader in self._leaders.items() if leader is None):
            if broker in self.replicas(tp):
                self._set_leader(tp, broker, reason="restart")

    def move_leaders(self, broker: int) -> int:
        """Move leadership of the broker's partitions to other live replicas; how many moved."""
        return self._move_off(broker, reason="move", offline_if_alone=False)

    # -- internals --------------------------------------------------------------------
    def _fail_over(self, broker: int, restarted: bool = False) -> None:
        self._unnoticed.pop(broker, None)
        moved = self._move_off(broker, reason="failover", offline_if_alone=not restarted)
        if moved:
            self._stats["broker-failover"] += 1

    def _move_off(self, broker: int, *, reason: str, offline_if_alone: bool) -> int:
        moved = 0
        for tp in sorted(tp for tp, leader in self._leaders.items() if leader == broker):
            successor = self._first_live(r for r in self._after(tp, broker) if r != broker)
            if successor is None and not offline_if_alone:
                continue  # no other live replica: leadership stays
            self._set_leader(tp, successor, reason=reason)
            moved += 1
        return moved

    def _after(self, tp: TP, broker: int) -> list[int]:
        """The partition's replicas in order, starting after ``broker``."""
        replicas = self.replicas(tp)
        index = replicas.index(broker) if broker in replicas else -1
        return list(replicas[index + 1 :] + replicas[: index + 1])

    def _first_live(self, candidates: Iterable[int]) -> int | None:
        return next((broker for broker in candidates if self.up[broker]), None)

    def _set_leader(self, tp: TP, leader: int | None, *, reason: str) -> None:
        self.undisturbed = False
        previous = self._leaders.get(tp)
        self._leaders[tp] = leader
        self.trace.record(
            "controller", "leader", tp=tp, leader=broker_name(leader),
            previous=broker_name(previous), reason=reason,
        )
        self._on_leader_change(tp)
