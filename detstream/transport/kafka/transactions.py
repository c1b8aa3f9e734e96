"""The Kafka driver's transactional producer (exactly-once), on aiokafka's.

Split from ``detstream.transport.kafka.driver`` (which alone imports it). It is
``AIOKafkaProducer(transactional_id=...)``: ``start`` runs InitProducerId,
which bumps the id's epoch, fences an older producer with the same id and
aborts its open transaction; ``begin_transaction`` is local;
``commit_transaction`` flushes, then ends the transaction; a fenced producer's
requests raise ``ProducerFencedError``.

What aiokafka 0.14 does not do:

- **KIP-447 zombie fencing.** ``AIOKafkaProducer.send_offsets_to_transaction``
  takes only a group id and sends ``TxnOffsetCommit`` v0, without the
  member: with one transactional id per worker (EOS v2 style) nothing would
  refuse the offsets of a member a rebalance replaced. ``member_offsets``
  makes aiokafka's sender send v3 with the member's generation, member id
  and group instance id, so the group coordinator refuses them (and the
  transaction is aborted), as with Java's producer. Before the request,
  ``send_offsets_to_transaction`` also checks that the worker's own consumer
  still holds that membership (``KafkaConsumer.check_member``): a member
  that learned of its expulsion from a heartbeat stops there.
- **Stable offset fetch** (``OffsetFetch`` v7 ``require_stable``): aiokafka's
  consumer fetches committed offsets with v3, so a new owner could read a
  committed offset while the previous owner's transaction holding newer
  offsets is still open (its TxnOffsetCommit accepted before the rebalance,
  its EndTxn still to come), and start before them. The driver's
  read_committed consumers fetch with v7 (``stable_offsets``) and wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiokafka.errors import KafkaError, ProducerFenced

from detstream import compat
from detstream._types import TP
from detstream.errors import ProducerFencedError, ProducerSendError
from detstream.transport.base import GroupMetadata
from detstream.transport.kafka import member_offsets
from detstream.transport.kafka.consumer import _ak
from detstream.transport.kafka.driver import KafkaProducer

if TYPE_CHECKING:
    from detstream.transport.kafka.driver import AIOKafkaTransport

member_offsets.install()  # TxnOffsetCommit names the member (KIP-447)


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
            {_ak(tp): offset for tp, offset in offsets.items()}, group.group_id, offsets_of=group,
        )

    async def commit_transaction(self) -> None:
        await self._call("commit_transaction")

    async def abort_transaction(self) -> None:
        await self._call("abort_transaction")

    async def _call(self, method: str, *args: Any, offsets_of: GroupMetadata | None = None) -> None:
        """An aiokafka transaction call, once every record enqueued before it is in aiokafka's hands.

        Records wait in our batches until aiokafka takes them (see ``KafkaProducer``):
        ending the transaction before would leave them out of it. ``offsets_of``:
        the member whose offsets the call sends (its TxnOffsetCommit names it).
        """
        try:
            await self._handed_over()
            client = self._client()
            self._check_alive(client, method)
            if offsets_of is not None:
                compat.attach_group_metadata(client, offsets_of)
            # aiokafka may replace a failed transaction's waiter unread (an abort does): its
            # error was reported where it was met, so it is marked read before every call
            compat.read_transaction_error(client)
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
            "same transactional id started, or the broker aborted a transaction open for "
            "longer than producer_transaction_timeout (a worker paused or blocked that long); "
            "the app stops and its restart redoes that transaction's events"
        )
