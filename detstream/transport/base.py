"""The transport seam: what the engine needs from a broker, and nothing more.

Two drivers implement it: ``sim.driver`` (the simulated cluster) and the
aiokafka driver. Method names and shapes follow aiokafka's clients so that the
real driver stays thin and the sim stays honest about what Kafka offers.

Exactly-once (``processing_guarantee='exactly_once'``) adds two things, and
changes nothing for at-least-once clients:

- a *transactional* producer (``create_producer(transactional_id=...)``):
  records and consumer offsets become visible together at
  ``commit_transaction``, or never. Offsets go in with the consumer's
  ``GroupMetadata`` (group, generation, member), so the broker can refuse
  them from a member a rebalance has replaced (KIP-447 zombie fencing).
- consumers with ``isolation_level='read_committed'``: they never see records
  of aborted or still open transactions, and fetch only up to the last stable
  offset. Transaction markers take offsets of their own, so offsets of
  consecutive records may have gaps; ``position`` steps over them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple, Protocol, overload, runtime_checkable

from detstream._types import TP, ConsumerRecord, RecordMetadata

Headers = tuple[tuple[str, bytes], ...]

IsolationLevel = Literal["read_uncommitted", "read_committed"]


class GroupMetadata(NamedTuple):
    """Who commits offsets inside a transaction (Java's ``ConsumerGroupMetadata``).

    The generation and member id let the group coordinator refuse the offsets
    of a member that was replaced by a rebalance, which is what fences a
    zombie when every worker has its own transactional id. A static member
    names its ``group_instance_id`` too, so that the coordinator can tell it
    another consumer took its place (FENCED_INSTANCE_ID).
    """

    group_id: str
    generation: int
    member_id: str | None
    group_instance_id: str | None = None


@runtime_checkable
class RebalanceListener(Protocol):
    """Called by a group consumer around every rebalance (aiokafka's shape).

    A listener may also be an ``AssignmentObserver``; drivers tell it, when it is.
    """

    async def on_partitions_revoked(self, revoked: set[TP]) -> None: ...

    async def on_partitions_assigned(self, assigned: set[TP]) -> None: ...


class AssignmentObserver(Protocol):
    """What the engine's rebalance listener also has: hooks around the group's assignment.

    The member computing the assignment (the leader) calls them around that
    computation (``assignor_wire.plan_observed``), passing the driver's assignor
    object; the engine tells the app's sensors. They must not await. A listener
    without them is simply not told.
    """

    def on_assignment_start(self, assignor: Any) -> Any: ...

    def on_assignment_completed(self, assignor: Any, state: Any) -> None: ...

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None: ...


class Producer(Protocol):
    """Sends records; ``send`` returns once the broker acknowledged the record."""

    #: whether taking a record reads the sender's context (``current_event()`` and
    #: ``current_agent()``: the simulator's write history records each send's origin). The
    #: engine's hand-over task sets them for such a producer only, before each run of records
    #: from another event.
    reads_sender_context: bool

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> RecordMetadata: ...

    async def enqueue(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> asyncio.Future[RecordMetadata]:
        """Queue the record behind every record enqueued before it; the future of its ack.

        Returns once the record is in the client's buffer (it may wait for
        metadata or buffer space first), so a caller that enqueues one record
        at a time keeps their order without a task per record. A record the
        client refuses before queueing raises here; the broker's refusal
        fails the future (``ProducerSendError``).
        """
        ...

    async def forward(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> asyncio.Future[None]:
        """``enqueue`` for a caller that needs no ``RecordMetadata`` (the engine's own sends).

        The record is queued in the same order as by ``enqueue``; what comes
        back is the future of the batch it joined, one future shared by the
        records forwarded into that batch: done once the broker acked the
        whole batch, or failed with the batch's error (a batch fails or
        succeeds as one request). No future or callback per record.
        """
        ...

    def forward_nowait(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
        timestamp: float | None = None, headers: Headers = (),
    ) -> asyncio.Future[None] | None:
        """``forward`` where taking the record needs no wait; None where it would (then the
        caller awaits ``forward``, which queues the record in the same place of the order).

        The engine hands every record over in one task, in call order; this
        saves it a coroutine per record. Refusals raise here as in ``forward``.
        """
        ...

    async def partitions_for(self, topic: str) -> int: ...


class TransactionalProducer(Producer, Protocol):
    """A producer made with a ``transactional_id``.

    ``start`` registers the id with the transaction coordinator, which bumps
    its epoch: an older producer with the same id is fenced (its later
    requests fail with ``ProducerFencedError``) and its open transaction is
    aborted. ``send`` is only allowed between ``begin_transaction`` and the
    end of that transaction.
    """

    transactional_id: str

    async def begin_transaction(self) -> None: ...

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TP, int], group: GroupMetadata
    ) -> None:
        """Add consumer offsets; ``CommitFailedError`` if ``group`` names a stale member."""
        ...

    async def commit_transaction(self) -> None:
        """Wait for the transaction's sends, then make records and offsets visible."""
        ...

    async def abort_transaction(self) -> None: ...


class PartitionReader(Protocol):
    """Reads partitions it is given (``assign``): no group, no commits.

    What a consumer without a ``group_id`` is: table standbys, global tables
    and RPC replies read this way.
    """

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, tps: Iterable[TP]) -> None: ...

    def assignment(self) -> set[TP]: ...

    async def getmany(self, timeout: float) -> dict[TP, list[ConsumerRecord]]: ...

    def pause(self, *tps: TP) -> None: ...

    def resume(self, *tps: TP) -> None: ...

    def seek(self, tp: TP, offset: int) -> None: ...

    async def position(self, tp: TP) -> int:
        """Next offset to fetch: past the records returned and any markers after them."""
        ...

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]: ...

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]: ...

    async def log_end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Where each log ends (the high watermark), whatever this consumer's isolation.

        Under read_committed ``end_offsets`` is the last stable offset: records
        of open transactions lie beyond it, and so may committed records
        written after such a transaction began. Recovery must reach this end.
        """
        ...


class Consumer(PartitionReader, Protocol):
    """A group member: partitions come from the group (``subscribe``), offsets are committed.

    The conductor's consumer. Everything a ``PartitionReader`` does, plus the
    group protocol: the rebalance listener, generations, standby requests,
    commits and where a new owner starts.
    """

    def subscribe(self, topics: Iterable[str], listener: RebalanceListener) -> None: ...

    def request_standbys(self, topics: Iterable[str], replicas: int) -> None:
        """Ask the group leader for ``replicas`` standby copies of these (changelog) topics.

        Travels in the member's subscription ``user_data`` at the next join;
        the member's share shows in ``standby_assignment``.
        """
        ...

    def standby_assignment(self) -> set[TP]:
        """Changelog partitions the leader gave this member to keep warm, not to fetch.

        Set before the listener's ``on_partitions_assigned`` is called. This
        consumer does not fetch them: the engine's standby reader does.
        """
        ...

    def advertise_url(self, url: str | None) -> None:
        """Tell the group leader this member's web URL at the next join (``app.router``)."""
        ...

    def partition_urls(self) -> dict[TP, str]:
        """The web URL of the member processing each partition, as the last assignment said.

        Set with the assignment (before the listener's ``on_partitions_assigned``);
        partitions of members that told no URL are missing.
        """
        ...

    @property
    def generation(self) -> int: ...

    @property
    def expelled(self) -> bool:
        """Whether the consumer learned that its group no longer knows its membership.

        An unknown member id or a stale generation, answered to a heartbeat or
        a commit: the session expired, or a rebalance went on without it. The
        consumer then joins again as a new member, and aiokafka (0.14) calls
        ``on_partitions_revoked`` with the old assignment first, where Kafka's
        Java consumer calls ``onPartitionsLost``: those partitions are another
        member's already, so nothing may be committed, or written to their
        changelogs, for them. False again once the consumer joined.
        """
        ...

    @property
    def membership_in_doubt(self) -> bool:
        """Whether the group may have expelled this member without its knowing yet.

        True while joined (not ``expelled``) when no heartbeat sent in the
        last half session timeout was answered (the join's own answer counts
        as one): the process was paused, its loop blocked, or it is cut off
        from its group coordinator. The group expels a member a session
        timeout after the last heartbeat it *received*, so a write sent
        before half of that has passed since the last answered one has the
        other half to land while the member still owns its partitions. At
        least once, a zombie's table writes would land in changelogs its
        partitions' new owner writes too, and a count would go back: the
        engine holds them until the doubt ends (a heartbeat answered, or
        ``expelled``).
        """
        ...

    def group_metadata(self) -> GroupMetadata:
        """This member's group, generation and member id, for transactional offsets."""
        ...

    async def commit(self, offsets: Mapping[TP, int]) -> None: ...

    async def committed(self, tp: TP) -> int | None: ...

    async def start_offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Where a new owner of each partition starts: its committed offset, else the reset point.

        What the client itself does when it is given a partition
        (``auto_offset_reset`` when nothing is committed). The engine seeks
        there when it dropped records fetched before it could take them.
        """
        ...

    def known_offsets(self, tps: Iterable[TP]) -> dict[TP, tuple[int, int]]:
        """(position, log end) of each partition as this client knows them, without a request.

        The position is the next offset to fetch; the log end is what the
        last fetch response said (aiokafka's ``highwater``, or its last
        stable offset under read_committed). A partition whose position or
        log end is not known yet (not fetched since it was assigned) is left
        out. For lag metrics, read at every scrape: it must stay cheap.
        """
        ...


class Admin(Protocol):
    """Topic administration."""

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> bool:
        """Create ``name``; False if it already existed (not an error)."""
        ...

    async def partitions_for(self, name: str) -> int | None: ...

    async def list_topics(self) -> set[str]:
        """Names of the topics on the broker, internal ones (``__consumer_offsets``) excluded."""
        ...


class Transport(Protocol):
    """Factory for the three clients of one broker connection."""

    def create_producer(
        self,
        *,
        client_id: str,
        transactional_id: str | None = None,
        transaction_timeout: float = 60.0,
    ) -> Producer:
        """A plain producer, or a ``TransactionalProducer`` when ``transactional_id`` is given."""
        ...

    @overload
    def create_consumer(
        self, *, client_id: str, group_id: str, isolation_level: IsolationLevel = ...,
        group_instance_id: str | None = ...,
    ) -> Consumer: ...

    @overload
    def create_consumer(
        self, *, client_id: str, group_id: None, isolation_level: IsolationLevel = ...,
    ) -> PartitionReader: ...

    def create_consumer(
        self,
        *,
        client_id: str,
        group_id: str | None,
        isolation_level: IsolationLevel = "read_uncommitted",
        group_instance_id: str | None = None,
    ) -> Consumer | PartitionReader:
        """A group member (``group_id``), or a reader of assigned partitions (None).

        ``group_instance_id`` makes the member static (KIP-345): a consumer
        joining with the instance id of a member the group still has takes
        its place (assignment and generation) without a rebalance, and the
        replaced one is fenced (``FencedInstanceIdError`` from ``getmany``
        and ``commit``); a static member does not leave the group when it
        stops. The engine passes it only when set (a transport of your own
        need not know the keyword).
        """
        ...

    def create_admin(self, *, client_id: str) -> Admin: ...
