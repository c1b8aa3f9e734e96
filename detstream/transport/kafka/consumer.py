"""The Kafka driver's group consumer, its rebalance adapter and its assignor.

Split from ``detstream.transport.kafka.driver`` (which alone imports this module)
to keep files small. Semantics mirror ``sim.driver.SimConsumer``: no
auto-commit, detstream's co-partitioning assignment computed by the group
leader, the engine's rebalance listener called with detstream TPs, and a
``generation`` that names the assignment in force.

Standby replicas travel in the consumer protocol's ``user_data`` (see
``detstream.assignor_wire``): each consumer has its own assignor instance, so
that ``metadata`` can say what this member holds and ``on_assignment`` can
hand this member's standbys to it before the rebalance listener runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import aiokafka.errors
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.consumer.fetcher import Fetcher
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import CommitFailedError as KafkaCommitFailedError
from aiokafka.errors import KafkaError
from aiokafka.util import commit_structure_validate

from detstream import compat
from detstream._types import TP, ConsumerRecord
from detstream.assignor_wire import (
    Routes,
    SubscriptionInfo,
    decode_standbys,
    encode_assignments,
    encode_subscription,
    plan_observed,
)
from detstream.errors import CommitFailedError, FencedInstanceIdError, ImproperlyConfigured
from detstream.transport.base import GroupMetadata, RebalanceListener
from detstream.transport.kafka import stable_offsets, static_membership
from detstream.transport.kafka.closing import force_close_consumer, stop_client
from detstream.transport.kafka.lazy_client import LazyClient

if TYPE_CHECKING:
    from detstream.transport.kafka.driver import AIOKafkaTransport

log = logging.getLogger("detstream.transport.kafka.driver")

# aiokafka reads a failed OffsetFetch as "nothing committed": see the function's docstring
compat.heed_offset_fetch_errors(GroupCoordinator, aiokafka.errors)
# a failed offset lookup leaves its requests to other brokers running: see the docstring
compat.cancel_orphaned_offset_requests(Fetcher)
# a static member's heartbeats and commits name its instance, so a replaced one is fenced
static_membership.install()
# a read_committed consumer waits for offsets an open transaction holds (KIP-447)
stable_offsets.install()


class CopartitionedAssignor(AbstractPartitionAssignor):
    """detstream's co-partitioning assignment with standbys, run by the group leader.

    One instance per consumer (``owner``): its subscription ``user_data``
    says which changelogs the member has and held, and the standbys the
    leader gives it land on the owner. Without an owner it assigns actives
    only and asks for nothing, like a plain member.
    """

    name = "detstream-copartitioned"
    version = 0

    def __init__(self, owner: KafkaConsumer | None = None) -> None:
        self.owner = owner

    def assign(  # an instance method (aiokafka's is a classmethod): it calls it on what it is given
        self, cluster: Any, members: Mapping[str, ConsumerProtocolMemberMetadata]
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        subscriptions = {m: frozenset(meta.subscription) for m, meta in members.items()}
        counts: dict[str, int] = {}
        for topic in sorted(set().union(*subscriptions.values())):
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                counts[topic] = len(partitions)
            else:
                log.info("assignor: topic %r has no metadata yet; assigned once it exists", topic)
        user_data = {m: bytes(meta.user_data or b"") for m, meta in members.items()}
        listener = self.owner._listener if self.owner is not None else None
        plan = plan_observed(listener, self, subscriptions, user_data, counts)
        assignment_data = encode_assignments(plan, user_data)
        result = {}
        for member, share in plan.items():
            by_topic: dict[str, list[int]] = {}
            for tp in sorted(share.active):
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            result[member] = ConsumerProtocolMemberAssignment(
                self.version, sorted(by_topic.items()), assignment_data[member]
            )
        return result

    def metadata(
        self, topics: Iterable[str]
    ) -> ConsumerProtocolMemberMetadata:
        user_data = self.owner._subscription_user_data() if self.owner is not None else b""
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), user_data)

    def on_assignment(
        self, assignment: ConsumerProtocolMemberAssignment
    ) -> None:
        """Called by aiokafka before the rebalance listener: the standbys are known by then."""
        if self.owner is not None:
            self.owner._on_assignment(
                _tps(assignment.partitions()), decode_standbys(assignment.user_data),
                Routes(assignment.user_data),
            )


class _ListenerAdapter(ConsumerRebalanceListener):
    """Translates aiokafka's rebalance callbacks into the engine's, with detstream TPs."""

    def __init__(self, owner: KafkaConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        owner = self.owner
        owner._generation = -1
        if owner._listener is not None:
            await owner._listener.on_partitions_revoked(_tps(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        owner = self.owner
        client = owner._consumer
        if client is None or owner._stopping:  # a join completed while the consumer stops
            return
        owner._transport.start_up.end()  # joined: coordinator trouble from now on is news
        owner._member = compat.group_membership(client)
        owner._generation = owner._member[0]
        owner._heartbeat_answered(asyncio.get_running_loop().time())  # (the sync's answer)
        compat.watch_heartbeats(client, owner._heartbeat_answered)
        owner._last_assignment = compat.current_assignment(client)
        if owner._listener is not None:
            await owner._listener.on_partitions_assigned(_tps(assigned))


class KafkaConsumer:
    """A consumer: group-managed after ``subscribe``, manually assigned after ``assign``."""

    max_records = 500

    def __init__(
        self, transport: AIOKafkaTransport, options: dict[str, Any], *, group_id: str | None
    ) -> None:
        self._transport = transport
        self._options = options
        self._group_id = group_id
        self._consumer: AIOKafkaConsumer | None = None
        #: ``stop`` is under way: a join completing now has nothing to take.
        self._stopping = False
        self._listener: RebalanceListener | None = None
        self._adapter = _ListenerAdapter(self)
        self._topics: frozenset[str] = frozenset()
        self._manual: set[TP] | None = None
        self._seeks: dict[TP, int] = {}
        self._generation = -1
        #: (generation, member id) of the assignment in force (kept while revoking).
        self._member: tuple[int, str | None] = (-1, None)
        #: loop time the last heartbeat the group answered was sent (or the join's answer came).
        self._answered_at = 0.0
        self._last_assignment: Any = None
        self._fetch_errors = 0
        #: standby copies asked for (``request_standbys``), and this member's share of them.
        self._standby_request = SubscriptionInfo()
        self._standbys: set[TP] = set()
        #: this member's web URL (told to the leader), and every partition's (told by it).
        self._url: str | None = None
        self._routes: Mapping[TP, str] = {}
        #: changelog partitions of the last assignment (active or standby), told to the leader.
        self._held: frozenset[TP] = frozenset()
        self._owned: frozenset[TP] = frozenset()
        #: a read_uncommitted consumer (no group) asked for high watermarks, made on first use.
        self._log_end_reader: LazyClient[AIOKafkaConsumer] = LazyClient(self._start_log_end_reader)

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Connect; with a subscription this returns once the group assigned partitions."""
        if self._consumer is not None:
            return

        def make() -> AIOKafkaConsumer:
            options = dict(self._options)
            if self._group_id is not None:
                options["partition_assignment_strategy"] = (CopartitionedAssignor(self),)
            consumer = AIOKafkaConsumer(**options)
            if options.get("isolation_level") == "read_committed":  # as Java's consumer does
                compat.require_stable_offsets(consumer)
            if self._topics:
                consumer.subscribe(sorted(self._topics), listener=self._adapter)
            elif self._manual is not None:
                consumer.assign([_ak(tp) for tp in sorted(self._manual)])
            self._consumer = consumer
            return consumer

        waiting_for = self._join_wait if self._group_id is not None and self._topics else None
        try:
            await self._transport.start_client(
                make, f"consumer (group {self._group_id})", waiting_for=waiting_for
            )
        except BaseException:
            self._consumer = None
            raise
        for tp, offset in self._seeks.items():
            self.seek(tp, offset)
        self._seeks.clear()

    def _join_wait(self, consumer: AIOKafkaConsumer) -> str | None:
        """What a start that waits for its assignment waits for (None: not joining yet).

        The start of a worker that replaces one killed without leaving its
        group (kill -9, an OOM kill, a lost host) waits for the rebalance
        its join began, which waits for every member the coordinator knows:
        the dead one's until its session expires. The log says so, once,
        with the settings that shorten it.
        """
        if not compat.joining_group(consumer):
            return None
        session = self._options["session_timeout_ms"] / 1000.0
        rebalance = self._options["rebalance_timeout_ms"] / 1000.0
        instance = self._options.get("group_instance_id")
        held_up = (
            f"the group coordinator is rebalancing group {self._group_id!r} and waits for every "
            "member it knows to rejoin. A member of a worker that stopped without leaving the "
            "group (kill -9, an OOM kill, a lost host: this worker's previous instance, say) "
            f"holds the rebalance up until the coordinator expires it, broker_session_timeout="
            f"{session:g}s after its last heartbeat (broker_rebalance_timeout={rebalance:g}s at most)."
        )
        if instance is None:
            return (
                f"{held_up} To wait less after a crash: lower broker_session_timeout, or give each "
                "worker its own stable consumer_group_instance_id (static membership), so that a "
                "restarted worker takes its previous instance's place at once, without a rebalance"
            )
        return (
            f"{held_up} This worker is static member {instance!r}: it took its previous "
            "instance's place itself, so the member awaited is another worker's (a dynamic "
            "member's session must expire; lower broker_session_timeout to wait less)"
        )

    async def stop(self) -> None:
        """Leave the group (the engine committed before) and close the connections.

        The client stays reachable while it stops: a rebalance listener
        running meanwhile is cancelled by aiokafka's own stop, rather than
        failing first on a consumer that seems never started.
        """
        consumer = self._consumer
        self._generation = -1
        self._stopping = True
        try:
            reader = await self._log_end_reader.take()  # (a start in flight is cancelled)
            budget = self._transport.stop_budget()
            if consumer is not None:
                await stop_client(f"consumer (group {self._group_id})", consumer.stop,
                                  partial(force_close_consumer, consumer), budget)
        finally:
            self._consumer = None
            self._stopping = False
        if reader is not None:
            await stop_client("log-end reader", reader.stop, partial(force_close_consumer, reader),
                              self._transport.stop_budget())

    def _client(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise ImproperlyConfigured("the Kafka consumer is not started (call start() first)")
        return self._consumer

    # -- subscription ---------------------------------------------------------------
    def subscribe(self, topics: Iterable[str], listener: RebalanceListener) -> None:
        """Subscribe (again): a changed topic set makes this member rejoin the group."""
        if self._group_id is None:
            raise ImproperlyConfigured("subscribe() needs a consumer with a group_id; use assign()")
        topics = frozenset(topics)
        self._listener = listener
        self._transport.group_consumers[self._group_id] = self
        if topics == self._topics:
            return
        self._topics = topics
        if self._consumer is not None:
            self._consumer.subscribe(sorted(topics), listener=self._adapter)

    def assign(self, tps: Iterable[TP]) -> None:
        self._manual = set(tps)
        if self._consumer is not None:
            self._consumer.assign([_ak(tp) for tp in sorted(self._manual)])

    def assignment(self) -> set[TP]:
        if self._consumer is None:
            return set(self._manual or ())
        return _tps(self._consumer.assignment())

    def request_standbys(self, topics: Iterable[str], replicas: int) -> None:
        self._standby_request = SubscriptionInfo(frozenset(topics), replicas)

    def standby_assignment(self) -> set[TP]:
        return set(self._standbys)

    def advertise_url(self, url: str | None) -> None:
        self._url = url

    def partition_urls(self) -> dict[TP, str]:
        return dict(self._routes)

    def _subscription_user_data(self) -> bytes:
        request = self._standby_request
        return encode_subscription(
            SubscriptionInfo(request.changelogs, request.replicas, self._held, self._owned, self._url)
        )

    def _on_assignment(
        self, active: set[TP], standbys: frozenset[TP], routes: Mapping[TP, str] | None = None
    ) -> None:
        self._standbys = set(standbys)
        self._routes = routes if routes is not None else {}
        changelogs = self._standby_request.changelogs
        self._held = frozenset(tp for tp in active | standbys if tp.topic in changelogs)
        self._owned = frozenset(active)

    @property
    def generation(self) -> int:
        """Generation of the assignment in force; -1 before the first and during rebalances."""
        return self._generation

    @property
    def expelled(self) -> bool:
        """The group told aiokafka it no longer knows this member (see the seam): aiokafka
        forgot its member id and generation, after having joined."""
        client = self._consumer
        joined = bool(self._member[1])
        return client is not None and joined and compat.membership_reset(client)

    @property
    def membership_in_doubt(self) -> bool:
        """Joined, not ``expelled``, and no heartbeat answered in half a session (see the seam)."""
        if self._consumer is None or not self._member[1] or self.expelled:
            return False
        session = self._options["session_timeout_ms"] / 1000.0
        return asyncio.get_running_loop().time() - self._answered_at > session / 2

    def _heartbeat_answered(self, sent_at: float) -> None:
        self._answered_at = max(self._answered_at, sent_at)

    # -- fetching -----------------------------------------------------------------
    async def getmany(self, timeout: float) -> dict[TP, list[ConsumerRecord]]:
        consumer = self._client()
        compat.build_fetched_records_with(consumer, _record)
        try:
            batch = await consumer.getmany(timeout_ms=_ms(timeout), max_records=self.max_records)
        except KafkaError as exc:
            self._check_fenced(exc)
            if not exc.retriable:
                raise
            self._fetch_errors += 1
            if self._fetch_errors & (self._fetch_errors - 1) == 0:  # 1st, 2nd, 4th, 8th...
                log.warning("fetch from Kafka failed (%s); retrying (%d so far)", exc, self._fetch_errors)
            await asyncio.sleep(min(timeout, 1.0))
            return {}
        self._fetch_errors = 0
        return {TP(tp.topic, tp.partition): _records(tp, records) for tp, records in batch.items() if records}

    def _assigned(self, tps: Iterable[TP]) -> list[TopicPartition]:
        current = self._client().assignment()
        return [_ak(tp) for tp in tps if _ak(tp) in current]

    def pause(self, *tps: TP) -> None:
        """Pause fetching; partitions not assigned any more are ignored (as in the sim)."""
        if self._consumer is not None:
            self._consumer.pause(*self._assigned(tps))

    def resume(self, *tps: TP) -> None:
        if self._consumer is not None:
            self._consumer.resume(*self._assigned(tps))

    def seek(self, tp: TP, offset: int) -> None:
        if self._consumer is None:
            self._seeks[tp] = offset
        elif self._assigned([tp]):
            self._consumer.seek(_ak(tp), offset)
        else:
            log.warning("seek(%s, %d) ignored: the partition is not assigned to this consumer", tp, offset)

    # -- offsets ------------------------------------------------------------------
    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Commit ``offsets`` (next offset to read) for the current generation.

        Goes to the group coordinator directly rather than through
        ``AIOKafkaConsumer.commit``: after a runtime ``subscribe`` aiokafka has
        already dropped the old assignment while the engine, in its revoke
        callback, still commits it under the old (still valid) generation.
        """
        if self._group_id is None:
            raise ValueError("commit needs a consumer with a group_id")
        if not offsets:
            return
        consumer = self._client()
        current = compat.current_assignment(consumer)
        try:
            await compat.commit_for_assignment(
                consumer, current or self._last_assignment,
                commit_structure_validate({_ak(tp): o for tp, o in offsets.items()}),
            )
        except KafkaCommitFailedError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "rebalance"
            raise CommitFailedError(
                f"commit of {len(offsets)} offsets for group {self._group_id!r} was rejected "
                f"({cause}): the group rebalanced and another member may own these partitions now"
            ) from exc
        except KafkaError as exc:
            self._check_fenced(exc)
            raise CommitFailedError(
                f"commit of {len(offsets)} offsets for group {self._group_id!r} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def _check_fenced(self, error: BaseException) -> None:
        """``FencedInstanceIdError`` (from ``error``) if the group fenced this static member.

        aiokafka raises FENCED_INSTANCE_ID from a heartbeat, join or sync as an
        unexpected error (into ``getmany``), from a commit as the broker's
        error; it does not rejoin, so this consumer is done.
        """
        consumer = self._consumer
        instance = compat.instance_fenced(consumer) if consumer is not None else None
        if instance is None:
            return
        raise FencedInstanceIdError(
            f"another consumer joined group {self._group_id!r} as static member {instance!r} "
            "(consumer_group_instance_id) and took this one's place: it may neither fetch nor "
            "commit any more. Each worker needs its own consumer_group_instance_id (two "
            "running with one take it from each other)",
            group=self._group_id or "", instance=instance,
        ) from error

    async def position(self, tp: TP) -> int:
        return await self._client().position(_ak(tp))

    def known_offsets(self, tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        """Positions and the log ends of the last fetch responses; no request (see the seam)."""
        consumer = self._consumer
        if consumer is None:
            return {}
        read_committed = self._options.get("isolation_level") == "read_committed"
        known = {}
        for tp in tps:
            position, highwater, lso = compat.fetch_state(consumer, _ak(tp))
            end = lso if read_committed and lso is not None and lso >= 0 else highwater
            if position is not None and end is not None:
                known[tp] = (position, end)
        return known

    def group_metadata(self) -> GroupMetadata:
        """The group, generation and member id of the assignment whose offsets we commit.

        Still the old ones in the revoke callback, where the last commit of
        a generation is made while the coordinator accepts it.
        """
        generation, member_id = self._member
        instance = self._options.get("group_instance_id") if self._group_id is not None else None
        return GroupMetadata(self._group_id or "", generation, member_id, instance)

    def check_member(self, group: GroupMetadata) -> None:
        """``CommitFailedError`` if this consumer knows ``group`` is no longer its membership.

        Before the request: a member whose heartbeat learned of an
        expulsion or a new generation resets or rejoins, and refuses here.
        One that has not heard yet is refused by the group coordinator, which
        the TxnOffsetCommit names the member to (``member_offsets``).
        """
        coordinator = self._client()._coordinator
        if coordinator is None or (coordinator.generation, coordinator.member_id) != (
            group.generation, group.member_id
        ):
            current = None if coordinator is None else (coordinator.generation, coordinator.member_id)
            raise CommitFailedError(
                f"offsets of generation {group.generation} (member {group.member_id}) refused: "
                f"the consumer of group {group.group_id!r} is at {current}"
            )

    async def committed(self, tp: TP) -> int | None:
        if self._group_id is None:
            return None
        return await self._client().committed(_ak(tp))

    async def start_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Committed offsets, else where ``auto_offset_reset`` points (as aiokafka would reset)."""
        tps = sorted(tps)
        starts: dict[TP, int] = {}
        for tp in tps:
            offset = await self.committed(tp)
            if offset is not None:
                starts[tp] = offset
        missing = [tp for tp in tps if tp not in starts]
        if missing:
            reset = self._options.get("auto_offset_reset", "latest")
            if reset == "earliest":
                starts.update(await self.beginning_offsets(missing))
            elif reset == "latest":
                starts.update(await self.end_offsets(missing))
            else:
                raise ImproperlyConfigured(
                    f"no committed offset for {', '.join(map(str, missing))} and "
                    f"consumer_auto_offset_reset={reset!r}: set it to 'earliest' or 'latest'"
                )
        return starts

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        found = await self._client().beginning_offsets([_ak(tp) for tp in tps])
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        found = await self._client().end_offsets([_ak(tp) for tp in tps])
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def log_end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The high watermark: under read_committed, asked of a read_uncommitted reader.

        aiokafka's ``end_offsets`` lists offsets with the consumer's own isolation
        level (the last stable offset under read_committed); switching that level
        on the live consumer would let a concurrent fetch read uncommitted data.
        """
        if self._options.get("isolation_level") != "read_committed":
            return await self.end_offsets(tps)
        reader = await self._log_end_reader.get()
        found = await reader.end_offsets([_ak(tp) for tp in tps])
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def _start_log_end_reader(self) -> AIOKafkaConsumer:
        options = {k: v for k, v in self._options.items()
                   if k not in ("partition_assignment_strategy", "group_instance_id")}
        options.update(group_id=None, isolation_level="read_uncommitted", enable_auto_commit=False)
        reader: AIOKafkaConsumer = await self._transport.start_client(
            lambda: AIOKafkaConsumer(**options), "log-end reader"
        )
        return reader


# -- helpers ---------------------------------------------------------------------
_new_tuple = tuple.__new__


def _record(tp: TopicPartition, record: Any) -> ConsumerRecord:
    """One record of a fetched batch as ours, made while aiokafka iterates the batch (see
    ``compat.build_fetched_records_with``): the engine's hottest conversion.

    Made as its NamedTuple ``__new__`` makes it, without a Python call; headers (rare)
    converted only when the record has some.
    """
    headers = record.headers
    return _new_tuple(ConsumerRecord, (
        tp.topic, tp.partition, record.offset, record.timestamp / 1000.0, record.key, record.value,
        tuple([(str(k), bytes(v)) for k, v in headers]) if headers else (),
    ))


def _records(tp: TopicPartition, fetched: list[Any]) -> list[ConsumerRecord]:
    """The records of one partition as ours: made so already, or aiokafka's converted (a
    batch that arrived while ``getmany`` waited)."""
    if type(fetched[0]) is ConsumerRecord:
        return fetched
    return [_record(tp, record) for record in fetched]


def _ms(seconds: float) -> int:
    return int(round(float(seconds) * 1000))


def _ak(tp: TP) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


def _tps(tps: Iterable[Any]) -> set[TP]:
    return {TP(tp.topic, tp.partition) for tp in tps}


