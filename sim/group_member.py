"""The consumer group protocol of a simulated consumer: coordinator requests and membership.

``SimConsumer`` runs it in a background task (``_coordinate``), as aiokafka's
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
from typing import TYPE_CHECKING, TypeVar

from detstream._types import TP
from detstream.assignor import MemberPlan
from detstream.assignor_wire import (
    SubscriptionInfo,
    decode_standbys,
    encode_standbys,
    encode_subscription,
    plan_from_subscriptions,
)

from .brokers import GROUP_COORDINATOR_TOPIC, coordinator_partition
from .group import GroupProtocolError, UnknownMemberIdError
from .kafka_errors import RetriableError

if TYPE_CHECKING:
    from detstream.transport.base import RebalanceListener

    from .cluster import SimCluster
    from .metadata import ClientMetadata
    from .network import Link

T = TypeVar("T")


class GroupMember:
    """The group protocol half of ``SimConsumer`` (which owns every attribute used here)."""

    # Set by ``SimConsumer.__init__``; declared here for the type checker.
    heartbeat_interval: float
    session_timeout: float
    rebalance_timeout: float
    _cluster: SimCluster
    _link: Link
    _metadata: ClientMetadata
    _name: str
    _group_id: str | None
    _listener: RebalanceListener | None
    _topics: frozenset[str]
    _member_id: str | None
    _generation: int
    _needs_join: bool
    _wakeup: asyncio.Event
    _stalled_until: float
    _read_committed: bool
    _paused: set[TP]
    _standby_request: SubscriptionInfo
    _standbys: set[TP]
    _held: frozenset[TP]
    _owned: frozenset[TP]
    #: between installing an assignment and the end of the listener's ``on_partitions_assigned``.
    _listener_pending: bool = False

    # -- what SimConsumer provides ---------------------------------------------
    @property
    def _assignment(self) -> set[TP]:
        raise NotImplementedError

    @_assignment.setter
    def _assignment(self, tps: set[TP]) -> None:
        raise NotImplementedError

    def _set_position(self, tp: TP, offset: int) -> None:
        raise NotImplementedError

    def _wake_fetch(self) -> None:
        raise NotImplementedError

    # -- the group coordinator ------------------------------------------------
    async def _group_request(self, what: str, call: Callable[[], T]) -> T:
        """One request to the group's coordinator broker (as this consumer's metadata has it)."""
        where = coordinator_partition(GROUP_COORDINATOR_TOPIC, self._group_id or "")
        broker = self._metadata.leader(where)

        def at_coordinator() -> T:
            self._cluster.brokers.serve_coordinator(where, broker)
            return call()

        return await self._cluster.network.request(self._link, what, at_coordinator)

    async def _group_request_retrying(self, what: str, call: Callable[[], T]) -> T:
        """A group request retried until it gets through; traced ``retried`` if it needed to."""
        failures: list[str] = []
        while True:
            try:
                result = await self._group_request(what, call)
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

    # -- group membership ---------------------------------------------------
    async def _coordinate(self) -> None:
        coordinator = self._cluster.group(self._group_id or "")
        loop = asyncio.get_running_loop()
        while True:
            if self._stalled_until > loop.time():
                await asyncio.sleep(self._stalled_until - loop.time())
                continue
            if self._needs_join and self._topics:
                await self._rejoin()
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.heartbeat_interval)
            except asyncio.TimeoutError:
                pass
            if self._member_id is None or self._needs_join or self._stalled_until > loop.time():
                continue
            member, generation = self._member_id, self._generation
            try:
                await self._group_request(
                    "heartbeat", functools.partial(coordinator.heartbeat, member, generation)
                )
            except UnknownMemberIdError:
                self._member_id = None
                self._needs_join = True
            except GroupProtocolError:
                self._needs_join = True
            except RetriableError:
                await self._find_coordinator()  # the next heartbeat goes to the one found

    async def _rejoin(self) -> None:
        assert self._listener is not None
        coordinator = self._cluster.group(self._group_id or "")
        revoked, self._assignment = self._assignment, set()
        await self._listener.on_partitions_revoked(revoked)
        while True:
            self._needs_join = False
            try:
                await self._reach_coordinator("join-group")
                joined = await coordinator.join(
                    self._member_id,
                    client_id=self._name,
                    subscription=self._topics,
                    session_timeout=self.session_timeout,
                    rebalance_timeout=self.rebalance_timeout,
                    user_data=self._subscription_user_data(),
                )
                self._member_id = joined.member_id
                plan: dict[str, MemberPlan] = {}
                if joined.leader_id == joined.member_id:
                    plan = self._plan_assignment(joined.members, joined.user_data)
                await self._reach_coordinator("sync-group")
                assigned = await coordinator.sync(
                    joined.member_id, joined.generation,
                    {m: set(p.active) for m, p in plan.items()} or None,
                    {m: encode_standbys(p.standby) for m, p in plan.items()},
                )
                standbys = decode_standbys(coordinator.user_data.get(joined.member_id))
            except UnknownMemberIdError:
                self._member_id = None
                continue
            except GroupProtocolError:
                continue
            except RetriableError:
                await self._find_coordinator()
                continue
            break
        self._generation = joined.generation
        await self._take_assignment(assigned, set(standbys))

    def _subscription_user_data(self) -> bytes:
        """What the leader needs for standbys: our changelogs, copies wanted, what we held."""
        request = self._standby_request
        return encode_subscription(
            SubscriptionInfo(request.changelogs, request.replicas, self._held, self._owned)
        )

    def _plan_assignment(
        self, members: Mapping[str, frozenset[str]], user_data: Mapping[str, bytes]
    ) -> dict[str, MemberPlan]:
        counts = {}
        for topic in sorted({t for subs in members.values() for t in subs}):
            count = self._cluster.partitions_for(topic, by=self._name)
            if count:
                counts[topic] = count
        return plan_from_subscriptions(members, user_data, counts)

    async def _take_assignment(self, assigned: set[TP], standbys: set[TP]) -> None:
        assert self._listener is not None
        coordinator = self._cluster.group(self._group_id or "")
        if self._read_committed and not await self._offsets_stable(assigned):
            self._needs_join = True  # the group moved on while we waited: rejoin
            return
        for tp in sorted(assigned):
            committed = coordinator.committed.get(tp)
            self._set_position(
                tp, committed if committed is not None else self._cluster.beginning_offset(tp)
            )
        self._paused &= assigned
        self._assignment = set(assigned)  # (which recomputes the partitions read)
        self._standbys = set(standbys)
        changelogs = self._standby_request.changelogs
        self._held = frozenset(tp for tp in assigned | standbys if tp.topic in changelogs)
        self._owned = frozenset(assigned)
        lag = self._cluster.network.listener_lag()
        self._listener_pending = True
        try:
            if lag:  # fetch with the new assignment first, as aiokafka may
                self._cluster.trace.record(self._name, "listener-lag", seconds=round(lag, 6))
                # Our own fetch only (the positions set above woke it already if it
                # waited): nothing changed for other consumers, and waking every
                # fetch of the cluster made each member's assignment cost O(workers).
                self._wake_fetch()
                await asyncio.sleep(lag)
            await self._listener.on_partitions_assigned(set(assigned))
        finally:
            self._listener_pending = False

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
                    transactions.wait_stable(group_id, tps), self.heartbeat_interval
                )
            except asyncio.TimeoutError:
                group = self._cluster.group(group_id)
                member, generation = self._member_id or "", self._generation
                try:
                    await self._group_request(
                        "heartbeat", functools.partial(group.heartbeat, member, generation)
                    )
                except GroupProtocolError:
                    return False
                except RetriableError:
                    await self._find_coordinator()
        return True
