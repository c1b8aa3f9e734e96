"""The consumer-group coordinator, with the shape of Kafka's classic protocol.

Members *join* (the coordinator waits for every known member, or the rebalance
timeout), the first to join is the *leader* and computes the assignment, every
member *syncs* to receive its share, and members *heartbeat*. A new generation
starts at each rebalance; commits from an older generation are fenced. A member
that stops heartbeating for ``session_timeout`` is expelled.

The coordinator lives on a broker (``sim.brokers``); clients find it and
retry while it is down. Its state is kept in ``__consumer_offsets`` in Kafka,
so a failover keeps members, generation and committed offsets; the new
coordinator gives every member a fresh session (``coordinator_moved``).
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from detstream import mutants
from detstream._types import TP
from detstream.errors import CommitFailedError

from .trace import Trace

#: the coordinator takes offsets from anyone: an expelled member, an older generation.
COMMIT_FENCING_SKIPPED = mutants.register(
    "commit-fencing-skipped",
    "the group coordinator accepts offset commits without checking membership or generation",
)


def member_client(member_id: str) -> str:
    """The client id (the simulated worker's name) in a member id ``[tag:]client-n``."""
    return member_id.rpartition(":")[2].rpartition("-")[0]


class GroupProtocolError(Exception):
    """Base of the errors a member must react to by rejoining."""


class RebalanceInProgressError(GroupProtocolError):
    """REBALANCE_IN_PROGRESS: the member must rejoin."""


class IllegalGenerationError(GroupProtocolError):
    """ILLEGAL_GENERATION: the member's generation is stale."""


class UnknownMemberIdError(GroupProtocolError):
    """UNKNOWN_MEMBER_ID: the member was expelled; rejoin without an id."""


@dataclass(frozen=True)
class JoinResult:
    generation: int
    member_id: str
    leader_id: str
    #: subscriptions of every member, given to the leader only.
    members: dict[str, frozenset[str]]
    #: the assignor ``user_data`` of every member's subscription, given to the leader only.
    user_data: dict[str, bytes] = field(default_factory=dict)


@dataclass
class Member:
    member_id: str
    subscription: frozenset[str]
    session_timeout: float
    rebalance_timeout: float
    expiry: asyncio.TimerHandle | None = None
    #: opaque assignor data of the subscription (Kafka's metadata ``user_data``).
    user_data: bytes = b""


@dataclass
class _Round:
    """One rebalance round: who joined, and the futures waiting for its outcome."""

    initial: bool
    joined: dict[str, asyncio.Future[JoinResult]] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


class GroupCoordinator:
    """Coordinates one consumer group."""

    def __init__(
        self, group_id: str, trace: Trace, *, initial_rebalance_delay: float,
        stats: Counter[str] | None = None, members: random.Random | None = None,
    ) -> None:
        self.group_id = group_id
        #: draws the random part of member ids, as Kafka's UUID (None: none, ``w1-1``).
        self._member_rng = members
        self.trace = trace
        self._stats = stats if stats is not None else Counter()
        self.initial_rebalance_delay = initial_rebalance_delay
        self.members: dict[str, Member] = {}
        self.generation = 0
        self.leader_id: str | None = None
        self.state = "empty"
        self.assignments: dict[str, set[TP]] = {}
        #: opaque per-member assignment data from the leader (Kafka's assignment ``user_data``).
        self.user_data: dict[str, bytes] = {}
        self.committed: dict[TP, int] = {}
        self._round: _Round | None = None
        self._sync_waiters: dict[str, asyncio.Future[set[TP]]] = {}
        self._member_seq = 0
        #: member ids handed out with MEMBER_ID_REQUIRED, not joined yet (wire, JoinGroup v4+).
        self._reserved: set[str] = set()

    # -- join / sync ------------------------------------------------------
    def reserve_member_id(self, client_id: str) -> str:
        """A member id for a client that must join again with it (JoinGroup v4+'s
        MEMBER_ID_REQUIRED): it becomes a member when it does."""
        member_id = self._new_member_id(client_id)
        self._reserved.add(member_id)
        return member_id

    def _new_member_id(self, client_id: str) -> str:
        """``{client_id}-{n}``, after a random tag when the run draws one.

        Kafka names a member ``{client_id}-{UUID}``, and the leader's assignor
        orders members by id: with the same client id everywhere (Faust's
        default), a restarted worker sorts anywhere among the others, so it
        need not get its old partitions back. A random tag first gives the
        simulated group the same freedom (the counter keeps ids readable).
        """
        self._member_seq += 1
        if self._member_rng is None:
            return f"{client_id}-{self._member_seq}"
        return f"{self._member_rng.getrandbits(16):04x}:{client_id}-{self._member_seq}"

    async def join(
        self,
        member_id: str | None,
        *,
        client_id: str,
        subscription: frozenset[str],
        session_timeout: float,
        rebalance_timeout: float,
        user_data: bytes = b"",
    ) -> JoinResult:
        if member_id in self._reserved:
            self._reserved.discard(member_id)  # joins with the id it was given
        elif member_id is None or member_id not in self.members:
            member_id = self._new_member_id(client_id)
        if member_id not in self.members:
            self.members[member_id] = Member(member_id, subscription, session_timeout, rebalance_timeout)
            self.trace.record(self.group_id, "member-join", member=member_id)
        member = self.members[member_id]
        member.subscription = subscription
        member.user_data = user_data
        self._touch(member)
        if self._round is None:
            self._begin_round()
        assert self._round is not None
        future: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        self._round.joined[member_id] = future
        if self._round.initial:
            self._extend_initial_delay()
        else:
            self._maybe_complete_round()
        return await future

    async def sync(
        self, member_id: str, generation: int, assignments: Mapping[str, set[TP]] | None,
        user_data: Mapping[str, bytes] | None = None,
    ) -> set[TP]:
        """The member's partitions; its assignment ``user_data`` is then in ``self.user_data``."""
        self._check_member(member_id, generation)
        member = self.members[member_id]
        self._touch(member)
        if member_id == self.leader_id and self.state == "awaiting-sync":
            self.assignments = {m: set(assignments.get(m, ())) for m in self.members} if assignments else {}
            self.user_data = {m: (user_data or {}).get(m, b"") for m in self.members}
            self.state = "stable"
            for mid in sorted(self.assignments):
                self.trace.record(
                    self.group_id, "assign", generation=generation, member=mid,
                    tps=sorted(str(tp) for tp in self.assignments[mid]),
                )
            waiters, self._sync_waiters = self._sync_waiters, {}
            for mid, waiter in waiters.items():
                if not waiter.done():
                    waiter.set_result(set(self.assignments.get(mid, ())))
        if self.state == "stable":
            return set(self.assignments.get(member_id, ()))
        pending: asyncio.Future[set[TP]] = asyncio.get_running_loop().create_future()
        self._sync_waiters[member_id] = pending
        return await pending

    def heartbeat(self, member_id: str, generation: int) -> None:
        self._check_member(member_id, generation)
        self._touch(self.members[member_id])

    def leave(self, member_id: str) -> None:
        if self.members.pop(member_id, None) is None:
            return
        self.trace.record(self.group_id, "member-leave", member=member_id)
        self._on_membership_change()

    # -- offsets ------------------------------------------------------------
    def commit(self, member_id: str | None, generation: int, offsets: Mapping[TP, int]) -> None:
        """Store offsets; fenced unless sent by a current member of this generation."""
        if member_id is not None:
            self.check_generation(member_id, generation)
        self.store(member_id, offsets)

    def check_generation(self, member_id: str | None, generation: int) -> None:
        """``CommitFailedError`` unless ``member_id`` is a member of the current generation.

        Also what transactional offsets must pass (KIP-447): a member that a
        rebalance replaced may not commit offsets, in a transaction or not.
        """
        if self.state != "stable":
            self._stats["rebalance-during-commit"] += 1
        stale = member_id in self.members and generation != self.generation
        if stale:  # reach: a live member behind a rebalance commits (a zombie, or a slow one)
            self._stats["commit-stale-generation"] += 1
        fenced = member_id not in self.members or stale
        if fenced and not (mutants.ACTIVE and mutants.on(COMMIT_FENCING_SKIPPED)):
            self.trace.record(
                self.group_id, "commit-rejected", member=member_id, generation=generation
            )
            raise CommitFailedError(
                f"commit from {member_id} (generation {generation}) rejected: "
                f"group {self.group_id} is at generation {self.generation}"
            )
        self.trace.record(self.group_id, "offsets-accepted", member=member_id, generation=generation)

    def store(self, member_id: str | None, offsets: Mapping[TP, int]) -> None:
        """Make ``offsets`` the committed offsets (checked already, or a transaction's)."""
        for tp in sorted(offsets):
            self.committed[tp] = offsets[tp]
            self.trace.record(self.group_id, "commit", member=member_id, tp=tp, offset=offsets[tp])

    # -- membership ---------------------------------------------------------
    def coordinator_moved(self) -> None:
        """A new broker coordinates the group: it loads the group and restarts every session."""
        for member_id in sorted(self.members):
            self._touch(self.members[member_id])

    def on_topic_created(self, topic: str) -> None:
        """Metadata changed: rebalance if a member subscribes to the new topic."""
        if self.state == "stable" and any(topic in m.subscription for m in self.members.values()):
            self._begin_round()

    def _begin_round(self) -> None:
        initial = self.generation == 0 or self.state == "empty"
        self.state = "preparing"
        self._round = _Round(initial=initial)
        self._fail_sync_waiters()
        if not initial:
            timeout = max((m.rebalance_timeout for m in self.members.values()), default=0.0)
            self._round.timer = asyncio.get_running_loop().call_later(timeout, self._complete_round)

    def _extend_initial_delay(self) -> None:
        assert self._round is not None
        if self._round.timer is not None:
            self._round.timer.cancel()
        loop = asyncio.get_running_loop()
        self._round.timer = loop.call_later(self.initial_rebalance_delay, self._complete_round)

    def _maybe_complete_round(self) -> None:
        assert self._round is not None
        if set(self.members) <= set(self._round.joined):
            self._complete_round()

    def _complete_round(self) -> None:
        current, self._round = self._round, None
        if current is None:
            return
        if current.timer is not None:
            current.timer.cancel()
        for member_id in [m for m in self.members if m not in current.joined]:
            self._expel(member_id, reason="rebalance-timeout")
        joined = {m: f for m, f in current.joined.items() if m in self.members and not f.done()}
        if not joined:
            self.state = "empty"
            return
        self.generation += 1
        self.leader_id = next(iter(joined))
        self.state = "awaiting-sync"
        self.trace.record(
            self.group_id, "rebalance", generation=self.generation,
            leader=self.leader_id, members=sorted(joined),
        )
        subscriptions = {m: self.members[m].subscription for m in joined}
        user_data = {m: self.members[m].user_data for m in joined}
        for member_id, future in joined.items():
            leader = member_id == self.leader_id
            future.set_result(JoinResult(
                self.generation, member_id, self.leader_id,
                subscriptions if leader else {}, user_data if leader else {},
            ))

    def _on_membership_change(self) -> None:
        if not self.members:
            self.state = "empty"
            self._round = None
            self._fail_sync_waiters()
            return
        if self._round is None:
            self._begin_round()
        else:
            self._maybe_complete_round()

    def _fail_sync_waiters(self) -> None:
        waiters, self._sync_waiters = self._sync_waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_exception(RebalanceInProgressError(self.group_id))

    def _check_member(self, member_id: str, generation: int) -> None:
        if member_id not in self.members:
            raise UnknownMemberIdError(member_id)
        if self.state == "preparing":
            raise RebalanceInProgressError(self.group_id)
        if generation != self.generation:
            raise IllegalGenerationError(f"{member_id} has {generation}, group {self.generation}")

    def _awaiting_response(self, member_id: str) -> bool:
        in_round = self._round is not None and member_id in self._round.joined
        return in_round or member_id in self._sync_waiters

    def _touch(self, member: Member) -> None:
        if member.expiry is not None:
            member.expiry.cancel()
        loop = asyncio.get_running_loop()
        member.expiry = loop.call_later(
            member.session_timeout, self._expel, member.member_id, "session-timeout"
        )

    def _expel(self, member_id: str, reason: str) -> None:
        member = self.members.get(member_id)
        if member is None:
            return
        if reason == "session-timeout" and self._awaiting_response(member_id):
            self._touch(member)  # a pending join/sync request keeps the session alive
            return
        del self.members[member_id]
        if member.expiry is not None:
            member.expiry.cancel()
        self.trace.record(self.group_id, "member-expired", member=member_id, reason=reason)
        if reason == "session-timeout":
            self._on_membership_change()
