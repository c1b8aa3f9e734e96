"""The ``sim://`` producers: plain, idempotent and transactional, with aiokafka's retries.

Split from ``sim.driver`` (which re-exports them) to keep files small.

``SimProducer`` sends in per-partition batches, as a Kafka producer does, to
the broker its metadata names as the partition's leader. A retriable error
(not the leader, leader not available, the broker down, a request lost by a
drop fault) makes it back off ``retry_backoff``, refresh its metadata and
send the batch again, until ``delivery_timeout``. Errors that are not
retriable fail the send's future, as aiokafka's do (the flush waiting on it
does not raise): a record larger than ``max_request_size`` (the app's
``producer_max_request_size``) is refused before it is sent, a batch larger
than its topic's ``max.message.bytes`` by the leader, and a send to an
unknown topic when auto-creation is off; each is counted as ``send-refused``
and traced. With ``idempotent=True``
(aiokafka's ``enable_idempotence``, the app's ``producer_enable_idempotence``)
it first gets a producer id, and each batch carries the id, the epoch and
per-partition sequence numbers, so the leader appends a retried batch only
once (``sim.idempotence``).

``SimTransactionalProducer`` behaves as aiokafka's
``AIOKafkaProducer(transactional_id=...)``: ``start`` registers the id with
the cluster's transaction coordinator (fencing any older producer of the id),
``begin_transaction`` is local, sends are refused outside a transaction,
``commit_transaction`` first waits for the transaction's sends, and every
request of a fenced producer fails with ``ProducerFencedError``. It is always
idempotent, with the producer id and epoch of its transactional id.
Coordinator requests retry while the coordinator's broker is down or moved.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from detstream._types import TP, RecordMetadata
from detstream.clock import wall_time
from detstream.errors import ProducerSendError
from detstream.partitioner import partition_for_key
from detstream.transport.base import GroupMetadata, Headers

from .brokers import GROUP_COORDINATOR_TOPIC, TXN_COORDINATOR_TOPIC, coordinator_partition
from .idempotence import BatchId
from .kafka_errors import (
    ConnectionClosedError,
    CoordinatorNotAvailableError,
    DeliveryTimeoutError,
    MessageSizeTooLargeError,
    ProducerClosedError,
    RetriableError,
    SenderDeadError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from .metadata import ClientMetadata
from .network import Link

if TYPE_CHECKING:
    from .cluster import SimCluster
    from .history import Write

__all__ = ["Link", "SimProducer", "SimTransactionalProducer"]

T = TypeVar("T")

#: aiokafka's size estimate of a record: a v2 batch header, plus the largest record overhead.
BATCH_HEADER = 61
RECORD_OVERHEAD = 21
#: aiokafka's and Faust's default ``max_request_size``.
MAX_REQUEST_SIZE = 1_000_000


def record_size(key: bytes | None, value: bytes | None, headers: Headers = ()) -> int:
    """The size a producer checks against ``max_request_size`` (aiokafka's upper estimate)."""
    size = BATCH_HEADER + RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    if headers:
        size += sum(len(k.encode()) + len(v or b"") for k, v in headers)
    return size


class SimProducer:
    """Sends in per-partition batches to partition leaders; keyed records use Kafka's murmur2.

    Like a Kafka producer, records bound for one partition queue up while a
    request for that partition is in flight and go out together in the next
    one: order per partition is kept, and a burst costs one round trip. A
    batch keeps its sequence numbers across retries.
    """

    transactional = False
    #: the write history reads each send's origin (the sender's event and agent).
    reads_sender_context = True

    def __init__(
        self, cluster: SimCluster, name: str, link: Link | None = None, *, idempotent: bool = False,
        max_request_size: int = MAX_REQUEST_SIZE,
        stop_budget: Callable[[], float | None] = lambda: None,
    ) -> None:
        self._cluster = cluster
        #: how long ``stop`` may wait for the cluster (the app's stop budget; None: unbounded).
        self._stop_budget = stop_budget
        #: ``stop`` gave up on records still queued or in flight (they fail, not die silently).
        self._closed_unsent = False
        self._name = name
        self._link = link or Link(name)
        self._metadata = ClientMetadata(cluster, self._link)
        self.idempotent = idempotent
        self.max_request_size = max_request_size
        self._label = cluster.history.new_producer(name)
        self._producer_id: int | None = None
        self._epoch = 0
        self._sequences: dict[TP, int] = {}
        self._queued: dict[TP, list[_Pending]] = {}
        #: per partition, the future shared by the records ``forward`` put in the queued batch.
        self._batch_acks: dict[TP, asyncio.Future[None]] = {}
        self._senders: dict[TP, asyncio.Task[None]] = {}
        #: each partition's sender task name (a lone record's send makes a task for it).
        self._sender_names: dict[TP, str] = {}
        self._tps: dict[str, dict[int, TP]] = {}
        self._round_robin = itertools.count()
        #: why the sender died, if it did (a transactional producer: ``SenderDeadError``).
        self._sender_dead: str | None = None
        #: brokers whose outage this producer's coordinator requests met (drawn once each).
        self._outages_met: set[int | None] = set()
        #: topics whose metadata this client has (``ClientMetadata.learn``).
        self._known_topics = self._metadata.topics
        #: per topic, the metadata wait every send to it shares until it is known.
        self._learning: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        if self.idempotent:
            await self._ensure_producer_id()

    async def stop(self) -> None:
        """Send what is queued, then close; under a stop budget, what is unsent by then fails.

        As aiokafka under detstream's closing (``transport/kafka_closing``):
        with the cluster unreachable, retrying until the delivery timeout
        would outlast the worker's shutdown timeout.
        """
        senders: list[asyncio.Future[None]] = [t for _, t in sorted(self._senders.items()) if not t.done()]
        senders += [t for _, t in sorted(self._learning.items()) if not t.done()]  # metadata waits
        if not senders:
            return
        budget = self._stop_budget()
        if budget is None:
            await asyncio.gather(*senders, return_exceptions=True)
            return
        await asyncio.wait(senders, timeout=budget)
        self._closed_unsent = True
        unsent = [sender for sender in senders if not sender.done()]  # partition order, not a set's
        for sender in unsent:
            sender.cancel()
        await asyncio.gather(*unsent, return_exceptions=True)

    def busy(self) -> bool:
        """Whether records are queued or a batch is in flight (a crash now is mid-batch)."""
        return any(self._queued.values()) or any(not t.done() for t in self._senders.values())

    async def partitions_for(self, topic: str) -> int:
        """The topic's partition count; from its metadata, waited for if not known (aiokafka's)."""
        if topic not in self._known_topics:
            await self._metadata_for(topic)
        return self._partition_count(topic)

    def _partition_count(self, topic: str) -> int:
        count = self._cluster.partitions_for(topic, by=self._name, create=True)
        if count is None:
            raise UnknownTopicOrPartitionError(
                f"topic {topic!r} does not exist and auto-creation is disabled"
            )
        return count

    def _tp(self, topic: str, partition: int) -> TP:
        """One TP object per partition, shared by every record sent to it (fewer objects to
        keep: the write history holds one per record)."""
        by_partition = self._tps.get(topic)
        if by_partition is None:
            by_partition = self._tps[topic] = {}
        tp = by_partition.get(partition)
        if tp is None:
            tp = by_partition[partition] = TP(topic, partition)
        return tp

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> RecordMetadata:
        """Queue the record for its partition's next batch; the broker's ack, or the refusal."""
        ack = await self.enqueue(
            topic, key=key, value=value, partition=partition, timestamp=timestamp, headers=headers
        )
        return await ack

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
        """Queue the record behind those enqueued before it; the future of its ack or refusal.

        A record the client refuses before queueing (too large, unknown
        topic) raises here, as aiokafka's ``send`` does. The client's first
        send to a topic waits for the topic's metadata first (``_learn``), as
        aiokafka's does.
        """
        if topic not in self._known_topics:
            await self._learn(topic, key, value, partition)
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self._queue(topic, key, value, partition, timestamp, headers, future)
        return future

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
        """Queue the record as ``enqueue`` does; the future of the batch it joined (see the seam)."""
        if topic not in self._known_topics:
            await self._learn(topic, key, value, partition)
        return self._forward_now(topic, key, value, partition, timestamp, headers)

    def forward_nowait(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
        timestamp: float | None = None, headers: Headers = (),
    ) -> asyncio.Future[None] | None:
        """``forward`` without a coroutine; None if it would wait (the topic's metadata)."""
        if topic not in self._known_topics:
            return None
        return self._forward_now(topic, key, value, partition, timestamp, headers)

    def _forward_now(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Headers,
    ) -> asyncio.Future[None]:
        tp = self._queue(topic, key, value, partition, timestamp, headers, None)
        ack = self._batch_acks.get(tp)
        if ack is None:
            ack = self._batch_acks[tp] = asyncio.get_running_loop().create_future()
        return ack

    async def _learn(self, topic: str, key: bytes | None, value: bytes | None, partition: int | None) -> None:
        """A send's wait for ``topic``'s metadata (``_metadata_for``); a send it ends is refused."""
        try:
            await self._metadata_for(topic)
        except (UnknownTopicOrPartitionError, ProducerClosedError) as exc:
            raise self._refuse_early(topic, partition, key, value, exc) from None

    async def _metadata_for(self, topic: str) -> None:
        """Wait for ``topic``'s metadata, as aiokafka's ``send`` does for a topic it does not know.

        Metadata requests over the client's link, one after the other (a
        backoff between them), until one is answered: a cut off host holds
        them, so a send waits for as long as the cut lasts, with nothing
        queued yet (what a commit's flush must not wait for blindly). Past
        the request timeout, ``UnknownTopicOrPartitionError`` as aiokafka's;
        ``ProducerClosedError`` if a stop under a budget gave the wait up.
        Concurrent waits for the topic share one and go on in the order
        they came.
        """
        learning = self._learning.get(topic)
        if learning is None:
            learning = self._learning[topic] = asyncio.ensure_future(self._metadata.learn(topic))
            learning.add_done_callback(partial(self._learned, topic))
        try:
            await asyncio.shield(learning)
        except asyncio.CancelledError:
            if not (learning.cancelled() and self._closed_unsent):
                raise  # this caller was cancelled, not the wait
            raise ProducerClosedError(f"{self._name} closed with a send to {topic!r} unsent, "
                                      "still waiting for the topic's metadata") from None

    def _learned(self, topic: str, learning: asyncio.Future[None]) -> None:
        """The wait is over: the next unknown-topic send asks again. Its error is taken here,
        as every sender waiting on it may have died first (a crash)."""
        self._learning.pop(topic, None)
        if not learning.cancelled():
            learning.exception()

    def _queue(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Headers, future: asyncio.Future[RecordMetadata] | None,
    ) -> TP:
        """Put the record in its partition's next batch (a sender task drains it); its partition."""
        self._check_can_send()
        state = self._cluster.topics.get(topic)  # (``_partition_count``'s common case, inline)
        try:
            count = len(state.logs) if state is not None else self._partition_count(topic)
        except UnknownTopicOrPartitionError as exc:
            raise self._refuse_early(topic, partition, key, value, exc) from None
        size = (record_size(key, value, headers) if headers else  # (its common case, inline)
                BATCH_HEADER + RECORD_OVERHEAD + len(key or b"") + len(value or b""))
        if size > self.max_request_size:
            raise self._refuse_early(topic, partition, key, value, MessageSizeTooLargeError(
                f"the record for {topic!r} is {size} bytes when serialized, more than the "
                f"producer's max_request_size {self.max_request_size}"
            ))
        if partition is None:
            partition = (
                partition_for_key(key, count) if key is not None else next(self._round_robin) % count
            )
        tp = self._tps.get(topic, _NO_TPS).get(partition) or self._tp(topic, partition)
        stamp = wall_time() if timestamp is None else timestamp
        write = self._cluster.history.sent(
            self._label, tp, key, value, idempotent=self.idempotent, transactional=self.transactional
        )
        pending = _new_pending(_Pending, (key, value, stamp, headers, future, write, size))
        queue = self._queued.get(tp)
        if queue is None:
            self._queued[tp] = [pending]
        else:
            queue.append(pending)
        sender = self._senders.get(tp)
        if sender is None or sender.done():
            name = self._sender_names.get(tp)
            if name is None:
                name = self._sender_names[tp] = f"{self._name}-send-{tp}"
            self._senders[tp] = asyncio.get_running_loop().create_task(self._drain(tp), name=name)
        return tp

    async def _drain(self, tp: TP) -> None:
        """Send what is queued for ``tp``, one request per batch, until nothing is left."""
        while self._queued.get(tp):
            batch, self._queued[tp] = self._queued[tp], []
            ack = self._batch_acks.pop(tp, None)  # of the records forwarded into this batch
            try:
                metas = await self._send_batch(tp, batch)
            except ConnectionError:
                return  # the process died with these records in its buffer
            except asyncio.CancelledError:
                if not self._closed_unsent:
                    raise  # the process died: nothing of it runs any more
                # closed under a stop deadline: the records fail, unsent, never acked
                closed = ProducerClosedError(f"{self._name} closed with records for {tp} unsent")
                futures: list[asyncio.Future[Any] | None] = [
                    item.future for item in batch + self._queued.pop(tp, [])
                ]
                futures += [ack, self._batch_acks.pop(tp, None)]
                for future in futures:
                    if future is not None and not future.done():
                        future.set_exception(closed)
                        future.exception()  # the stop that closed it reported it
                raise
            except Exception as exc:  # refused for good: too large, fenced, out of order, timed out
                self._on_batch_failed()
                for item in batch:
                    self._refused(item.write, exc)
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(exc)
                if ack is not None and not ack.done():
                    ack.set_exception(exc)
                continue
            for item, meta in zip(batch, metas, strict=True):
                item.write.acked = True
                if item.future is not None and not item.future.done():
                    item.future.set_result(meta)
            if ack is not None and not ack.done():
                ack.set_result(None)

    def _refuse_early(
        self, topic: str, partition: int | None, key: bytes | None, value: bytes | None,
        exc: Exception,
    ) -> Exception:
        """A record the client refuses before queueing it: recorded as a refused write."""
        tp = TP(topic, partition if partition is not None else -1)
        write = self._cluster.history.sent(
            self._label, tp, key, value, idempotent=self.idempotent, transactional=self.transactional
        )
        self._refused(write, exc)
        return exc

    def _refused(self, write: Write, exc: Exception) -> None:
        """A send failed for good: the history says so; a refusal proper is counted and traced."""
        write.refused = type(exc).__name__
        if isinstance(exc, (MessageSizeTooLargeError, UnknownTopicOrPartitionError,
                            TopicAuthorizationFailedError)):
            self._cluster.stats["send-refused"] += 1
            self._cluster.trace.record(
                self._name, "send-refused", tp=write.tp, error=write.refused, value_size=len(write.value or b"")
            )

    async def _send_batch(self, tp: TP, batch: Sequence[_Pending]) -> list[RecordMetadata]:
        """Produce ``batch`` to ``tp``'s leader, retrying retriable errors until the delivery timeout."""
        batch_id = await self._batch_id(tp, len(batch))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._cluster.config.delivery_timeout

        async def attempt() -> list[RecordMetadata]:
            leader = self._metadata.leader(tp)

            def at_leader() -> list[RecordMetadata]:
                self._authorize(tp)
                return self._cluster.produce(
                    self._name, tp, leader, batch, batch=batch_id, transaction=self._transaction()
                )

            # sent into a cut, it waits in the kernel: applied at the heal if we still wait
            return await self._cluster.network.request(self._link, "produce", at_leader)

        return await self._retry(attempt, "produce", deadline=deadline, tp=tp)

    def _authorize(self, tp: TP) -> None:
        """At the broker: a ``refuse`` fault on this host refuses the produce request."""
        if self._link.conditions.refusing(asyncio.get_running_loop().time()):
            raise TopicAuthorizationFailedError(
                f"{self._name} may not write {tp.topic} (refuse fault: authorization denied)"
            )

    async def _batch_id(self, tp: TP, count: int) -> BatchId | None:
        """Claim ``count`` sequence numbers of ``tp`` for a batch (idempotent producers)."""
        if not self.idempotent:
            return None
        producer_id = await self._ensure_producer_id()
        sequence = self._sequences.get(tp, 0)
        self._sequences[tp] = sequence + count
        return BatchId(producer_id, self._epoch, sequence)

    async def _ensure_producer_id(self) -> int:
        """An idempotent producer's id (``InitProducerId``), fetched once, retried as any request."""
        while self._producer_id is None:
            self._producer_id = await self._retry(
                lambda: self._cluster.network.request(
                    self._link, "init-producer-id", self._cluster.transactions.new_producer_id
                ),
                "init-producer-id",
            )
            self._epoch = 0
            self._sequences.clear()
        return self._producer_id

    def _on_batch_failed(self) -> None:
        """A batch failed for good: its sequence numbers leave a gap, so take a new producer id."""
        if self.idempotent:
            self._producer_id = None

    def _fail_queued(self, exc: Exception) -> None:
        """Fail every record still queued (not in flight) with ``exc``: it will never be sent."""
        for tp in sorted(self._queued):
            for item in self._queued[tp]:
                self._refused(item.write, exc)
                if item.future is not None and not item.future.done():
                    item.future.set_exception(exc)
        self._queued.clear()
        for tp in sorted(self._batch_acks):
            ack = self._batch_acks[tp]
            if not ack.done():
                ack.set_exception(exc)
        self._batch_acks.clear()

    def _transaction(self) -> tuple[str, int] | None:
        return None

    def _check_can_send(self) -> None:
        """Raise if a send may not be made now (a transactional producer: outside a transaction)."""

    async def _retry(
        self, attempt: Callable[[], Awaitable[T]], what: str, *,
        deadline: float | None = None, tp: TP | None = None,
    ) -> T:
        """Run ``attempt`` until it does not fail retriably: back off and refresh metadata between.

        A request that succeeded only after retries is traced once (``retried``,
        with the number of attempts and the last error), not every attempt.
        """
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        while True:
            try:
                result = await attempt()
            except RetriableError as exc:
                failures.append(type(exc).__name__)
                if self._sender_dead is not None:  # nobody retries it any more
                    raise SenderDeadError(self._sender_dead) from exc
                if deadline is not None and loop.time() >= deadline:
                    raise DeliveryTimeoutError(
                        f"{self._name}: not delivered within the delivery timeout: {exc}"
                    ) from exc
            else:
                if failures:
                    where = {"tp": tp} if tp is not None else {}
                    self._cluster.trace.record(
                        self._name, "retried", request=what, **where, attempts=len(failures) + 1,
                        error=failures[-1],
                    )
                return result
            try:
                await self._metadata.refresh()
            except RetriableError:
                pass  # the metadata request was lost too: the next attempt tells


#: ``_Pending(...)`` without the named tuple's Python-level ``__new__`` (one per record sent).
_new_pending = tuple.__new__


#: (``self._tps.get(topic, _NO_TPS).get(partition)``: a topic sent to for the first time)
_NO_TPS: dict[int, TP] = {}


class _Pending(NamedTuple):
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: Headers
    #: the ack of an ``enqueue``d record (None: forwarded; its batch's future says).
    future: asyncio.Future[RecordMetadata] | None
    write: Write
    #: ``record_size`` (the broker sums a batch's from it).
    size: int


class SimTransactionalProducer(SimProducer):
    """One transactional id's producer (``create_producer(transactional_id=...)``)."""

    transactional = True

    def __init__(
        self,
        cluster: SimCluster,
        name: str,
        link: Link,
        *,
        transactional_id: str,
        transaction_timeout: float,
        max_request_size: int = MAX_REQUEST_SIZE,
        stop_budget: Callable[[], float | None] = lambda: None,
    ) -> None:
        super().__init__(
            cluster, name, link, idempotent=True, max_request_size=max_request_size,
            stop_budget=stop_budget,
        )
        self.transactional_id = transactional_id
        self._timeout = transaction_timeout
        self._coordinator_tp = coordinator_partition(TXN_COORDINATOR_TOPIC, transactional_id)
        self._in_transaction = False

    async def start(self) -> None:
        """``init_transactions``: a new epoch for the id; older producers are fenced."""
        if self._producer_id is None:
            producer_id, epoch = await self._coordinator(
                "init-transactions",
                lambda: self._cluster.transactions.init_producer(
                    self.transactional_id, timeout=self._timeout
                ),
            )
            self._producer_id, self._epoch = producer_id, epoch
            self._sequences.clear()

    async def begin_transaction(self) -> None:
        self._check_alive()
        if self._producer_id is None:
            raise ProducerSendError("begin_transaction() before start()")
        if self._in_transaction:
            raise ProducerSendError(f"{self.transactional_id}: a transaction is already open")
        self._in_transaction = True

    def _check_can_send(self) -> None:
        if self._sender_dead is not None or not self._in_transaction:  # (per record: one test)
            self._check_alive()
            self._require_transaction("send")

    async def _ensure_producer_id(self) -> int:
        if self._producer_id is None:
            raise ProducerSendError(f"{self.transactional_id}: send before start()")
        return self._producer_id

    def _on_batch_failed(self) -> None:
        pass  # fenced (or refused): this producer sends nothing more that could follow

    def _transaction(self) -> tuple[str, int] | None:
        self._require_transaction("send")
        return (self.transactional_id, self._epoch)

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TP, int], group: GroupMetadata
    ) -> None:
        """``AddOffsetsToTxn`` to the transaction coordinator, then ``TxnOffsetCommit`` to the group's."""
        self._check_alive()
        self._require_transaction("send_offsets_to_transaction")
        transactions = self._cluster.transactions
        await self._coordinator(
            "add-offsets-to-txn",
            lambda: transactions.check(self.transactional_id, self._epoch, "add-offsets"),
        )
        await self._link.reach_group(self._cluster.trace, "txn-offset-commit")
        await self._coordinator(
            "txn-offset-commit",
            lambda: transactions.add_offsets(self.transactional_id, self._epoch, offsets, group),
            where=coordinator_partition(GROUP_COORDINATOR_TOPIC, group.group_id),
        )

    async def commit_transaction(self) -> None:
        await self._end(commit=True)

    async def abort_transaction(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        self._check_alive()
        self._require_transaction("commit_transaction" if commit else "abort_transaction")
        senders = [t for _, t in sorted(self._senders.items()) if not t.done()]
        if senders:  # the transaction's records go out before its marker
            await asyncio.gather(*senders, return_exceptions=True)
        try:
            await self._coordinator(
                "end-transaction",
                lambda: self._cluster.transactions.end(self.transactional_id, self._epoch, commit=commit),
            )
        finally:
            self._in_transaction = False

    async def _coordinator(self, what: str, call: Callable[[], T], *, where: TP | None = None) -> T:
        """A request to the id's transaction coordinator (or the coordinator of ``where``).

        The coordinator is found again after each retriable error.

        A crashed process's requests never arrive (``ConnectionError``). A
        retry after a lost response is harmless: ``end`` of a transaction
        already ended does nothing, offsets added twice are the same offsets.
        """
        partition = where or self._coordinator_tp

        def at_coordinator(broker: int | None) -> T:
            self._cluster.brokers.serve_coordinator(partition, broker)
            return call()

        async def attempt() -> T:
            self._check_alive()
            broker = self._metadata.leader(partition)
            try:
                result = await self._cluster.network.request(
                    self._link, what, lambda: at_coordinator(broker)
                )
            except (ConnectionClosedError, CoordinatorNotAvailableError) as exc:
                if self._lookup_lost(exc, broker) and self._draws_death(exc, broker):
                    raise self._die(what, exc) from exc
                raise
            self._outages_met.clear()  # the coordinator answered: a later outage is a new one
            return result

        return await self._retry(attempt, what)

    def _lookup_lost(self, exc: Exception, broker: int | None) -> bool:
        """Whether aiokafka would now look the coordinator up over a connection that is lost.

        Inside a transaction, a coordinator request whose connection reset or
        whose broker is down sends aiokafka's sender to FindCoordinator, and
        that lookup meets the same lost connection (aio-libs/aiokafka#1151).
        """
        if not self._in_transaction:
            return False
        if isinstance(exc, ConnectionClosedError):
            return True
        return broker is not None and not self._cluster.brokers.up[broker]

    def _draws_death(self, exc: Exception, broker: int | None) -> bool:
        """Whether the sender dies of this lost lookup: one draw per reset connection, and one
        per outage of the coordinator's broker (the retries during it meet the same outage).

        A draw per retry made a crash of the coordinator's broker kill nearly every
        transactional producer, and the path where the retries outlast the outage went unseen.
        """
        if isinstance(exc, CoordinatorNotAvailableError):
            if broker in self._outages_met:
                return False
            self._outages_met.add(broker)
        return self._cluster.client_faults.sender_dies()

    def _die(self, what: str, cause: Exception) -> SenderDeadError:
        """The sender routine died (drawn from the seed): fail what is queued; the error."""
        self._sender_dead = (
            f"{self.transactional_id}: the transactional producer's sender stopped for good "
            f"({type(cause).__name__} during the coordinator lookup of {what}); the "
            "transaction can be neither committed nor aborted, the restarted app redoes it"
        )
        dead = SenderDeadError(self._sender_dead)
        self._cluster.stats["producer-sender-dead"] += 1
        self._cluster.trace.record(
            self._name, "producer-sender-dead", transactional_id=self.transactional_id,
            request=what, error=type(cause).__name__,
        )
        self._fail_queued(dead)
        return dead

    def _check_alive(self) -> None:
        """Refuse any call of a producer whose sender died, as the Kafka driver does."""
        if self._sender_dead is not None:
            raise SenderDeadError(self._sender_dead)

    def _require_transaction(self, what: str) -> None:
        if not self._in_transaction:
            raise ProducerSendError(
                f"{self.transactional_id}: {what} outside a transaction "
                "(call begin_transaction() first)"
            )

