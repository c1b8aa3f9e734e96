"""The ``sim://`` producers: plain (idempotent) and transactional, and the process link.

Split from ``sim.driver`` (which re-exports them) to keep files small.

``SimProducer`` sends in per-partition batches, as a Kafka producer does.
``SimTransactionalProducer`` behaves as aiokafka's
``AIOKafkaProducer(transactional_id=...)``: ``start`` registers the id with
the cluster's transaction coordinator (fencing any older producer of the id),
``begin_transaction`` is local, sends are refused outside a transaction,
``commit_transaction`` first waits for the transaction's sends, and every
request of a fenced producer fails with ``ProducerFencedError``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

from detstream._types import TP, RecordMetadata
from detstream.clock import wall_time
from detstream.errors import ProducerSendError
from detstream.partitioner import partition_for_key
from detstream.transport.base import GroupMetadata, Headers

if TYPE_CHECKING:
    from .cluster import SimCluster


class Link:
    """A client process's connection to the cluster; down once the process crashed."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.up = True

    def check(self) -> None:
        if not self.up:
            raise ConnectionError(f"{self.name} has crashed: its requests never reach the cluster")


class SimProducer:
    """Sends in per-partition batches; keyed records use Kafka's murmur2.

    Like a Kafka producer, records bound for one partition queue up while a
    request for that partition is in flight and go out together in the next
    one: order per partition is kept, and a burst costs one round trip.
    """

    def __init__(self, cluster: SimCluster, name: str, link: Link | None = None) -> None:
        self._cluster = cluster
        self._name = name
        self._link = link or Link(name)
        self._queued: dict[TP, list[_Pending]] = {}
        self._senders: dict[TP, asyncio.Task[None]] = {}
        self._round_robin = itertools.count()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        senders = [t for _, t in sorted(self._senders.items()) if not t.done()]
        if senders:
            await asyncio.gather(*senders)

    async def partitions_for(self, topic: str) -> int:
        count = self._cluster.partitions_for(topic, by=self._name, create=True)
        if count is None:
            raise KeyError(f"topic {topic!r} does not exist and auto-creation is disabled")
        return count

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
        count = await self.partitions_for(topic)
        if partition is None:
            partition = (
                partition_for_key(key, count) if key is not None else next(self._round_robin) % count
            )
        tp = TP(topic, partition)
        loop = asyncio.get_running_loop()
        stamp = wall_time() if timestamp is None else timestamp
        future: asyncio.Future[RecordMetadata] = loop.create_future()
        self._queued.setdefault(tp, []).append(_Pending(key, value, stamp, headers, future))
        sender = self._senders.get(tp)
        if sender is None or sender.done():
            self._senders[tp] = loop.create_task(self._drain(tp), name=f"{self._name}-send-{tp}")
        return await future

    async def _drain(self, tp: TP) -> None:
        """Send what is queued for ``tp``, one request per batch, until nothing is left."""
        while self._queued.get(tp):
            batch, self._queued[tp] = self._queued[tp], []
            await asyncio.sleep(self._cluster.latency())
            if not self._link.up:
                return  # the process died with these records in its buffer
            for item in batch:
                try:
                    meta = self._append(tp, item)
                except Exception as exc:  # refused by the cluster, e.g. a fenced producer
                    if not item.future.done():
                        item.future.set_exception(exc)
                    continue
                if not item.future.done():
                    item.future.set_result(meta)

    def _append(self, tp: TP, item: _Pending) -> RecordMetadata:
        return self._cluster.append(
            self._name, tp, key=item.key, value=item.value,
            timestamp=item.timestamp, headers=item.headers,
        )


class _Pending(NamedTuple):
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: Headers
    future: asyncio.Future[RecordMetadata]



class SimTransactionalProducer(SimProducer):
    """One transactional id's producer (``create_producer(transactional_id=...)``)."""

    def __init__(
        self,
        cluster: SimCluster,
        name: str,
        link: Link,
        *,
        transactional_id: str,
        transaction_timeout: float,
    ) -> None:
        super().__init__(cluster, name, link)
        self.transactional_id = transactional_id
        self._timeout = transaction_timeout
        self._epoch: int | None = None
        self._in_transaction = False

    async def start(self) -> None:
        """``init_transactions``: a new epoch for the id; older producers are fenced."""
        if self._epoch is None:
            await self._request()
            _, self._epoch = self._cluster.transactions.init_producer(
                self.transactional_id, timeout=self._timeout
            )

    async def begin_transaction(self) -> None:
        if self._epoch is None:
            raise ProducerSendError("begin_transaction() before start()")
        if self._in_transaction:
            raise ProducerSendError(f"{self.transactional_id}: a transaction is already open")
        self._in_transaction = True

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
        self._require_transaction("send")
        return await super().send(
            topic, key=key, value=value, partition=partition, timestamp=timestamp, headers=headers
        )

    def _append(self, tp: TP, item: _Pending) -> RecordMetadata:
        self._require_transaction("send")
        assert self._epoch is not None
        return self._cluster.append(
            self._name, tp, key=item.key, value=item.value, timestamp=item.timestamp,
            headers=item.headers, transaction=(self.transactional_id, self._epoch),
        )

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TP, int], group: GroupMetadata
    ) -> None:
        self._require_transaction("send_offsets_to_transaction")
        await self._request()
        assert self._epoch is not None
        self._cluster.transactions.add_offsets(self.transactional_id, self._epoch, offsets, group)

    async def commit_transaction(self) -> None:
        await self._end(commit=True)

    async def abort_transaction(self) -> None:
        await self._end(commit=False)

    async def _end(self, *, commit: bool) -> None:
        self._require_transaction("commit_transaction" if commit else "abort_transaction")
        senders = [t for _, t in sorted(self._senders.items()) if not t.done()]
        if senders:  # the transaction's records go out before its marker
            await asyncio.gather(*senders, return_exceptions=True)
        await self._request()
        assert self._epoch is not None
        try:
            self._cluster.transactions.end(self.transactional_id, self._epoch, commit=commit)
        finally:
            self._in_transaction = False

    async def _request(self) -> None:
        """One round trip to the coordinator; a crashed process's requests never arrive."""
        await asyncio.sleep(self._cluster.latency())
        self._link.check()

    def _require_transaction(self, what: str) -> None:
        if not self._in_transaction:
            raise ProducerSendError(
                f"{self.transactional_id}: {what} outside a transaction "
                "(call begin_transaction() first)"
            )
