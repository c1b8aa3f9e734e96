"""The ``kafka://`` transport: the engine's clients on a real broker through aiokafka.

Only this module (and ``kafka_consumer``, which only it imports) imports
aiokafka; the driver lookup imports it lazily, so ``import detstream`` and the
simulator stay free of it. The clients mirror ``sim.driver`` so that what the
simulator proves holds here:

- group consumers never auto-commit; the engine commits what it acked;
- the group leader computes the assignment with detstream's co-partitioning
  assignor, so partition ``i`` of a source topic and of a table changelog land
  on the same worker, as they do in simulation;
- ``generation`` is the generation of the assignment in force (-1 while a
  rebalance is in progress), so records fetched under an older assignment are
  recognised as stale by the engine;
- connecting never hangs silently: an unreachable broker is reported and
  retried with a growing delay;
- exactly-once: a transactional producer (``kafka_transactions``) and
  read_committed consumers; see that module for what aiokafka does not send;
- the producer hands records to aiokafka a batch per partition at a time
  (``create_batch``/``send_batch``), one future per record and one callback
  per batch, in call order per partition (see ``KafkaProducer``);
- which setting becomes which client option (compression, batching, timeouts,
  TLS/SASL credentials) is in ``kafka_options`` and ``kafka_auth``, checked
  when the transport is made.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable, Mapping
from functools import partial
from random import getrandbits
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    IllegalOperation,
    KafkaConnectionError,
    KafkaError,
    NodeNotReadyError,
    RequestTimedOutError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest

from detstream import compat
from detstream._types import RecordMetadata
from detstream.clock import wall_time
from detstream.errors import ImproperlyConfigured, ProducerSendError
from detstream.partitioner import murmur2
from detstream.settings import SETTINGS
from detstream.transport import aiokafka_logs
from detstream.transport.aiokafka_logs import AIOKAFKA_LOGS
from detstream.transport.any_broker import to_any_broker, to_the_controller
from detstream.transport.base import Headers, IsolationLevel
from detstream.transport.kafka import abortive_close
from detstream.transport.kafka.closing import CANCEL_WAIT, force_close_producer, stop_client
from detstream.transport.kafka.consumer import CopartitionedAssignor, KafkaConsumer, _ms
from detstream.transport.kafka.lazy_client import LazyClient
from detstream.transport.kafka.options import (
    admin_options,
    check_settings,
    consumer_options,
    producer_options,
)
from detstream.transport.kafka.urls import bootstrap_servers, uses_confluent_scheme

__all__ = [
    "AIOKafkaTransport", "CopartitionedAssignor", "KafkaAdmin", "KafkaConsumer", "KafkaProducer",
    "bootstrap_servers",
]

log = logging.getLogger(__name__)

#: first and largest delay between attempts to reach an unreachable broker (seconds).
RETRY_FIRST, RETRY_MAX = 0.5, 30.0
#: a group consumer's start waiting this long (seconds) for its assignment says why, once.
JOIN_NOTICE_AFTER = 5.0
#: the headers of a record without any (aiokafka only reads them).
_NO_HEADERS: list[tuple[str, bytes]] = []
#: more than aiokafka's estimate of a lone record's size adds to its key, value and headers
#: (a v2 batch header of 61 bytes, a few varints per record and per header): a record this
#: much below ``max_request_size`` is not refused, and its estimate need not be computed.
_RECORD_OVERHEAD = 512


class AIOKafkaTransport:
    """Transport over Apache Kafka; client settings come from ``app.conf``."""

    def __init__(self, url: str = "kafka://", *, app: Any = None) -> None:
        self.url = url
        self.app = app
        #: sees every record the producers take (set by the simulator's wire mode).
        self.send_observer: SendObserver | None = None
        broker = app.conf.broker if app is not None else url
        self.servers = bootstrap_servers(broker if isinstance(broker, (list, tuple)) else url)
        if uses_confluent_scheme(broker if isinstance(broker, (list, tuple)) else url):
            log.warning(
                "broker %r: confluent:// (Faust's confluent-kafka transport) runs on detstream's "
                "aiokafka driver; the Kafka protocol and the App's settings are the same, and "
                "confluent-kafka is not used. Write kafka:// to silence this.", url,
            )
        self._conf = {name: default for name, (default, _) in SETTINGS.items()}
        if app is not None:
            self._conf.update(app.conf.values)
        check_settings(self._conf)  # a codec without its library, etc.: fail now, naming it
        #: subscribed consumers by group id: a transactional producer checks its offsets' group.
        self.group_consumers: dict[str, KafkaConsumer] = {}
        #: until the first assignment, aiokafka's expected start-up errors are logged at DEBUG.
        self.start_up = aiokafka_logs.StartUp()

    def __repr__(self) -> str:
        return f"<AIOKafkaTransport: {';'.join(self.servers)}>"

    def stop_budget(self) -> float | None:
        """How long a client's graceful stop may wait for the broker (the app's ``stop_budget``)."""
        budget = getattr(self.app, "stop_budget", None)
        return budget() if callable(budget) else None

    def create_producer(
        self, *, client_id: str, transactional_id: str | None = None,
        transaction_timeout: float = 60.0,
    ) -> KafkaProducer:
        options = producer_options(self._conf, client_id, self.servers)
        if transactional_id is None:
            return KafkaProducer(self, options)
        from detstream.transport.kafka.transactions import KafkaTransactionalProducer

        options.update(
            acks="all",  # what transactions require, whatever producer_acks says
            transactional_id=transactional_id,
            transaction_timeout_ms=_ms(transaction_timeout),
        )
        return KafkaTransactionalProducer(self, options, transactional_id=transactional_id)

    def create_consumer(
        self, *, client_id: str, group_id: str | None,
        isolation_level: IsolationLevel = "read_uncommitted", group_instance_id: str | None = None,
    ) -> KafkaConsumer:
        options = dict(
            consumer_options(self._conf, client_id, self.servers),
            group_id=group_id,
            isolation_level=isolation_level,
            partition_assignment_strategy=(CopartitionedAssignor,),
        )
        if group_instance_id is not None:  # static membership (KIP-345): see static_membership
            options["group_instance_id"] = group_instance_id
        consumer = KafkaConsumer(self, options, group_id=group_id)
        consumer.max_records = options["max_poll_records"]  # getmany passes it on every fetch
        return consumer

    def create_admin(self, *, client_id: str) -> KafkaAdmin:
        return KafkaAdmin(self, admin_options(self._conf, client_id, self.servers))

    async def start_client(
        self, make: Callable[[], Any], what: str, *,
        waiting_for: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """Build and start an aiokafka client, retrying while the broker is unreachable.

        aiokafka fails fast when no bootstrap server answers; a worker started
        before its broker (a common deploy race) should wait for it, saying so
        in the log with ever rarer lines instead of crashing or hanging mute.
        A connection lost later in the start counts the same (``_connection_lost``).
        ``waiting_for(client)`` (a group consumer's) says, once the start has
        taken ``JOIN_NOTICE_AFTER`` seconds, what the client waits for (None
        while it does not know yet); that line is logged once.
        """
        delay, attempt = RETRY_FIRST, 0
        while True:
            client = make()
            explain = partial(waiting_for, client) if waiting_for is not None else None
            watchdog = asyncio.ensure_future(_warn_while_pending(what, self.url, explain=explain))
            try:
                aiokafka_logs.starting(self.start_up)  # aiokafka's tasks made now inherit it
                with AIOKAFKA_LOGS.bootstrap_errors() as reasons:
                    await client.start()
            except BaseException as exc:
                for conn in compat.bootstrap_connections(exc):  # left open when cancelled
                    conn.close()
                await _close_quietly(client)
                if not _connection_lost(exc):
                    raise
                attempt += 1
                log.warning(
                    "%s cannot reach Kafka at %s (%s); retrying in %.1fs (attempt %d). "
                    "Is the broker running, and is the broker setting %r right?",
                    what, ";".join(self.servers), "; ".join(dict.fromkeys(reasons)) or exc, delay, attempt,
                    self.url,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            finally:
                watchdog.cancel()
            if attempt:
                log.warning("%s connected to Kafka at %s", what, ";".join(self.servers))
            return client


def _connection_lost(exc: BaseException) -> bool:
    """Whether a client's start failed because a connection was lost (worth starting again).

    A ``KafkaConnectionError``, or an error caused by one: a transactional
    producer's start looks its coordinator up, and aiokafka raises a
    connection lost there as a plain ``KafkaError`` from it (a broker crashed
    as the worker started: found on the wire, windowed_lists chaos seed 31).
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KafkaConnectionError):
            return True
        seen = seen.__cause__
    return False


