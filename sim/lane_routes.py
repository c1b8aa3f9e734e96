"""Which lane of the run's page each trace step belongs to.

The page (``sim.run_page``) draws one lane per worker process, per broker,
for the consumer group, per client and one for the cluster's background
work. A step's actor does not always say whose it is: the group
coordinator records a member's commit under the group's id, the
transaction coordinator records under the transactional id (which a twin's
zombie and its replacement share), the controller names brokers in its
fields, and the fault plan names its target. ``LaneRouter`` follows the
trace in order to resolve those.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from .faults import Fault
from .group import member_client
from .trace import TraceEvent

#: a worker process's actor: its slot ``wN``, primed (``wN'``) for a twin's replacement.
WORKER = re.compile(r"^w\d+'*$")
#: a transactional id ends in its worker's slot (``{app id}-wN``).
_TXN_SLOT = re.compile(r"-(w\d+)$")
#: steps the group coordinator records, under the group's id.
GROUP_KINDS = frozenset({
    "member-join", "member-leave", "member-expired", "rebalance", "assign", "commit",
    "offsets-accepted", "commit-rejected", "member-replaced", "instance-fenced",
})
#: group steps that stay on the group's lane even though they name a member.
_GROUP_OWN = frozenset({"rebalance", "assign"})
#: steps the transaction coordinator records, under the transactional id.
TXN_KINDS = frozenset({"txn-init", "txn-fenced", "txn-begin", "txn-commit", "txn-abort"})
#: actors of the cluster's own background work, drawn on one lane.
_CLUSTER_ACTORS = frozenset({"cleaner", "operator"})


@dataclass(frozen=True)
class Route:
    """Where a step is drawn: its lanes as (name, role), and the planned fault of a fault line."""

    lanes: tuple[tuple[str, str], ...]
    fault: Fault | None = None


def role_of(name: str) -> str:
    """``worker`` or ``broker`` for a fault's target (``wN``, ``bN``)."""
    return "broker" if re.match(r"^b\d+$", name) else "worker"


class LaneRouter:
    """Routes each step of one trace, in order, to its lanes.

    ``faults`` are those that happened (``SimReport.applied``), in the order
    they were applied: a fault line names only the kind and the target.
    """

    def __init__(self, faults: Iterable[Fault]) -> None:
        #: the faults that happened per (kind, target), in order: each ``fault`` line
        #: takes the next one (for its downtime and description).
        self._applied: dict[tuple[str, str], deque[Fault]] = {}
        for fault in faults:
            self._applied.setdefault((fault.kind, fault.worker), deque()).append(fault)
        #: slot -> the actor of its newest process (a twin's replacement is ``wN'``).
        self._newest: dict[str, str] = {}
        #: (transactional id, epoch) -> the actor whose producer registered that epoch.
        self._epochs: dict[tuple[str, int], str] = {}

    def route(self, event: TraceEvent) -> Route:
        actor, kind, fields = event.actor, event.kind, event.fields
        if WORKER.match(actor):
            if kind == "start":
                self._newest[actor.rstrip("'")] = actor
            return Route(((actor, "worker"),))
        if kind in GROUP_KINDS:
            return Route((self._group_lane(actor, kind, fields.get("member")),))
        if kind in TXN_KINDS:
            return Route((self._txn_lane(actor, kind, fields.get("epoch")),))
        if actor == "controller":
            return Route(self._broker_lanes(fields))
        if actor == "faults":
            target = str(fields.get("worker"))
            return Route(((target, role_of(target)),), self._applied_fault(kind, fields, target))
        if actor in _CLUSTER_ACTORS:
            return Route((("cluster", "cluster"),))
        return Route(((actor, "client"),))

    def _group_lane(self, group: str, kind: str, member: object) -> tuple[str, str]:
        """A member's step on its worker's lane; the group's own (rebalances) on the group's."""
        if kind not in _GROUP_OWN and isinstance(member, str):
            worker = member_client(member)
            if WORKER.match(worker):
                return (worker, "worker")
        return (group, "group")

    def _txn_lane(self, txn_id: str, kind: str, epoch: object) -> tuple[str, str]:
        """The worker process whose producer holds ``epoch`` of ``txn_id``.

        A twin's zombie and its replacement share the transactional id; the
        replacement's ``txn-init`` bumps the epoch, so the epoch tells whose
        step it is (the zombie's transaction aborted as fenced is the zombie's).
        """
        match = _TXN_SLOT.search(txn_id)
        if match is None:
            return (txn_id, "client")
        slot = match.group(1)
        newest = self._newest.get(slot, slot)
        if not isinstance(epoch, int):
            return (newest, "worker")
        if kind == "txn-init":
            self._epochs[(txn_id, epoch)] = newest
        return (self._epochs.get((txn_id, epoch), newest), "worker")

    @staticmethod
    def _broker_lanes(fields: dict[str, object]) -> tuple[tuple[str, str], ...]:
        """A broker's crash or restart on its lane; a leader change on the new and the old leader's."""
        names = [fields.get("broker"), fields.get("leader"), fields.get("previous")]
        found = [str(name) for name in names if isinstance(name, str) and name != "-"]
        return tuple((name, "broker") for name in dict.fromkeys(found)) or (("cluster", "cluster"),)

    def _applied_fault(self, kind: str, fields: dict[str, object], target: str) -> Fault | None:
        """The fault a ``fault`` line announces (a skipped one has none: it did nothing)."""
        if kind != "fault":
            return None
        queue = self._applied.get((str(fields.get("fault")), target))
        return queue.popleft() if queue else None
