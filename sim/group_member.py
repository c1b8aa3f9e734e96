"""The consumer group protocol of a simulated consumer: coordinator requests and membership.

A ``SimConsumer`` owns one ``GroupMember`` and runs its ``coordinate`` loop in a background task, as aiokafka's
coordinator does: join and sync to get an assignment (the leader plans it
with detstream's assignor, standbys in ``user_data``), heartbeats, rejoining
when a heartbeat says the group is rebalancing or the member was expelled,
and calling the engine's rebalance listener around each generation. Every
request goes to the group's coordinator broker and is retried while that
broker is down or the coordinator has moved.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, TypeVar

from detstream._types import TP
from detstream.assignor import MemberPlan
from detstream.assignor_wire import (
    Routes,
    SubscriptionInfo,
    decode_standbys,
    encode_assignments,
    encode_subscription,
    plan_observed,
)
from detstream.errors import FencedInstanceIdError
from detstream.futures import current_task_cancelling

from .brokers import GROUP_COORDINATOR_TOPIC, coordinator_partition
from .group import (
    GroupProtocolError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from .kafka_errors import RetriableError

if TYPE_CHECKING:
    from detstream.transport.base import RebalanceListener

    from .cluster import SimCluster
    from .group import GroupCoordinator
    from .metadata import ClientMetadata
    from .network import Link

T = TypeVar("T")


class MemberConsumer(Protocol):
    """What the group protocol needs of its consumer: timeouts, the assignment, positions."""

    heartbeat_interval: float
    session_timeout: float
    rebalance_timeout: float

    def revoke_assignment(self) -> set[TP]:
        """Drop the whole assignment (before a rejoin); what was assigned."""
        ...

    def install_assignment(self, assigned: set[TP]) -> None:
        """The group's new assignment: fetched from now on (pauses kept where still assigned)."""
        ...

    def set_position(self, tp: TP, offset: int) -> None: ...

    def wake_fetch(self) -> None:
        """Wake the consumer's waiting fetch (its partitions or positions changed)."""
        ...

    def fetch_sent(self) -> asyncio.Future[None]:
        """Resolved when the consumer next sends a fetch that returns records."""
        ...