class SendObserver(Protocol):
    """Sees every record the driver's producers take, and what became of it (the simulator's
    write history under ``--driver aiokafka``; None in production)."""

    def sent(
        self, topic: str, partition: int, key: bytes | None, value: bytes | None, *,
        idempotent: bool, transactional: bool,
    ) -> object:
        """A record was taken (in the sender's context); a token for the two calls below."""

    def delivered(self, token: object, offset: int) -> None:
        """The broker acknowledged the record at ``offset``."""

    def refused(self, token: object, error: BaseException) -> None:
        """The record failed for good."""


def _no_partitions(topic: str) -> int:
    """A keyless record for a topic that lists no partitions: refused, as ``random.choice``
    refused an empty list (the draw would never end)."""
    raise IndexError(f"topic {topic!r} has no partitions to send a record to")


class _Batch:
    """Records of one partition in our hands: not yet given to aiokafka's accumulator.

    One ``BatchBuilder`` (``AIOKafkaProducer.create_batch``), the future of
    each record's ack (or one for all its forwarded records) and the timestamp
    it was sent with, in send order: record ``i`` lands at the batch's base
    offset + ``i``.
    """

    __slots__ = ("acks", "append", "born", "builder", "filled", "forwarded", "full", "seen", "stamps")

    def __init__(self, builder: Any, born: float) -> None:
        self.builder = builder
        #: ``builder``'s append (``compat.batch_appender``): whether the record fit.
        self.append = compat.batch_appender(builder)
        self.born = born
        self.full = False
        #: each record's ack (None for a record forwarded: ``forwarded`` answers for those).
        self.acks: list[asyncio.Future[RecordMetadata] | None] = []
        #: the future shared by the records ``forward`` put in this batch (made by the first).
        self.forwarded: asyncio.Future[None] | None = None
        self.stamps: list[int] = []
        #: while the batch lingers (``producer_linger``): woken when it fills up.
        self.filled: asyncio.Future[None] | None = None
        #: the send observer's token of each record (when there is an observer).
        self.seen: list[object] = []


