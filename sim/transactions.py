"""The simulated cluster's transaction coordinator, with Kafka's semantics.

A transactional id owns a producer id and an *epoch*. ``init_producer`` (a
producer with that id starting) bumps the epoch, aborts the id's open
transaction and so fences the previous producer: its later sends, offsets and
commits fail with ``ProducerFencedError``. That is how a restarted worker
stops its own zombie.

A transaction begins on the coordinator with its first record or offsets (as
``AddPartitionsToTxn`` begins it in Kafka: an empty transaction costs
nothing). Its records are appended to the partition logs at once and are
invisible to ``read_committed`` consumers until the transaction ends; ending
it writes a control marker (an offset no consumer receives) to each partition
it wrote, and a commit makes the offsets it carries the group's committed
offsets, atomically with its records.

Offsets are checked against the group when they are added: a member of an
older generation, or one the group expelled, may add none (KIP-447), and its
transaction must abort. While an open transaction holds offsets of a
partition, a read_committed consumer taking that partition over waits for the
transaction to end before reading the committed offset (KIP-447's stable
offset fetch); else it would start from an offset about to move.

A transaction still open ``timeout`` seconds after it began is aborted by the
coordinator, which bumps the epoch too: the stalled producer learns it was
fenced. As in Kafka (``txnStartTimestamp + txnTimeoutMs < now``), the clock
runs from the transaction's start, not from its last activity: a producer
that keeps one transaction open while it keeps sending is aborted as well. Trace
lines (actor: the transactional id): txn-init, txn-begin, txn-commit,
txn-abort (with reason=fenced|timeout when the coordinator did it) and
txn-fenced (a request of a fenced producer, refused).

The coordinator lives on the broker leading the id's partition of
``__transaction_state`` (``sim.brokers``); producers find it and retry while
it is down. It also hands out producer ids to idempotent producers without a
transactional id (Kafka's ``InitProducerId``). A transactional producer is
idempotent too: its batches carry its producer id, epoch and sequence numbers.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from detstream import mutants
from detstream._types import TP
from detstream.errors import ProducerFencedError
from detstream.transport.base import GroupMetadata

if TYPE_CHECKING:
    from .cluster import SimCluster

#: the coordinator serves a producer of an older epoch: a zombie can still end transactions.
ZOMBIE_EPOCH_ACCEPTED = mutants.register(
    "zombie-epoch-accepted",
    "the transaction coordinator serves requests of a transactional producer's older epoch",
)

@dataclass(eq=False)
class Transaction:
    """One open transaction: the partitions it wrote and the offsets it carries."""

    number: int
    #: offsets of its records, per partition.
    partitions: dict[TP, list[int]] = field(default_factory=dict)
    group: GroupMetadata | None = None
    offsets: dict[TP, int] = field(default_factory=dict)
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class TransactionalId:
    """The coordinator's state for one transactional id."""

    name: str
    producer_id: int
    epoch: int
    timeout: float
    open: Transaction | None = None
    count: int = 0


