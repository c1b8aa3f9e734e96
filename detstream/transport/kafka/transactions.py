"""The Kafka driver's transactional producer (exactly-once), on aiokafka's.

Split from ``detstream.transport.kafka.driver`` (which alone imports it). It is
``AIOKafkaProducer(transactional_id=...)``: ``start`` runs InitProducerId,
which bumps the id's epoch, fences an older producer with the same id and
aborts its open transaction; ``begin_transaction`` is local;
``commit_transaction`` flushes, then ends the transaction; a fenced producer's
requests raise ``ProducerFencedError``.

What aiokafka 0.14 does not do (checked in its source; the simulator does
both, as Kafka >= 2.5 clients do):

- **KIP-447 zombie fencing.** ``AIOKafkaProducer.send_offsets_to_transaction``
  takes only a group id and sends ``TxnOffsetCommit`` v0: transactional id,
  group id, producer id and epoch, offsets. No generation, member id or
  group instance id (added in v3), so the broker cannot refuse the offsets
  of a member a rebalance replaced. With one transactional id per worker
  (EOS v2 style) the epoch does not fence such a zombie either. detstream
  narrows the gap client side: ``send_offsets_to_transaction`` first checks
  that the worker's own consumer still holds the generation and member id
  the offsets were processed under (``KafkaConsumer.check_member``), which
  catches a member that learned of its expulsion or of a new generation from
  a heartbeat. A zombie that has not heard yet (a paused process, a
  partition from the group coordinator only) can still commit: then the
  work of its last transaction may be done twice. A crashed worker (kill -9)
  cannot commit and is not affected.
- **Stable offset fetch** (``OffsetFetch`` v7 ``require_stable``): aiokafka's
  consumer fetches committed offsets with v0-v3, so a new owner can read a
  committed offset while the previous owner's transaction holding newer
  offsets is still open, and start before them. Again only a live zombie
  (or a commit racing the rebalance) leaves such a transaction open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError, ProducerFenced

from detstream import compat
from detstream._types import TP
from detstream.errors import ProducerFencedError, ProducerSendError
from detstream.transport.base import GroupMetadata
from detstream.transport.kafka.consumer import _ak
from detstream.transport.kafka.driver import KafkaProducer

if TYPE_CHECKING:
    from detstream.transport.kafka.driver import AIOKafkaTransport


class KafkaTransactionalProducer(KafkaProducer):
    """One worker's transactional producer (``create_producer(transactional_id=...)``)."""

    def __init__(
        self, transport: AIOKafkaTransport, options: dict[str, Any], *, transactional_id: str
    ) -> None:
        super().__init__(transport, options)
        self.transactional_id = transactional_id

    def _refused(self, topic: str, partition: int | None, exc: BaseException) -> Exception:
        """A fenced producer's sends fail with ``ProducerFencedError``: the app must stop, not retry."""
        if isinstance(exc, ProducerFenced):
            error = self._fenced(exc)
            error.__cause__ = exc
            return error
        return super()._refused(topic, partition, exc)

    async def begin_transaction(self) -> None:
        await self._call("begin_transaction")

    async def send_offsets_to_transaction(
        self, offsets: Mapping[TP, int], group: GroupMetadata
    ) -> None:
        consumer = self._transport.group_consumers.get(group.group_id)
        if consumer is not None:
            consumer.check_member(group)
        await self._call(
            "send_offsets_to_transaction",
            {_ak(tp): offset for tp, offset in offsets.items()}, group.group_id,
        )

    async def commit_transaction(self) -> None:
        await self._call("commit_transaction")

    async def abort_transaction(self) -> None:
        await self._call("abort_transaction")

    async def _call(self, method: str, *args: Any) -> None:
        """An aiokafka transaction call, once every record enqueued before it is in aiokafka's hands.

        Records wait in our batches until aiokafka takes them (see ``KafkaProducer``):
        ending the transaction before would leave them out of it.
        """
        try:
            await self._handed_over()
            client = self._client()
            self._check_alive(client, method)
            await getattr(client, method)(*args)
        except ProducerFenced as exc:
            raise self._fenced(exc) from exc
        except KafkaError as exc:  # not a refused membership: the app crashes, loudly
            raise ProducerSendError(
                f"{method} of {self.transactional_id!r} failed: {type(exc).__name__}: {exc}"
            ) from exc

    def _check_alive(self, client: Any, method: str) -> None:
        """Refuse, with the reason, a call on a producer whose sender routine died.

        aiokafka does not restart it: every send fails and the transaction can
        be neither committed nor aborted (aiokafka fails the call on an
        assert). Only a new producer can go on, so the app crashes and its
        restart redoes the open transaction's events.
        """
        failure = compat.sender_failure(client)
        if failure is not None:
            cause = failure.__cause__ or failure
            raise ProducerSendError(
                f"{method} of {self.transactional_id!r} failed: aiokafka's transactional producer "
                f"stopped for good ({type(cause).__name__}: {cause}); the transaction is "
                "redone by the restarted app"
            ) from failure

    def _fenced(self, exc: BaseException) -> ProducerFencedError:
        return ProducerFencedError(
            f"producer {self.transactional_id!r} was fenced ({exc}): another worker with the "
            "same transactional id started, or the broker aborted a transaction idle for "
            "longer than producer_transaction_timeout"
        )