class KafkaProducer:
    """Sends records; ``send`` returns once the broker acknowledged the record.

    Records go to aiokafka a batch at a time (``create_batch``/``send_batch``),
    not one ``send`` each: ``enqueue`` appends the record to the open batch of
    its partition and returns the future of its ack. One task per partition
    with records in our hands (not per record) gives the batches to aiokafka
    in order, each once the batch before it was taken for a request (which is
    when aiokafka's own ``send`` would start a new batch too); the records
    that arrive meanwhile join the next batch. One callback per batch settles
    its records' futures. So the order per partition is the call order,
    batches join the open transaction as ``send``'s would (aiokafka adds the
    partition to the transaction when it takes the batch), and a record
    aiokafka would refuse before queueing (too large, unknown partition, no
    open transaction) is refused here, by ``enqueue``.

    ``producer_linger`` is applied here (a batch waits that long for more
    records unless it fills up); aiokafka's own linger is 0, so that a
    batch does not linger twice.
    """

    #: full batches a partition may have waiting in our hands before ``enqueue`` waits.
    MAX_WAITING_BATCHES = 2

    def __init__(self, transport: AIOKafkaTransport, options: dict[str, Any]) -> None:
        self._transport = transport
        #: the client's options (from the settings); aiokafka's own linger is 0, ours is this.
        self._options = options
        self._linger = options.get("linger_ms", 0) / 1000.0
        self._producer: AIOKafkaProducer | None = None
        #: callers of ``enqueue`` that had to wait, in call order: later calls queue behind
        #: them, so that records of one partition keep their order.
        self._enqueue = asyncio.Lock()
        self._waiting = 0
        #: per partition: batches in our hands, oldest first, and the task giving them to aiokafka.
        self._batches: dict[tuple[str, int], deque[_Batch]] = {}
        self._pumps: dict[tuple[str, int], asyncio.Task[None]] = {}
        #: woken whenever a pump gave a batch away (``enqueue`` waiting for room).
        self._room: asyncio.Future[None] | None = None
        #: per topic, from the cluster metadata (cleared when it changes): its partitions as a
        #: set, as a list, and those with a leader (what aiokafka's partitioner is given).
        self._partitions: dict[str, tuple[set[int], list[int], list[int]]] = {}
        #: callbacks of the batches' futures need no context variables: one shared context.
        self._context = contextvars.Context()
        self._observer: SendObserver | None = transport.send_observer
        #: ``_facts_of`` the current client (None in first place: none read yet).
        self._client_facts: tuple[Any, Any, int, bool] = (None, None, 0, False)
        self._kinds = dict(
            idempotent=bool(options.get("enable_idempotence") or options.get("transactional_id")),
            transactional=options.get("transactional_id") is not None,
        )

    async def start(self) -> None:
        if self._producer is None:
            self._producer = await self._transport.start_client(
                lambda: AIOKafkaProducer(**dict(self._options, linger_ms=0)), "producer"
            )
            self._producer.client.cluster.add_listener(self._metadata_changed)

    def _metadata_changed(self, _cluster: Any) -> None:
        self._partitions.clear()

    async def stop(self) -> None:
        """Deliver what is buffered and close; within the app's stop budget (see kafka_closing)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client("producer", partial(self._stop_gracefully, producer),
                              partial(self._force_close, producer), self._transport.stop_budget())

    async def _stop_gracefully(self, producer: AIOKafkaProducer) -> None:
        await self._handed_over()
        await producer.stop()

    async def _force_close(self, producer: AIOKafkaProducer) -> None:
        """Drop the records still in our hands (their futures fail), then close aiokafka's client."""
        pumps = list(self._pumps.values())
        for pump in pumps:
            pump.cancel()
        if pumps:
            await asyncio.wait(pumps, timeout=CANCEL_WAIT)
        closed = ProducerSendError("the Kafka producer was closed before the record was sent")
        for (topic, partition), batches in list(self._batches.items()):
            for batch in batches:
                self._fail(batch, topic, partition, closed)
        self._batches.clear()
        await force_close_producer(producer)

    async def _handed_over(self) -> None:
        """Wait until every record enqueued so far is in aiokafka's accumulator (or failed)."""
        while self._pumps:
            await asyncio.wait(list(self._pumps.values()))

    @property
    def reads_sender_context(self) -> bool:
        """Only a send observer (the simulator's history, under ``--driver aiokafka``) reads it."""
        return self._observer is not None

    def _client(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise ProducerSendError("the Kafka producer is not started (call start() first)")
        return self._producer

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
        """In a batch of ours on return (aiokafka's soon after); the future of the record's ack."""
        ack: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        await self._add(topic, key, value, partition, timestamp, headers, ack)
        return ack

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
        """As ``enqueue``; the future of the batch the record joined (shared, one per batch)."""
        batch = await self._add(topic, key, value, partition, timestamp, headers, None)
        return _forwarded(batch)

    def forward_nowait(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None,
        timestamp: float | None = None, headers: Headers = (),
    ) -> asyncio.Future[None] | None:
        """``forward`` where it would not suspend; None where it would (call ``forward`` then).

        It would not when nobody waits before it and the partition's open
        batch takes the record (metadata known, room left): the common case,
        without a coroutine per record.
        """
        # ``_add_nowait(..., ack=None)``, inline (once per forwarded record)
        if self._waiting:
            return None
        producer = self._producer or self._client()
        stamp_ms = int(round((wall_time() if timestamp is None else timestamp) * 1000))
        try:
            batch = self._append(producer, topic, key, value, partition, stamp_ms,
                                 list(headers) if headers else _NO_HEADERS, None)
        except KafkaError as exc:
            raise self._refused_early(topic, partition, key, value, exc) from exc
        if batch is None:
            return None
        forwarded = batch.forwarded
        return forwarded if forwarded is not None else _forwarded(batch)

    def _add_nowait(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Headers, ack: asyncio.Future[RecordMetadata] | None,
    ) -> _Batch | None:
        """``_add`` where it need not wait: nobody waits before it and the open batch takes the
        record. None where it must (then ``_add`` queues behind those waiting)."""
        if self._waiting:
            return None
        producer = self._producer or self._client()
        stamp_ms = int(round((wall_time() if timestamp is None else timestamp) * 1000))
        try:
            return self._append(producer, topic, key, value, partition, stamp_ms,
                                list(headers) if headers else _NO_HEADERS, ack)
        except KafkaError as exc:
            raise self._refused_early(topic, partition, key, value, exc) from exc

    async def _add(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        timestamp: float | None, headers: Headers, ack: asyncio.Future[RecordMetadata] | None,
    ) -> _Batch:
        """Put the record in its partition's open batch (waiting for metadata or room if need be)."""
        batch = self._add_nowait(topic, key, value, partition, timestamp, headers, ack)
        if batch is not None:  # nobody waited before it and there was room: no suspension
            return batch
        producer = self._client()
        stamp_ms = int(round((wall_time() if timestamp is None else timestamp) * 1000))
        header_list = list(headers) if headers else _NO_HEADERS
        try:
            self._waiting += 1
            try:
                async with self._enqueue:
                    while True:
                        if self._known(producer, topic) is None:
                            await compat.wait_on_metadata(producer, topic)
                        batch = self._append(
                            producer, topic, key, value, partition, stamp_ms, header_list, ack
                        )
                        if batch is not None:
                            return batch
                        await self._room_made()
            finally:
                self._waiting -= 1
        except KafkaError as exc:
            raise self._refused_early(topic, partition, key, value, exc) from exc

    def _refused_early(
        self, topic: str, partition: int | None, key: bytes | None, value: bytes | None,
        exc: KafkaError,
    ) -> Exception:
        """A record refused before it was queued: the observer is told; the error to raise."""
        if self._observer is not None:
            seen = self._observer.sent(topic, -1 if partition is None else partition, key, value,
                                       **self._kinds)
            self._observer.refused(seen, exc)
        return self._refused(topic, partition, exc)

    def _known(self, producer: AIOKafkaProducer, topic: str) -> tuple[set[int], list[int], list[int]] | None:
        """The topic's partitions (all, as a set and a list; those with a leader); None if unknown."""
        known = self._partitions.get(topic)
        if known is None:
            cluster = producer.client.cluster
            every = cluster.partitions_for_topic(topic)
            if every is None:
                return None
            known = (every, list(every), list(cluster.available_partitions_for_topic(topic) or ()))
            self._partitions[topic] = known
        return known

    def _append(
        self, producer: AIOKafkaProducer, topic: str, key: bytes | None, value: bytes | None,
        partition: int | None, stamp_ms: int, headers: list[tuple[str, bytes]],
        ack: asyncio.Future[RecordMetadata] | None,
    ) -> _Batch | None:
        """Add the record (and its ack, None for a forward) to its partition's open batch; the
        batch, or None if we must wait (metadata, room).

        Refuses what aiokafka's ``send`` refuses before queueing, with the same errors.
        """
        known = self._partitions.get(topic) or self._known(producer, topic)
        if known is None:
            return None
        client = self._client_facts if self._client_facts[0] is producer else self._facts_of(producer)
        _, txn, max_size, murmur = client
        if txn is not None and not txn.is_in_transaction():
            raise IllegalOperation("Can't send messages while not in transaction")
        size = (len(key) if key is not None else 0) + (len(value) if value is not None else 0)
        for name, data in headers:
            size += len(name) * 4 + len(data or b"")
        if size + _RECORD_OVERHEAD > max_size:  # maybe too large
            compat.check_record_size(producer, key, value, headers)
        every, ordered, available = known
        if partition is None:
            if not murmur:  # a partitioner of the user's
                partition = compat.default_partition(producer, key, ordered, available)
            elif key is not None:
                partition = ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)]
            else:  # ``random.choice(available or ordered)``, aiokafka's DefaultPartitioner's
                # draw from the global random, inline: the same bits drawn the same way
                # (``Random._randbelow``), two Python calls fewer per keyless record
                choices = available or ordered
                count = len(choices) or _no_partitions(topic)
                bits = count.bit_length()
                drawn = getrandbits(bits)
                while drawn >= count:
                    drawn = getrandbits(bits)
                partition = choices[drawn]
        else:
            assert partition >= 0
            assert partition in every, "Unrecognized partition"
        where = (topic, partition)
        batches = self._batches.get(where)
        if batches is None:
            batches = self._batches[where] = deque()
        batch = batches[-1] if batches and not batches[-1].full else None
        if batch is None or not batch.append(stamp_ms, key, value, headers):
            if batch is not None:  # full: aiokafka's builder closed itself
                batch.full = True
                if batch.filled is not None and not batch.filled.done():
                    batch.filled.set_result(None)
            if len(batches) >= self.MAX_WAITING_BATCHES:
                self._pumping(producer, topic, partition, batches)
                return None
            loop = asyncio.get_running_loop()
            batch = _Batch(producer.create_batch(), loop.time())
            batches.append(batch)
            # the first record of a batch always fits (a large one travels alone)
            batch.append(stamp_ms, key, value, headers)
        batch.acks.append(ack)
        batch.stamps.append(stamp_ms)
        if self._observer is not None:
            batch.seen.append(self._observer.sent(topic, partition, key, value, **self._kinds))
        if where not in self._pumps:
            self._pumping(producer, topic, partition, batches)
        return batch

    def _facts_of(self, producer: AIOKafkaProducer) -> tuple[Any, Any, int, bool]:
        """What each record's append reads of the client, read once per client: (the client,
        its transaction state if transactional, its max request size, whether keyed records
        take aiokafka's default partitioner, answered here by the remembered murmur2)."""
        txn = compat.transaction_manager(producer)
        if txn is not None and txn.transactional_id is None:
            txn = None
        self._client_facts = (producer, txn, compat.max_request_size(producer),
                              compat.uses_default_partitioner(producer))
        return self._client_facts

    def _pumping(
        self, producer: AIOKafkaProducer, topic: str, partition: int, batches: deque[_Batch]
    ) -> None:
        """Make sure a task gives this partition's batches to aiokafka."""
        if (topic, partition) not in self._pumps:
            self._pumps[(topic, partition)] = asyncio.ensure_future(
                self._pump(producer, topic, partition, batches)
            )

    async def _room_made(self) -> None:
        if self._room is None or self._room.done():
            self._room = asyncio.get_running_loop().create_future()
        await self._room

    async def _pump(
        self, producer: AIOKafkaProducer, topic: str, partition: int, batches: deque[_Batch]
    ) -> None:
        """Give this partition's batches to aiokafka, oldest first, while there are any.

        ``send_batch`` returns once aiokafka took the batch, which is when the
        partition's previous batch went out in a request; until then records
        still join it. Nothing joins it after (a sequence number is assigned to
        a batch by its record count when it is drained): it is closed before
        anything else runs.
        """
        loop = asyncio.get_running_loop()
        try:
            while batches:
                batch = batches[0]
                if self._linger and not batch.full:
                    await self._lingering(batch, loop)
                try:
                    delivered = await producer.send_batch(batch.builder, topic, partition=partition)
                except Exception as exc:  # noqa: BLE001 - every record of the batch fails with it
                    batch.builder.close()
                    batches.popleft()
                    self._fail(batch, topic, partition, exc)
                else:
                    batch.builder.close()
                    batches.popleft()
                    delivered.add_done_callback(
                        partial(self._settle, batch, topic, partition), context=self._context
                    )
                if self._room is not None and not self._room.done():
                    self._room.set_result(None)
        finally:
            del self._pumps[(topic, partition)]
            if not batches:
                self._batches.pop((topic, partition), None)

    async def _lingering(self, batch: _Batch, loop: asyncio.AbstractEventLoop) -> None:
        """Let the batch wait for more records: ``producer_linger`` after its first, or until full."""
        wait = batch.born + self._linger - loop.time()
        if wait <= 0:
            return
        batch.filled = loop.create_future()
        timer = loop.call_later(wait, _wake, batch.filled)
        try:
            await batch.filled
        finally:
            timer.cancel()

    def _settle(self, batch: _Batch, topic: str, partition: int, delivered: asyncio.Future[Any]) -> None:
        """The broker answered for the batch: each record's future gets its offset (or the error)."""
        if delivered.cancelled():
            for ack in [*batch.acks, batch.forwarded]:
                if ack is not None:
                    ack.cancel()
            return
        exc = delivered.exception()
        if exc is not None:
            self._fail(batch, topic, partition, exc)
            return
        meta = delivered.result()  # None when producer_acks=0: no offsets
        base = meta.offset if meta is not None else None
        stored = meta.timestamp if meta is not None else None
        for i, (ack, stamp) in enumerate(zip(batch.acks, batch.stamps, strict=True)):
            if ack is not None and not ack.done():
                # CreateTime topics answer -1: the record carries the timestamp we sent.
                ms = stamp if stored is None or stored == -1 else stored
                ack.set_result(RecordMetadata(topic, partition, -1 if base is None else base + i, ms / 1000.0))
        if batch.forwarded is not None and not batch.forwarded.done():
            batch.forwarded.set_result(None)
        if self._observer is not None and base is not None:
            for i, seen in enumerate(batch.seen):
                self._observer.delivered(seen, base + i)

    def _fail(self, batch: _Batch, topic: str, partition: int, exc: BaseException) -> None:
        if self._observer is not None:
            for seen in batch.seen:
                self._observer.refused(seen, exc)
        for ack in [*batch.acks, batch.forwarded]:
            if ack is not None and not ack.done():
                ack.set_exception(self._refused(topic, partition, exc) if isinstance(exc, KafkaError) else exc)

    def _refused(self, topic: str, partition: int | None, exc: BaseException) -> Exception:
        """The error a refused record raises: names where it was going and Kafka's reason."""
        where = f"{topic}[{partition}]" if partition is not None else repr(topic)
        error = ProducerSendError(f"Kafka refused a record for {where}: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    async def partitions_for(self, topic: str) -> int:
        return len(await self._client().partitions_for(topic))


def _forwarded(batch: _Batch) -> asyncio.Future[None]:
    """The future the records forwarded into ``batch`` share (made with the first of them)."""
    if batch.forwarded is None:
        batch.forwarded = asyncio.get_running_loop().create_future()
    return batch.forwarded


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class KafkaAdmin:
    """Topic administration; connects on first use."""

    #: Kafka error code of a topic that does not exist.
    UNKNOWN_TOPIC = 3

    def __init__(self, transport: AIOKafkaTransport, options: dict[str, Any]) -> None:
        self._transport = transport
        self._options = options
        self._admin: LazyClient[AIOKafkaAdminClient] = LazyClient(partial(
            transport.start_client, lambda: AIOKafkaAdminClient(**self._options), "admin client"
        ))
        self._timeout = options["request_timeout_ms"] / 1000.0

    async def _client(self) -> AIOKafkaAdminClient:
        return await self._admin.get()

    async def stop(self) -> None:
        admin = await self._admin.take()
        if admin is not None:
            client = getattr(admin, "_client", None)
            await stop_client("admin client", admin.close,
                              client.close if client is not None else admin.close,
                              self._transport.stop_budget())

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> bool:
        """Create ``name`` and wait until every partition has a leader; False if it existed."""
        admin = await self._client()
        topic = NewTopic(name, partitions, replication_factor, topic_configs=dict(config or {}))
        response = await to_the_controller(
            partial(admin.create_topics, [topic], timeout_ms=_ms(self._timeout)),
            unreachable=(NodeNotReadyError, KafkaConnectionError, RequestTimedOutError),
            timeout=self._timeout, what=f"CreateTopics {name}",
        )
        for _, code, *rest in response.topic_errors:
            if code == TopicAlreadyExistsError.errno:
                return False
            if code != 0:
                reason = rest[0] if rest and rest[0] else for_code(code).__name__
                raise ImproperlyConfigured(
                    f"Kafka refused to create topic {name!r} (partitions={partitions}, "
                    f"replication_factor={replication_factor}, config={dict(config or {})}): "
                    f"{for_code(code).__name__}: {reason}"
                )
        await self._wait_for_leaders(name, partitions)
        return True

    async def _describe(self, name: str) -> dict[str, Any]:
        # A plain metadata request would auto-create the topic it asks about.
        request = MetadataRequest([name], allow_auto_topic_creation=False)
        response = await self._to_any_broker(request)
        (topic,) = [t for t in response.to_object()["topics"] if t["topic"] == name]
        return topic

    async def _to_any_broker(self, request: Any) -> Any:
        """Send ``request`` to a broker, another one while the one picked is unreachable.

        aiokafka sends it to a random known broker and raises at once when
        that one is down (``NodeNotReadyError``) or its connection drops: a
        broker restarting while a worker starts must not fail the start.
        Retried until the request timeout has passed (``transport.any_broker``,
        shared with the sim driver's admin).
        """
        admin = await self._client()
        return await to_any_broker(
            partial(compat.send_admin_request, admin, request),
            unreachable=(NodeNotReadyError, KafkaConnectionError, RequestTimedOutError),
            timeout=self._timeout, what=type(request).__name__,
        )

    async def _wait_for_leaders(self, name: str, partitions: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            topic = await self._describe(name)
            parts = topic.get("partitions") or []
            if topic["error_code"] == 0 and len(parts) == partitions and all(
                p["leader"] >= 0 for p in parts
            ):
                return
            if loop.time() > deadline:
                raise KafkaConnectionError(f"topic {name!r} has no leaders after {self._timeout}s")
            await asyncio.sleep(0.05)

    async def partitions_for(self, name: str) -> int | None:
        topic = await self._describe(name)
        if topic["error_code"] == self.UNKNOWN_TOPIC:
            return None
        if topic["error_code"] != 0:
            raise for_code(topic["error_code"])(f"describing topic {name!r}")
        return len(topic["partitions"])


    async def list_topics(self) -> set[str]:
        response = await self._to_any_broker(MetadataRequest(None))
        names = (topic["topic"] for topic in response.to_object()["topics"])
        return {name for name in names if not name.startswith("__")}


# -- helpers ---------------------------------------------------------------------
async def _close_quietly(client: Any) -> None:
    try:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
    except Exception:  # a client that failed to start may fail to stop too
        pass


aiokafka_logs.install()  # any process with this driver: the worker, `detstream send`, the wire sim
abortive_close.install()  # a connection closed in flight, or of a dead process, sends nothing more


async def _warn_while_pending(
    what: str, url: str, first: float = 10.0, *, explain: Callable[[], str | None] | None = None,
) -> None:
    """Log, ever more rarely, while a client start (connect, join the group) is pending.

    With ``explain`` (a group consumer's start), the first look is after
    ``JOIN_NOTICE_AFTER`` seconds, and the first look at which ``explain``
    knows what the start waits for logs that, once; the other looks log the
    plain line.
    """
    waited, step = 0.0, first
    if explain is not None:
        await asyncio.sleep(JOIN_NOTICE_AFTER)
        waited, step = JOIN_NOTICE_AFTER, first - JOIN_NOTICE_AFTER
        notice = explain()
        if notice is not None:
            log.warning("%s has waited %.0fs for its partitions: %s", what, waited, notice)
            explain = None
    while True:
        await asyncio.sleep(step)
        waited += step
        notice = explain() if explain is not None else None
        if notice is not None:
            log.warning("%s has waited %.0fs for its partitions: %s", what, waited, notice)
            explain = None
        else:
            log.warning("%s still starting after %.0fs (connecting to %s, joining its group)",
                        what, waited, url)
        step = min(max(step, first) * 2, 120.0)