class TransactionCoordinator:
    """Every transactional id of one simulated cluster."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self.trace = cluster.trace
        self.ids: dict[str, TransactionalId] = {}
        self._producer_ids = itertools.count(1)
        self._ended = asyncio.Event()

    # -- producers -----------------------------------------------------------------
    def new_producer_id(self) -> int:
        """``InitProducerId`` without a transactional id: a fresh id for an idempotent producer."""
        return next(self._producer_ids)

    def init_producer(self, name: str, *, timeout: float) -> tuple[int, int]:
        """Register a producer for ``name``: returns (producer id, epoch), fencing older ones."""
        state = self.ids.get(name)
        if state is None:
            state = TransactionalId(name, next(self._producer_ids), 0, timeout)
            self.ids[name] = state
        else:
            state.epoch += 1
            state.timeout = timeout
            if state.open is not None:
                self._end(state, commit=False, reason="fenced")
        self.trace.record(name, "txn-init", producer=state.producer_id, epoch=state.epoch)
        return state.producer_id, state.epoch

    def check(self, name: str, epoch: int, request: str) -> TransactionalId:
        """The id's state, or ``ProducerFencedError`` if ``epoch`` is not its current one."""
        state = self.ids.get(name)
        if state is None:
            raise ProducerFencedError(f"transactional id {name!r} was never initialised")
        if epoch != state.epoch and not (
                epoch < state.epoch and mutants.ACTIVE and mutants.on(ZOMBIE_EPOCH_ACCEPTED)):
            self.trace.record(name, "txn-fenced", epoch=epoch, current=state.epoch, request=request)
            raise ProducerFencedError(
                f"producer {name!r} epoch {epoch} is fenced: epoch {state.epoch} is current "
                "(a newer producer with this transactional id started, or the coordinator "
                "aborted this producer's transaction on timeout)"
            )
        return state

    # -- inside a transaction ----------------------------------------------------------
    def appended(self, state: TransactionalId, tp: TP, offsets: Iterable[int]) -> None:
        """Records of ``state``'s transaction went to ``tp`` at ``offsets``."""
        txn = self._begin(state)
        txn.partitions.setdefault(tp, []).extend(offsets)

    def add_offsets(
        self, name: str, epoch: int, offsets: Mapping[TP, int], group: GroupMetadata
    ) -> None:
        """``send_offsets_to_transaction``: offsets of a current group member join the transaction."""
        state = self.check(name, epoch, "add-offsets")
        self.cluster.group(group.group_id).check_committer(
            group.member_id, group.generation, group.group_instance_id, "txn-offset-commit"
        )
        txn = self._begin(state)
        txn.group = group
        txn.offsets.update(offsets)

    # -- the wire's transactional requests (aiokafka's versions) ------------------------------
    def add_partitions(self, name: str, epoch: int, tps: Iterable[TP]) -> None:
        """``AddPartitionsToTxn``: the transaction begins, and ends with a marker in each of ``tps``.

        As in Kafka, a partition added but never written still gets a marker.
        """
        txn = self._begin(self.check(name, epoch, "add-partitions"))
        for tp in tps:
            txn.partitions.setdefault(tp, [])

    def add_group(self, name: str, epoch: int, group_id: str) -> None:
        """``AddOffsetsToTxn``: the transaction will carry offsets of ``group_id``."""
        txn = self._begin(self.check(name, epoch, "add-offsets"))
        if txn.group is None or txn.group.group_id != group_id:
            txn.group = GroupMetadata(group_id, -1, None)

    def add_unchecked_offsets(
        self, name: str, epoch: int, group_id: str, offsets: Mapping[TP, int]
    ) -> None:
        """``TxnOffsetCommit`` v0-v2, or v3 naming no member: offsets with nothing to check.

        KIP-447 added the member in v3. aiokafka 0.14 alone sends v0, so only
        the producer's epoch fences these offsets: a zombie whose
        transactional id nobody took over commits them. The Kafka driver
        sends v3 with the member (``detstream.transport.kafka.member_offsets``).
        """
        txn = self._begin(self.check(name, epoch, "txn-offset-commit"))
        txn.group = GroupMetadata(group_id, -1, None)
        txn.offsets.update(offsets)

    def end(self, name: str, epoch: int, *, commit: bool) -> None:
        """Commit or abort the id's open transaction (nothing to do if none began)."""
        state = self.check(name, epoch, "commit" if commit else "abort")
        if state.open is not None:
            self._end(state, commit=commit, reason=None)

    def open_ids(self) -> list[str]:
        """Transactional ids with a transaction open now.

        A producer that died or left for good with a transaction open holds
        it until the coordinator aborts it on its timeout: until then the
        partitions it wrote are stuck at their last stable offset for
        read_committed readers (what a run's final read is).
        """
        return sorted(name for name, state in self.ids.items() if state.open is not None)

    # -- stable offsets ------------------------------------------------------------------
    def pending_offsets(self, group_id: str, tps: Iterable[TP]) -> list[TP]:
        """Partitions of ``tps`` whose offsets an open transaction of ``group_id`` holds."""
        wanted = set(tps)
        pending = set()
        for state in self.ids.values():
            txn = state.open
            if txn is not None and txn.group is not None and txn.group.group_id == group_id:
                pending.update(wanted.intersection(txn.offsets))
        return sorted(pending)

    async def wait_stable(self, group_id: str, tps: Iterable[TP]) -> None:
        """Return once no open transaction holds offsets of ``tps`` for ``group_id``."""
        tps = list(tps)
        while self.pending_offsets(group_id, tps):
            await self._ended.wait()

    # -- internals -------------------------------------------------------------------------
    def _begin(self, state: TransactionalId) -> Transaction:
        txn = state.open
        if txn is None:
            state.count += 1
            txn = state.open = Transaction(state.count)
            self.trace.record(state.name, "txn-begin", epoch=state.epoch, txn=txn.number)
            loop = asyncio.get_running_loop()
            txn.timer = loop.call_later(state.timeout, self._expire, state, txn)
        return txn

    def _expire(self, state: TransactionalId, txn: Transaction) -> None:
        if state.open is txn:
            state.epoch += 1
            self._end(state, commit=False, reason="timeout")

    def _end(self, state: TransactionalId, *, commit: bool, reason: str | None) -> None:
        txn, state.open = state.open, None
        assert txn is not None
        if txn.timer is not None:
            txn.timer.cancel()
        for tp in sorted(txn.partitions):
            self.cluster.write_marker(tp, state.producer_id, commit=commit, offsets=txn.partitions[tp])
        fields: dict[str, object] = dict(
            epoch=state.epoch, txn=txn.number, tps=[str(tp) for tp in sorted(txn.partitions)],
            offsets=len(txn.offsets),
        )
        if reason is not None:
            fields["reason"] = reason
        self.trace.record(state.name, "txn-commit" if commit else "txn-abort", **fields)
        if commit and txn.group is not None and txn.offsets:
            group = self.cluster.group(txn.group.group_id)
            group.store(txn.group.member_id, txn.offsets)
        self._ended.set()
        self._ended = asyncio.Event()
        self.cluster.wake_fetchers()
