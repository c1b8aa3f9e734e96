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
from detstream.errors import CommitFailedError, FencedInstanceIdError

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
    #: a static member's group instance id (KIP-345), None for a dynamic one.
    instance_id: str | None = None


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
        #: static members (KIP-345): group instance id -> the member id that holds it now.
        self.instances: dict[str, str] = {}

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
        instance_id: str | None = None,
    ) -> JoinResult:
        if instance_id is not None:
            held = self.instances.get(instance_id)
            if held is not None and held not in self.members:
                held = None
            if member_id is not None and member_id not in self._reserved:
                if held is not None and held != member_id:  # a replaced member joins again
                    raise self._fenced(member_id, instance_id, "join-group")
            elif held is not None:
                return await self._replace_static(
                    held, client_id=client_id, subscription=subscription, user_data=user_data,
                    session_timeout=session_timeout, rebalance_timeout=rebalance_timeout,
                )
        if member_id in self._reserved:
            self._reserved.discard(member_id)  # joins with the id it was given
        elif member_id is None or member_id not in self.members:
            member_id = self._new_member_id(client_id)
        if member_id not in self.members:
            self.members[member_id] = Member(
                member_id, subscription, session_timeout, rebalance_timeout, instance_id=instance_id
            )
            if instance_id is None:
                self.trace.record(self.group_id, "member-join", member=member_id)
            else:
                self.instances[instance_id] = member_id
                self.trace.record(self.group_id, "member-join", member=member_id, instance=instance_id)
        return await self._join_round(self.members[member_id], subscription, user_data)

    async def _join_round(
        self, member: Member, subscription: frozenset[str], user_data: bytes
    ) -> JoinResult:
        """``member`` (re)joins the round in progress, or begins one; its result once it ends."""
        member_id = member.member_id
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

    async def _replace_static(
        self, held: str, *, client_id: str, subscription: frozenset[str], user_data: bytes,
        session_timeout: float, rebalance_timeout: float,
    ) -> JoinResult:
        """KIP-345: a member joins with the instance id ``held`` has; it takes ``held``'s place.

        The new member id inherits the old one's assignment (and its standbys'
        ``user_data``), leadership and generation; the old id is fenced from
        now on (``FencedInstanceIdError`` on its next heartbeat, sync, join or
        commit; a join or sync of it in flight fails so). A stable group whose
        member rejoins with the same subscribed topics does not rebalance:
        the member's sync returns the assignment it had (Kafka's "static
        member which joins during Stable stage and doesn't affect
        selectProtocol will not trigger rebalance"). Otherwise the member
        joins the round in progress, or one that its change begins (as Kafka,
        when the group was between join and sync).
        """
        old = self.members.pop(held)
        instance = old.instance_id
        assert instance is not None
        if old.expiry is not None:
            old.expiry.cancel()
        member_id = self._new_member_id(client_id)
        member = Member(
            member_id, subscription, session_timeout, rebalance_timeout, user_data=user_data,
            instance_id=instance,
        )
        self.members[member_id] = member
        self.instances[instance] = member_id
        if held in self.assignments:
            self.assignments[member_id] = self.assignments.pop(held)
        if held in self.user_data:
            self.user_data[member_id] = self.user_data.pop(held)
        if self.leader_id == held:
            self.leader_id = member_id
        pending = self._round.joined.pop(held, None) if self._round is not None else None
        waiter = self._sync_waiters.pop(held, None)
        for future in (pending, waiter):  # the old member's join or sync in flight
            if future is not None and not future.done():
                future.set_exception(self._fenced(held, instance, "join-group" if future is pending else "sync-group"))
        in_place = self.state == "stable" and subscription == old.subscription
        self.trace.record(
            self.group_id, "member-replaced", instance=instance, replaced=held, member=member_id,
            generation=self.generation, rebalance=not in_place,
        )
        if in_place:
            self._stats["static-rejoin"] += 1
            self._touch(member)
            return JoinResult(self.generation, member_id, self.leader_id or member_id, {}, {})
        self._stats["static-rejoin-rebalance"] += 1
        if self.state == "awaiting-sync" or self.state == "stable":
            self._begin_round()  # its assignment is the old member's or its topics changed
        return await self._join_round(member, subscription, user_data)

    async def sync(
        self, member_id: str, generation: int, assignments: Mapping[str, set[TP]] | None,
        user_data: Mapping[str, bytes] | None = None, instance_id: str | None = None,
    ) -> set[TP]:
        """The member's partitions; its assignment ``user_data`` is then in ``self.user_data``."""
        self._check_instance(member_id, instance_id, "sync-group")
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

    def heartbeat(self, member_id: str, generation: int, instance_id: str | None = None) -> None:
        """A member's heartbeat keeps its session alive, also while a rebalance is prepared.

        As Kafka's coordinator (``classicGroupHeartbeat``): a member of the
        current generation heartbeating while the group prepares a rebalance
        has its session rescheduled, and is answered REBALANCE_IN_PROGRESS
        (join again). Expiring it there would expel a member that did hear
        from the group, and whose flush before rejoining may still be landing.
        """
        self._check_instance(member_id, instance_id, "heartbeat")
        member = self.members.get(member_id)
        if member is not None and self.state == "preparing" and generation == self.generation:
            self._touch(member)
        self._check_member(member_id, generation)
        self._touch(self.members[member_id])

    def leave(self, member_id: str) -> None:
        member = self.members.pop(member_id, None)
        if member is None:
            return
        if member.instance_id is not None and self.instances.get(member.instance_id) == member_id:
            del self.instances[member.instance_id]
        self.trace.record(self.group_id, "member-leave", member=member_id)
        self._on_membership_change()

    # -- offsets ------------------------------------------------------------
    def commit(
        self, member_id: str | None, generation: int, offsets: Mapping[TP, int],
        instance_id: str | None = None,
    ) -> None:
        """Store offsets; fenced unless sent by a current member of this generation."""
        if member_id is not None:
            self.check_committer(member_id, generation, instance_id, "offset-commit")
        self.store(member_id, offsets)

    def check_committer(
        self, member_id: str | None, generation: int, instance_id: str | None, request: str
    ) -> None:
        """Kafka's check of a member committing offsets, plainly or in a transaction (KIP-447).

        ``FencedInstanceIdError`` if another member holds its group instance,
        else ``CommitFailedError`` unless it is a member of the current generation.
        """
        if member_id is not None:
            self._check_instance(member_id, instance_id, request)
        self.check_generation(member_id, generation)

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
        if self.state == "awaiting-sync":  # the last round's members still wait for their assignment
            self._stats["rebalance-interrupted"] += 1
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

    def _check_instance(self, member_id: str, instance_id: str | None, request: str) -> None:
        """Kafka's check of a request naming a group instance (KIP-345).

        FENCED_INSTANCE_ID if another member holds the instance now (it joined
        with the instance id since). If nobody does (the static member
        expired), the member-id checks that follow answer, as for a dynamic
        member: UNKNOWN_MEMBER_ID, or a rejected commit.
        """
        if instance_id is None:
            return
        held = self.instances.get(instance_id)
        if held is not None and held != member_id and held in self.members:
            raise self._fenced(member_id, instance_id, request)

    def _fenced(self, member_id: str, instance_id: str, request: str) -> FencedInstanceIdError:
        self._stats["instance-fenced"] += 1
        self.trace.record(
            self.group_id, "instance-fenced", member=member_id, instance=instance_id, request=request
        )
        return FencedInstanceIdError(
            f"{member_id}: another member joined group {self.group_id} as instance {instance_id!r}",
            group=self.group_id, instance=instance_id,
        )

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
        if member.instance_id is not None and self.instances.get(member.instance_id) == member_id:
            del self.instances[member.instance_id]
        self.trace.record(self.group_id, "member-expired", member=member_id, reason=reason)
        if reason == "session-timeout":
            self._on_membership_change()