class GroupMember:
    """One consumer's membership of its group: coordinator requests, join/sync, heartbeats.

    Owned by a ``SimConsumer`` (``consumer.group``), which it reaches only
    through ``MemberConsumer``; the consumer asks it for the generation and
    member id its commits carry, and sends its offset requests through
    ``request``/``request_retrying``.
    """

    def __init__(
        self, consumer: MemberConsumer, cluster: SimCluster, link: Link, metadata: ClientMetadata,
        *, name: str, group_id: str | None, read_committed: bool,
    ) -> None:
        self._consumer = consumer
        self._cluster = cluster
        self._link = link
        self._metadata = metadata
        self._name = name
        self._group_id = group_id
        self._read_committed = read_committed
        #: subscribed topics, and the engine's rebalance listener.
        self.topics: frozenset[str] = frozenset()
        self._listener: RebalanceListener | None = None
        self.member_id: str | None = None
        self.generation = -1
        self._needs_join = False
        self._wakeup = asyncio.Event()
        #: loop time until which the coordination loop sends nothing (a ``stall`` fault).
        self._stalled_until = 0.0
        #: standby copies asked for (``request_standbys``), and this member's share of them.
        self._standby_request = SubscriptionInfo()
        self.standbys: set[TP] = set()
        #: this member's web URL (told to the leader), and every partition's (told by it).
        self.url: str | None = None
        self.routes: Mapping[TP, str] = {}
        #: changelog partitions of the last assignment (active or standby), told to the leader.
        self._held: frozenset[TP] = frozenset()
        self._owned: frozenset[TP] = frozenset()
        #: between installing an assignment and the end of the listener's ``on_partitions_assigned``.
        self.listener_pending = False
        #: a rejoin is in flight: revoke listener, join, sync or assign listener.
        self.rebalancing = False
        #: the consumer is stopping and lets the rebalance in flight finish: no retry, no next one.
        self.closing = False
        #: static membership (KIP-345): the group instance id this member joins with, or None.
        self.instance_id: str | None = None
        #: another member joined with our instance id: the group fenced us, for good (no rejoin).
        self.fenced: FencedInstanceIdError | None = None
        #: the group answered an unknown member id or a stale generation; until we join again.
        self.expelled = False
        #: when the last heartbeat the group answered was sent (or the join's sync): the
        #: group expels us no sooner than a session timeout after it received it.
        self.answered_at = 0.0
        #: set when a rejoin is about to call the revoke listener (``commit_refused`` waits on it).
        self._revoking = asyncio.Event()

    # -- what the consumer asks ------------------------------------------------
    def subscribe(self, topics: frozenset[str], listener: RebalanceListener) -> None:
        self._listener = listener
        if topics != self.topics:
            self.topics = topics
            self._needs_join = True
            self._wakeup.set()

    def wake(self) -> None:
        """Run the coordination loop now (not at the next heartbeat)."""
        self._wakeup.set()

    def request_standbys(self, topics: frozenset[str], replicas: int) -> None:
        self._standby_request = SubscriptionInfo(topics, replicas)

    def stall(self, duration: float) -> None:
        """No heartbeat (or rejoin) for ``duration`` (see ``SimConsumer.stall``)."""
        self._stalled_until = asyncio.get_running_loop().time() + duration

    async def leave(self, budget: float | None) -> None:
        """Leave the group (a graceful stop), giving up after ``budget`` seconds if one is set.

        A static member does not (aiokafka 0.14's ``_maybe_leave_group``, as
        Java's consumer): the group keeps its partitions for it until it joins
        again with its instance id or its session expires. Counter and trace
        ``static-leave-skipped``.
        """
        if self._group_id is None or self.member_id is None or not self._link.up:
            return
        if self.instance_id is not None:
            self._cluster.stats["static-leave-skipped"] += 1
            self._cluster.trace.record(
                self._name, "static-leave-skipped", member=self.member_id, instance=self.instance_id
            )
            self.member_id = None
            return
        member, self.member_id = self.member_id, None
        group = self._cluster.group(self._group_id)
        leave = self.request("leave-group", lambda: group.leave(member))
        try:
            await (leave if budget is None else asyncio.wait_for(leave, budget))
        except (RetriableError, ConnectionError, asyncio.TimeoutError):
            pass  # as aiokafka: the coordinator expires the member after its session timeout

    # -- the group coordinator ------------------------------------------------
    async def request(self, what: str, call: Callable[[], T]) -> T:
        """One request to the group's coordinator broker (as this consumer's metadata has it).

        Held while the process is cut off from the coordinator (``Link.reach_group``).
        """
        await self._link.reach_group(self._cluster.trace, what)
        where = coordinator_partition(GROUP_COORDINATOR_TOPIC, self._group_id or "")
        broker = self._metadata.leader(where)

        def at_coordinator() -> T:
            self._cluster.brokers.serve_coordinator(where, broker)
            return call()

        return await self._cluster.network.request(self._link, what, at_coordinator)

    async def request_retrying(self, what: str, call: Callable[[], T]) -> T:
        """A group request retried until it gets through; traced ``retried`` if it needed to."""
        failures: list[str] = []
        while True:
            try:
                result = await self.request(what, call)
            except RetriableError as exc:
                failures.append(type(exc).__name__)
                await self._find_coordinator()
                continue
            if failures:
                self._cluster.trace.record(
                    self._name, "retried", request=what, attempts=len(failures) + 1,
                    error=failures[-1],
                )
            return result

    async def _reach_coordinator(self, what: str) -> None:
        """The way in of a long poll (join, sync) to the coordinator; raises if it is unavailable."""
        await self._cluster.network.arrive(self._link, what)
        where = coordinator_partition(GROUP_COORDINATOR_TOPIC, self._group_id or "")
        self._cluster.brokers.serve_coordinator(where, self._metadata.leader(where))

    async def _find_coordinator(self) -> None:
        """After a coordinator error: back off and look the coordinator up again."""
        try:
            await self._metadata.refresh()
        except RetriableError:
            pass

    def fence(self, error: FencedInstanceIdError) -> None:
        """The group fenced our instance (another member joined with its id): we are done.

        Nothing more is sent to the coordinator (no heartbeat, no rejoin, which
        would take the instance back); the consumer raises ``error`` from
        ``getmany`` and ``commit`` (``SimConsumer``), as the Kafka driver does.
        """
        if self.fenced is None:
            self.fenced = error
            self._consumer.wake_fetch()

    # -- group membership ---------------------------------------------------
    async def coordinate(self) -> None:
        try:
            await self._coordinate()
        except FencedInstanceIdError as exc:
            self.fence(exc)

    async def _coordinate(self) -> None:
        coordinator = self._cluster.group(self._group_id or "")
        loop = asyncio.get_running_loop()
        while self.fenced is None:
            if self._stalled_until > loop.time():
                await asyncio.sleep(self._stalled_until - loop.time())
                continue
            if self._needs_join and self.topics:
                await self._rebalance()
                if self.closing:
                    return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self._consumer.heartbeat_interval)
            except asyncio.TimeoutError:
                pass
            if current_task_cancelling():  # 3.11's wait_for returns if woken as it is cancelled
                raise asyncio.CancelledError
            if self.member_id is None or self._needs_join or self._stalled_until > loop.time():
                continue
            await self._heartbeat(coordinator)

    async def _heartbeat(self, coordinator: GroupCoordinator) -> bool:
        """One heartbeat and what its answer means; whether the group answered it (a
        "rebalancing" answer counts, as aiokafka counts it). Only while a member."""
        member, generation = self.member_id, self.generation
        assert member is not None
        sent_at = asyncio.get_running_loop().time()
        try:
            await self.request("heartbeat", functools.partial(
                coordinator.heartbeat, member, generation, self.instance_id
            ))
            self.answered_at = max(self.answered_at, sent_at)
            return True
        except UnknownMemberIdError:
            self._forget_membership("heartbeat")  # as aiokafka's reset_generation
        except IllegalGenerationError:  # a rebalance went on without us: the partitions are lost
            self._learned_expulsion("heartbeat")
            self._needs_join = True
        except RebalanceInProgressError:  # still a member: aiokafka counts it as answered
            self.answered_at = max(self.answered_at, sent_at)
            self._needs_join = True
            return True
        except GroupProtocolError:
            self._needs_join = True
        except RetriableError:
            await self._find_coordinator()  # the next heartbeat goes to the one found
        return False

    async def _heartbeats_while_revoking(self, coordinator: GroupCoordinator) -> None:
        """Heartbeat every interval while the revoke listener runs, as aiokafka's heartbeat
        task does (it is stopped only before the join): the group keeps a member that is
        still revoking, up to the rebalance timeout, instead of expelling it a session after
        its last heartbeat. Counter ``revoke-heartbeat``: answered ones.

        Its errors end it here, not in a task nobody awaits: a fenced static
        member is fenced for good (as the coordination loop does), a crashed
        process sends nothing more.
        """
        loop = asyncio.get_running_loop()
        while self.member_id is not None:  # as aiokafka's, it ends once the membership is forgotten
            await asyncio.sleep(self._consumer.heartbeat_interval)
            if self._stalled_until > loop.time() or self.member_id is None:
                continue
            try:
                answered = await self._heartbeat(coordinator)
            except FencedInstanceIdError as exc:
                self.fence(exc)
                return
            except ConnectionError:  # the process crashed
                return
            if answered:
                self._cluster.stats["revoke-heartbeat"] += 1

    def membership_in_doubt(self) -> bool:
        """Joined, not known expelled, and no heartbeat answered within half a session
        timeout (``Consumer.membership_in_doubt``). Also while joining again, as the Kafka
        driver's: aiokafka heartbeats through the revoke (a "rebalancing" answer counts), not
        through the join and sync, whose answer ends the doubt."""
        if self.member_id is None or self.expelled:
            return False
        now = asyncio.get_running_loop().time()
        return now - self.answered_at > self._consumer.session_timeout / 2

    def _forget_membership(self, how: str) -> None:
        """The group no longer knows our membership: join again as a new member, as aiokafka
        does on an unknown member id or a stale generation (``reset_generation``)."""
        self.member_id = None
        self._learned_expulsion(how)
        self._needs_join = True

    def _learned_expulsion(self, how: str) -> None:
        """From now on the consumer knows its partitions are lost (trace ``expulsion-learned``,
        which ``no-changelog-write-after-refusal`` holds the worker's writes to)."""
        if not self.expelled:
            self.expelled = True
            self._cluster.trace.record(self._name, "expulsion-learned", told_by=how)

    async def commit_refused(self, revoke_first: bool) -> None:
        """The group refused a commit of ours: forget the membership and rejoin at once.

        aiokafka resets its generation in the commit's answer and wakes its
        coordinator task, which rejoins, calling the revoke listener with the
        old assignment, on the same step as the commit raises
        ``CommitFailedError`` to its caller: either may reach the engine
        first. With ``revoke_first`` the revoke listener has begun when this
        returns (if the coordination loop can run now: not while stalled).
        """
        if self.closing:  # aiokafka's coordinator task ends once the consumer closes: no rejoin
            self.member_id = None
            self._learned_expulsion("commit")
            return
        self._forget_membership("commit")
        self._revoking.clear()
        self._wakeup.set()
        if revoke_first and self._stalled_until <= asyncio.get_running_loop().time():
            # (not ``wait_for``: on 3.11 it can swallow a cancellation of the caller that
            # comes as the event is set, and the engine cancels this commit's task at a stop)
            revoking = asyncio.ensure_future(self._revoking.wait())
            try:
                await asyncio.wait({revoking}, timeout=self._consumer.heartbeat_interval)
            finally:
                revoking.cancel()

    async def _rebalance(self) -> None:
        self.rebalancing = True
        try:
            await self._rejoin()
        finally:
            self.rebalancing = False

    async def _rejoin(self) -> None:
        """Revoke, join and sync until assigned, then take the assignment.

        While the consumer stops (``closing``) a failed attempt is not
        retried: aiokafka's coordinator tries a rejoin once per turn and
        its loop ends once closing.
        """
        assert self._listener is not None
        coordinator = self._cluster.group(self._group_id or "")
        revoked = self._consumer.revoke_assignment()
        self._revoking.set()  # (its waiter resumes after the listener's first step)
        beating = asyncio.ensure_future(self._heartbeats_while_revoking(coordinator))
        try:
            await self._listener.on_partitions_revoked(revoked)
        finally:
            beating.cancel()
        while True:
            self._needs_join = False
            try:
                await self._reach_coordinator("join-group")
                joined = await coordinator.join(
                    self.member_id,
                    client_id=self._name,
                    subscription=self.topics,
                    session_timeout=self._consumer.session_timeout,
                    rebalance_timeout=self._consumer.rebalance_timeout,
                    user_data=self._subscription_user_data(),
                    instance_id=self.instance_id,
                )
                self.member_id = joined.member_id
                plan: dict[str, MemberPlan] = {}
                if joined.leader_id == joined.member_id:
                    plan = self._plan_assignment(joined.members, joined.user_data)
                await self._reach_coordinator("sync-group")
                sync_sent = asyncio.get_running_loop().time()
                assigned = await coordinator.sync(
                    joined.member_id, joined.generation,
                    {m: set(p.active) for m, p in plan.items()} or None,
                    encode_assignments(plan, joined.user_data),
                    self.instance_id,
                )
                mine = coordinator.user_data.get(joined.member_id)
                standbys = decode_standbys(mine)
                self.routes = Routes(mine)
            except UnknownMemberIdError:
                self.member_id = None
                if self.closing:
                    return
                continue
            except GroupProtocolError:
                if self.closing:
                    return
                continue
            except RetriableError:
                if self.closing:
                    return
                await self._find_coordinator()
                continue
            break
        self.generation = joined.generation
        self.expelled = False
        self.answered_at = sync_sent  # the sync's answer: the group knows us as of then
        await self._take_assignment(assigned, set(standbys))

    def _subscription_user_data(self) -> bytes:
        """What the leader needs for standbys: our changelogs, copies wanted, what we held."""
        request = self._standby_request
        return encode_subscription(
            SubscriptionInfo(request.changelogs, request.replicas, self._held, self._owned, self.url)
        )

    def _plan_assignment(
        self, members: Mapping[str, frozenset[str]], user_data: Mapping[str, bytes]
    ) -> dict[str, MemberPlan]:
        counts = {}
        for topic in sorted({t for subs in members.values() for t in subs}):
            count = self._cluster.partitions_for(topic, by=self._name)
            if count:
                counts[topic] = count
        return plan_observed(self._listener, self, members, user_data, counts)

    async def _take_assignment(self, assigned: set[TP], standbys: set[TP]) -> None:
        assert self._listener is not None
        coordinator = self._cluster.group(self._group_id or "")
        if self._read_committed and not await self._offsets_stable(assigned):
            self._needs_join = True  # the group moved on while we waited: rejoin
            return
        for tp in sorted(assigned):
            committed = coordinator.committed.get(tp)
            self._consumer.set_position(
                tp, committed if committed is not None else self._cluster.beginning_offset(tp)
            )
        self._consumer.install_assignment(set(assigned))
        self.standbys = set(standbys)
        changelogs = self._standby_request.changelogs
        self._held = frozenset(tp for tp in assigned | standbys if tp.topic in changelogs)
        self._owned = frozenset(assigned)
        lag = self._cluster.network.listener_lag()
        self.listener_pending = True
        try:
            if lag:  # fetch with the new assignment first, as aiokafka may
                self._cluster.trace.record(self._name, "listener-lag", seconds=round(lag, 6))
                # Our own fetch only (the positions set above woke it already if it
                # waited): nothing changed for other consumers, and waking every
                # fetch of the cluster made each member's assignment cost O(workers).
                self._consumer.wake_fetch()
                await self._lag(lag)
            await self._listener.on_partitions_assigned(set(assigned))
        finally:
            self.listener_pending = False

    async def _lag(self, lag: float) -> None:
        """Fetch with the new assignment for ``lag`` seconds, or until the listener races a fetch.

        A real client's fetcher and coordinator are separate tasks, and under
        load a fetch is nearly always in flight when the listener is called:
        its awaits (offset lookups, recovery) meet the responses of fetches
        made before it paused anything. A uniform lag rarely ends there. So
        the drawn lag also picks how many fetches that return records go out
        first (1, 2 or 3: the listener is called as the last is on its way
        back; trace and counter ``listener-race``), or, for its longest
        quarter, none (the whole lag).
        """
        fetches = 1 + int(4 * lag / self._cluster.config.listener_lag)
        if fetches > 3:
            await asyncio.sleep(lag)
            return
        loop = asyncio.get_running_loop()
        until, met = loop.time() + lag, 0
        while met < fetches:
            try:
                await asyncio.wait_for(asyncio.shield(self._consumer.fetch_sent()), until - loop.time())
            except asyncio.TimeoutError:
                return  # the lag ran out first
            met += 1
        self._cluster.stats["listener-race"] += 1
        self._cluster.trace.record(self._name, "listener-race", fetches=met)

    async def _offsets_stable(self, tps: set[TP]) -> bool:
        """KIP-447's stable offset fetch: wait while open transactions hold offsets of ``tps``.

        Else the new owner would start from a committed offset that the
        previous owner's transaction is about to move. Heartbeats go on
        meanwhile; False if the group rebalanced in the meantime.
        """
        group_id = self._group_id or ""
        transactions = self._cluster.transactions
        while transactions.pending_offsets(group_id, tps):
            try:
                await asyncio.wait_for(
                    transactions.wait_stable(group_id, tps), self._consumer.heartbeat_interval
                )
            except asyncio.TimeoutError:
                group = self._cluster.group(group_id)
                member, generation = self.member_id or "", self.generation
                try:
                    await self.request("heartbeat", functools.partial(
                        group.heartbeat, member, generation, self.instance_id
                    ))
                except FencedInstanceIdError as exc:
                    self.fence(exc)
                    return False
                except GroupProtocolError:
                    return False
                except RetriableError:
                    await self._find_coordinator()
        return True
