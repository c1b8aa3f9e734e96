"""The app's producer: sends through the transport and can flush.

``send_soon`` starts a send without waiting (table changelogs use it); the
conductor calls ``flush`` before every commit, so an offset is never committed
before the records its processing produced are on the broker.

Under exactly-once the producer is transactional and a transaction is always
open: every send joins it, and ``commit_transaction`` ends it with the
consumer offsets of the work that produced its records, then begins the next
one. Sends made while a commit is in progress (timers, tasks) wait and join
the next transaction in call order, never the one being committed: its
offsets do not cover them. ``durable(sent)`` is what a persistent table store
waits for before writing to disk: the ack of the record, and under
exactly-once the commit of its transaction, so that an aborted write (the
work will be redone) never reaches the disk.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from detstream import mutants
from detstream._types import TP, RecordMetadata
from detstream.errors import ProducerSendError
from detstream.events import (
    Event,
    Message,
    current_agent,
    current_event,
    set_current_agent,
    set_current_event,
)
from detstream.futures import complete_as

from .stats import SendStats

if TYPE_CHECKING:
    from detstream.transport.base import GroupMetadata, Headers, Producer, TransactionalProducer

    from .host import SensorHooks

#: the bug this module's failure tracking fixes, re-opened on demand (see ``mutants``).
SEND_FAILURE_IGNORED = mutants.register(
    "send-failure-ignored",
    "a send refused by the producer (record too large) is dropped unseen and the offset "
    "of the event that made it is committed",
)

#: re-opens the flush window: a flush that began after a send was refused, but before the
#: send's callback ran, did not wait for it, and the commit behind it passed the event.
FLUSH_BEFORE_SETTLING = mutants.register(
    "flush-before-settling",
    "a flush skips sends that completed but whose settling callback has not run yet",
)
#: re-opens session 42's bug: a commit's flush waits blindly while its sends wait for metadata.
HANDOVER_IGNORES_DOUBT = mutants.register(
    "handover-ignores-doubt",
    "a commit's flush waits for sends still in the outbox (the client's send waiting for a "
    "topic's metadata, its host cut off) without looking at the membership's doubt, so they "
    "are handed over and land when the cut heals, after the partitions' new owner wrote",
)

#: records in the outbox (not yet taken by the client) past which a forward waits, ...
#: Enough to keep the client's batches full while the broker answers; more only keeps more
#: events alive between a forward and its hand-over (each entry holds its event): word
#: count on Kafka took 6% more CPU per sentence and ran 8% slower with 10,000 (4 pairs,
#: bench/throughput.py, session 35), its peak RSS 10 MB higher.
OUTBOX_ROOM = 1_000
#: ... and bytes of their keys and values past which it waits, however few they are (as the
#: Java client's ``buffer.memory``, 32 MiB): 1,000 records of 1 MB would be 1 GB.
OUTBOX_BYTES = 32 * 1024 * 1024

#: the event a send was made for (None outside any) and the agent making it, if any.
_Origin = tuple["Event | None", Any]
#: what a refused send fails: the message of its event (None outside any) and the agent. A
#: send in flight keeps this, not its event: the event's decoded key and value are freed
#: when the stream is done with them, not when the send's batch is acknowledged.
_Blame = tuple["Message | None", Any]
#: what a send hands the client: key, value, partition, timestamp, headers (one tuple per
#: record, in the order of the client's ``forward_nowait`` arguments).
_Record = tuple["bytes | None", "bytes | None", "int | None", "float | None", "Headers"]
#: an outbox entry: send number, topic, record, the caller's future (None: a forward), origin,
#: the size of the record's key and value.
_Outgoing = tuple[int, str, _Record, "asyncio.Future[RecordMetadata] | None", _Origin, int]
#: the names of a ``_Record``'s fields (what a sensor's ``on_send_initiated`` reads).
_RECORD_FIELDS = ("key", "value", "partition", "timestamp", "headers")
#: a send of a table write and the future its store waits on.
_Durable = tuple["asyncio.Future[RecordMetadata]", "asyncio.Future[RecordMetadata]"]


class SendFailed(ProducerSendError):
    """A send refused for good; names the record's topic and the event whose output it was.

    ``tp`` and ``offset`` are the input event's (None for a send made outside
    any event); the producer's own error is the ``__cause__``.
    """

    def __init__(
        self, cause: BaseException, topic: str, partition: int | None,
        origin: Message | None, agent: Any = None,
    ) -> None:
        self.topic, self.partition, self.origin, self.agent = topic, partition, origin, agent
        self.tp = origin.tp if origin is not None else None
        self.offset = origin.offset if origin is not None else None
        where = f"{topic!r}" + (f" partition {partition}" if partition is not None else "")
        source = f" (output of {self.tp} offset {self.offset})" if origin is not None else ""
        super().__init__(f"send to {where} failed{source}: {type(cause).__name__}: {cause}")
        self.__cause__ = cause


class ProducerBuffer:
    """Wraps a transport producer and tracks sends still in flight."""

    def __init__(
        self, producer: Producer, *, transactional: bool = False, stats: SendStats | None = None
    ) -> None:
        self._producer = producer
        self.transactional = transactional
        #: records sent per topic and sends refused (``/metrics``); the App keeps one across starts.
        self.stats = stats if stats is not None else SendStats()
        self._sent = self.stats.sent
        #: told of each send and its outcome while a sensor is registered (the App's sensors).
        self.sensors: SensorHooks | None = None
        #: id of a send's record -> what ``on_send_initiated`` returned, until it settles.
        #: The record lives in the send's entries until then, so its id stays its own.
        self._sensor_states: dict[int, Any] = {}
        #: (send number, future) of sends not known to be settled; a send's future is the
        #: caller's, or for forwards the producer's ack of their batch once handed over (with
        #: the number of the batch's first forward).
        self._pending: deque[tuple[int, asyncio.Future[Any]]] = deque()
        #: sends not yet handed to the producer, in call order, and the task handing them over.
        self._outbox: deque[_Outgoing] = deque()
        #: bytes of the keys and values in the outbox.
        self._outbox_bytes = 0
        self._drainer: asyncio.Future[None] | None = None
        #: sends made so far, and how many of them the drain handed over (or gave up).
        self._queued = 0
        self._handed = 0
        #: flushes waiting for the drain to hand over the sends made before them.
        self._handover_waiters: list[tuple[int, asyncio.Future[None]]] = []
        #: forwards waiting for the outbox to drop below ``OUTBOX_ROOM`` and ``OUTBOX_BYTES``.
        self._room_waiters: list[asyncio.Future[None]] = []
        self._enqueue = _enqueue_of(producer)
        #: the producer's ``forward`` (one future per batch), else its ``enqueue``.
        self._forward = getattr(producer, "forward", None) or self._enqueue
        #: its ``forward_nowait``, if it has one: a forward without a coroutine when it need not wait.
        self._forward_nowait: Callable[..., asyncio.Future[None] | None] | None = getattr(
            producer, "forward_nowait", None
        )
        #: future of a send in flight (a caller's, or the batch future of forwards) -> the
        #: records (topic, record, blame) whose events fail if it is refused.
        self._unsettled: dict[asyncio.Future[Any], list[tuple[str, _Record, _Blame]]] = {}
        #: exactly-once: writes of the open transaction waiting for its commit.
        self._durable: list[_Durable] = []
        #: exactly-once, while a commit is in progress: sends for the next transaction.
        self._deferred: list[tuple[str, _Record, asyncio.Future[RecordMetadata] | None]] | None = None
        self._next_durable: list[_Durable] = []
        #: whether the open transaction has records.
        self._sent_in_transaction = False
        #: the first refused send an event made: no commit may happen after it.
        self.failed: SendFailed | None = None
        #: told of every refused send as it happens (the app: log, ``on_error``, crash).
        self.on_failure: Callable[[SendFailed], None] | None = None
        #: stopped or closed: the client is closed (or closing), and is not stopped again.
        self.closed = False

    async def start(self) -> None:
        await self._producer.start()
        if self.transactional:
            await self._txn_producer.begin_transaction()

    async def stop(self) -> None:
        """Flush (or abort the open transaction), then close the client even if that failed.

        Once: a stop that gave up on the broker closed it already (``close``).
        """
        if self.closed:
            return
        self.closed = True
        try:
            if self.transactional:
                # The last commit (the conductor's, while stopping) is done: what was
                # sent since belongs to no committed work, so nobody may see it.
                if self._sent_in_transaction:
                    await self._abort_quietly(RuntimeError("the app stopped"))
            else:
                await self.flush()
        finally:
            await self._producer.stop()
            await self._end_drain()

    async def close(self) -> None:
        """Close the client without flushing or aborting: what is pending fails, and requests
        in flight are discarded with the connections (a stop that gave up on the broker)."""
        if self.closed:
            return
        self.closed = True
        try:
            await self._producer.stop()
        finally:
            await self._end_drain()

    async def _end_drain(self) -> None:
        """The client is closed: a drain still handing records over ends, its records cancelled.

        After a stop that gave up on the broker, the drain can be waiting
        for something the closed client never brings (a topic's metadata):
        it ran on after the App stopped (found by the simulator's
        ``stopped-app-idle`` check under ``--driver aiokafka``).
        """
        drainer = self._drainer
        if drainer is not None and not drainer.done():
            drainer.cancel()
            await asyncio.wait({drainer})

    @property
    def _txn_producer(self) -> TransactionalProducer:
        return self._producer  # type: ignore[return-value]

    @property
    def in_transaction(self) -> bool:
        """Exactly-once: the open transaction has records (committing it is worth a request)."""
        return self._sent_in_transaction

    @property
    def settled(self) -> bool:
        """Every send so far was acknowledged or refused (nothing in flight)."""
        return self._handed == self._queued and all(sent.done() for _, sent in self._pending)

    def send_soon(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> asyncio.Future[RecordMetadata]:
        record = (key, value, partition, timestamp, headers)
        if self._deferred is not None:
            later: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
            self._deferred.append((topic, record, later))
            return later
        future = self._start_send(topic, record, with_future=True)
        assert future is not None
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
    ) -> None:
        """``send_soon`` for a caller that never looks at the result (the engine's own forwards).

        Same order, same flush and failure tracking; no future is made for
        the caller (one per forwarded event adds up: ``group_by``, sinks).
        Unlike ``send_soon`` it may wait: while the outbox holds ``OUTBOX_ROOM``
        records or ``OUTBOX_BYTES`` the client has not taken yet (the broker is
        slower than the agents), the agent forwarding waits, instead of memory
        growing.
        """
        if len(self._outbox) >= OUTBOX_ROOM or self._outbox_bytes >= OUTBOX_BYTES:
            await self._room_in_outbox()
        self.try_forward(topic, key, value, timestamp, headers, partition)  # room now: takes it

    def try_forward(
        self, topic: str, key: bytes | None, value: bytes | None,
        timestamp: float | None = None, headers: Headers = (), partition: int | None = None,
    ) -> bool:
        """``forward`` without a coroutine if the outbox has room; whether it took the record.

        A caller forwarding for every event (``group_by``, sinks) tries this
        first and awaits ``forward`` only when it returns False.
        """
        if len(self._outbox) >= OUTBOX_ROOM or self._outbox_bytes >= OUTBOX_BYTES:
            return False
        record = (key, value, partition, timestamp, headers)
        if self._deferred is not None:
            self._deferred.append((topic, record, None))
        elif not (self._handed == self._queued and self._forward_nowait is not None and (
            self.sensors is None or not self.sensors.enabled
        ) and self._hand_over_now(topic, record)):
            sensors = self.sensors
            if sensors is not None and sensors.enabled:  # they see the record first
                self._start_send(topic, record, with_future=False)
                return True
            # ``self._start_send(topic, record, with_future=False)``, inline (once per forward
            # the outbox takes: the common case while the drain task is behind)
            self._sent_in_transaction = True
            sent = self._sent
            sent[topic] = sent.get(topic, 0) + 1
            origin = (current_event(), current_agent())  # the event and agent making the send
            number = self._queued
            self._queued = number + 1
            size = (len(key) if key else 0) + (len(value) if value else 0)
            self._outbox_bytes += size
            self._outbox.append((number, topic, record, None, origin, size))
            if self._drainer is None or self._drainer.done():
                self._drainer = asyncio.ensure_future(self._drain())
        return True

    def _hand_over_now(self, topic: str, record: _Record) -> bool:
        """Give a forward to the client in the caller's step when nothing is before it; whether
        the client took it (else it goes through the outbox).

        With every earlier send handed over, handing this one over now keeps
        call order, and spares the outbox and a step of the drain task per
        record (the common case: the client's open batch takes it). The
        client sees the caller's event and agent, as the drain would show it.
        """
        assert self._forward_nowait is not None
        try:
            ack: asyncio.Future[Any] | Exception | None = self._forward_nowait(topic, *record)
        except Exception as exc:
            ack = exc
        if ack is None:
            return False
        self._sent_in_transaction = True
        sent = self._sent
        sent[topic] = sent.get(topic, 0) + 1
        number = self._queued
        self._queued = self._handed = number + 1
        event = current_event()
        self._forwarded(number, topic, record,
                        (event.message if event is not None else None, current_agent()), ack)
        return True

    def _forwarded(
        self, number: int, topic: str, record: _Record, blame: _Blame,
        ack: asyncio.Future[Any] | Exception,
    ) -> None:
        """A forward was handed over: its ack joins its batch's (or is tracked), a refusal
        before queueing fails its event at once."""
        if isinstance(ack, BaseException):
            if not mutants.on(SEND_FAILURE_IGNORED):
                self._report(ack, topic, record, blame)
            return
        riding = self._unsettled.get(ack)  # a batch's later forwards: ``_track``, inline
        if riding is not None:
            riding.append((topic, record, blame))
        else:
            self._track(number, ack, topic, record, blame)

    async def _room_in_outbox(self) -> None:
        while len(self._outbox) >= OUTBOX_ROOM or self._outbox_bytes >= OUTBOX_BYTES:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            await waiter

    def _wake_room_waiters(self) -> None:
        waiters, self._room_waiters = self._room_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _start_send(
        self, topic: str, record: _Record, *, with_future: bool
    ) -> asyncio.Future[RecordMetadata] | None:
        """Put the record in the outbox (call order) and make sure the drain task runs.

        ``try_forward`` repeats the case of a forward without sensors inline (once per
        forward): a change here goes there too.
        """
        self._sent_in_transaction = True
        sent = self._sent
        sent[topic] = sent.get(topic, 0) + 1
        sensors = self.sensors
        if sensors is not None and sensors.enabled:
            record = self._tell_initiated(sensors, topic, record)
        event = current_event()
        origin = (event, current_agent())  # the event and agent making the send
        number = self._queued
        self._queued = number + 1
        future: asyncio.Future[RecordMetadata] | None = None
        if with_future:
            future = asyncio.get_running_loop().create_future()
            if not mutants.on(SEND_FAILURE_IGNORED):
                blame = (event.message if event is not None else None, origin[1])
                self._unsettled[future] = [(topic, record, blame)]
                future.add_done_callback(self._send_done)
            self._trim_pending()
            self._pending.append((number, future))
        key, value = record[0], record[1]
        size = (len(key) if key else 0) + (len(value) if value else 0)
        self._outbox_bytes += size
        self._outbox.append((number, topic, record, future, origin, size))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.ensure_future(self._drain())
        return future

    def _tell_initiated(self, sensors: SensorHooks, topic: str, record: _Record) -> _Record:
        """Sensors: a send starts. They see the record as Faust's do (a mapping of its fields,
        ``headers`` replaceable: a tracer adds its own); the record as they left it."""
        fields = dict(zip(_RECORD_FIELDS, record, strict=True))
        key, value = record[0], record[1]
        state = sensors.on_send_initiated(self, topic, fields, len(key) if key else 0,
                                          len(value) if value else 0)
        record = tuple(fields[name] for name in _RECORD_FIELDS)  # type: ignore[assignment]
        self._sensor_states[id(record)] = state
        return record

    async def _drain(self) -> None:
        """Hand the outbox to the producer, one record after the other, in call order.

        One task for every record sent while it runs, not one per record: the
        producer's ``enqueue`` returns as soon as the record is in its buffer
        (usually without suspending), and its ack settles the caller's future
        by callback. Order matters: two writes of one table key reaching the
        changelog in the wrong order would leave the older value last. If the
        task is cancelled (the process is torn down), the records not handed
        over are cancelled with it, so nothing waits for them forever.
        """
        outbox, enqueue, forward, nowait = self._outbox, self._enqueue, self._forward, self._forward_nowait
        # The client runs in this task: a client that reads them (the simulator's history)
        # sees the sender's event and agent, as a send awaited by the agent itself would.
        # This task's context is its own, so they are set only when they change.
        event: Event | None = None
        agent: Any = None
        blame: _Blame = (None, None)  # what a refusal of the current origin's forwards fails
        in_context = getattr(self._producer, "reads_sender_context", True)
        unsettled = self._unsettled
        try:
            while outbox:
                number, topic, record, future, origin, size = outbox.popleft()
                self._outbox_bytes -= size
                if self._room_waiters and len(outbox) < OUTBOX_ROOM and (
                    self._outbox_bytes < OUTBOX_BYTES
                ):
                    self._wake_room_waiters()
                try:
                    if future is not None and future.done():  # cancelled by its caller meanwhile
                        continue
                    if origin[0] is not event or origin[1] is not agent:
                        event, agent = origin
                        if in_context:
                            set_current_event(event)
                            set_current_agent(agent)
                        blame = (event.message if event is not None else None, agent)
                    ack: asyncio.Future[Any] | Exception | None = None
                    try:
                        if future is None and nowait is not None:  # the common case: no coroutine
                            ack = nowait(topic, *record)
                        if ack is None:
                            key, value, partition, timestamp, headers = record
                            ack = await (enqueue if future is not None else forward)(
                                topic, key=key, value=value, partition=partition,
                                timestamp=timestamp, headers=headers,
                            )
                    except Exception as exc:
                        ack = exc
                    if future is None:
                        riding = unsettled.get(ack)  # type: ignore[arg-type]  # ``_forwarded``, inline
                        if riding is not None:
                            riding.append((topic, record, blame))
                        else:
                            self._forwarded(number, topic, record, blame, ack)
                    elif isinstance(ack, BaseException):  # refused before queueing: too large, ...
                        if not future.done():
                            future.set_exception(ack)
                    else:
                        complete_as(ack, future)
                        if not ack.done():
                            future.add_done_callback(partial(self._outlive, number, ack))
                finally:
                    self._handed += 1
                    if self._handover_waiters:
                        self._wake_handover()
        except asyncio.CancelledError:
            while outbox:
                future = outbox.popleft()[3]
                if future is not None:
                    future.cancel()
                self._handed += 1
            self._outbox_bytes = 0
            self._wake_handover()
            self._wake_room_waiters()
            raise

    def _outlive(self, number: int, ack: asyncio.Future[Any], future: asyncio.Future[Any]) -> None:
        """A caller gave up waiting on a record already handed over: flushes still wait for it.

        Cancelling the task that awaits a send (a timer stopped with the app)
        cancels its future, not the record: the client sends it all the same.
        A flush that took the cancelled future for settled let a graceful stop
        end with the record still in flight (timer_producer, chaos seed 202).
        """
        if future.cancelled() and not ack.done():
            self._pending.append((number, ack))

    def _track(
        self, number: int, ack: asyncio.Future[Any], topic: str,
        record: _Record, blame: _Blame,
    ) -> None:
        """Follow a forward's ack (its batch's): flushes wait for it, a refusal fails its event.

        Records forwarded into one batch share its future: the first one
        registers it (flushes wait for it from that record's number on, and
        one callback settles the batch); the others only join its list of
        records, each of whose events fails if the batch is refused. An ack
        already done is settled now, not by a scheduled callback: a flush
        that starts next would not wait for it, and its commit must already
        see the refusal.
        """
        riding = self._unsettled.get(ack)
        if riding is not None:
            riding.append((topic, record, blame))
            return
        records = [(topic, record, blame)]
        if ack.done():
            if not mutants.on(SEND_FAILURE_IGNORED):
                self._settled(ack, records)
            return
        if not mutants.on(SEND_FAILURE_IGNORED):
            self._unsettled[ack] = records
            ack.add_done_callback(self._send_done)
        self._trim_pending()
        self._pending.append((number, ack))

    def _trim_pending(self) -> None:
        """Forget settled sends at the head (they complete roughly in order: O(1) amortised)."""
        pending = self._pending
        while pending and pending[0][1].done():
            pending.popleft()

    def _send_done(self, future: asyncio.Future[Any]) -> None:
        self._settled(future, self._unsettled.pop(future, []))

    def _settle_completed(self) -> None:
        """Settle now the sends that completed but whose callback has not run yet.

        A flush that begins between a send's completion and its callback
        (scheduled, not immediate) would not wait for it, and the commit
        behind the flush could pass a refused send's event: settling here
        makes the refusal visible to that commit. The callback then finds
        nothing left to do.
        """
        for future in [future for future in self._unsettled if future.done()]:
            self._send_done(future)

    def _settled(
        self, future: asyncio.Future[Any], records: list[tuple[str, _Record, _Blame]]
    ) -> None:
        """A send (or a batch of forwards) ended: if it failed, the event of each record failed
        (remembered in ``failed``, and reported at once).

        The callback is added when the send starts, before any flush can wait
        on it, so it runs before that flush resumes; a flush that begins after
        the send completed settles it first (``_settle_completed``). Either way
        the commit after the flush sees ``failed``.
        """
        if future.cancelled() or future.exception() is None:  # exception(): retrieved, never "never retrieved"
            if self._sensor_states:
                self._tell_sent(future, records)
            return
        error = future.exception()
        assert error is not None
        for topic, record, blame in records:
            self._report(error, topic, record, blame)

    def _tell_sent(
        self, future: asyncio.Future[Any], records: list[tuple[str, _Record, _Blame]]
    ) -> None:
        """Sensors: the records of ``future`` were acknowledged (or given up, if cancelled)."""
        states, sensors = self._sensor_states, self.sensors
        metadata = None if future.cancelled() else future.result()
        for _, record, _ in records:
            state = states.pop(id(record), None)
            if state is not None and sensors is not None and metadata is not None:
                sensors.on_send_completed(self, state, metadata)

    def _wake_handover(self) -> None:
        handed, waiting = self._handed, []
        for target, waiter in self._handover_waiters:
            if handed >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                waiting.append((target, waiter))
        self._handover_waiters = waiting

    def _report(
        self, error: BaseException, topic: str, record: _Record, blame: _Blame
    ) -> None:
        self.stats.errors += 1
        if self._sensor_states:
            state = self._sensor_states.pop(id(record), None)
            if state is not None and self.sensors is not None:
                self.sensors.on_send_error(self, error, state)
        message, agent = blame
        failure = SendFailed(error, topic, record[2], message, agent)
        if message is not None and self.failed is None:
            self.failed = failure
        if self.on_failure is not None:
            self.on_failure(failure)

    async def flush(self, unless: Callable[[], bool] | None = None, poll: float = 1.0) -> bool:
        """Wait until every record sent before the flush began is settled (acked or refused).

        Only those: under load, new sends arrive all the time, and a flush
        that waited for them too might never end (nor the commit behind it).
        A commit's offsets are taken before its flush begins, so the sends of
        their events are all in the snapshot. The snapshot includes sends an
        earlier, still running flush waits for. A flush does not raise for a
        refused send (as aiokafka's): ``failed`` tells the commit.

        With ``unless``, the wait is given up (False) as soon as ``unless()``
        holds, asked before the wait and every ``poll`` seconds: a commit
        gives its flush up when the membership goes in doubt. That covers
        both waits: for the sends still in the outbox to be handed to the
        client (whose ``send`` may block while its host is cut off, metadata
        unreachable) and for their acknowledgements. The flush runs in its
        caller's task, so a flush that needs no wait takes the same loop
        steps with or without ``unless``.
        """
        target = self._queued
        looks = _Looks(unless, poll)
        if self._handed < target:  # sends made before this flush, still in the outbox
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._handover_waiters.append((target, waiter))
            if mutants.ACTIVE and mutants.on(HANDOVER_IGNORES_DOUBT):
                await waiter
            elif not await looks.wait_for({waiter}):
                return False
        if not mutants.on(FLUSH_BEFORE_SETTLING):
            self._settle_completed()
        waiting = {future for number, future in self._pending if number < target and not future.done()}
        while waiting:
            if unless is None:
                await asyncio.wait(waiting)  # woken after the sends' own callbacks: all settled
                break
            if looks.give_up():
                return False
            _, waiting = await asyncio.wait(waiting, timeout=poll)
            # Woken by its timer, the wait may find sends done whose callbacks have not run
            # yet (they complete in the timer's iteration): the commit must see a refusal.
            if not mutants.on(FLUSH_BEFORE_SETTLING):
                self._settle_completed()
        return True

    # -- exactly-once ---------------------------------------------------------------
    def durable(self, sent: asyncio.Future[RecordMetadata]) -> asyncio.Future[RecordMetadata]:
        """A future of ``sent``'s record that is done once the record can never be undone.

        At-least-once that is the ack (``sent`` itself); exactly-once, the
        commit of its transaction (it fails if the transaction aborts). Call
        it right after ``send_soon``: the transaction is the one that send joined.
        """
        if not self.transactional:
            return sent
        future: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        waiting = self._next_durable if self._deferred is not None else self._durable
        waiting.append((sent, future))
        return future

    async def commit_transaction(self, offsets: Mapping[TP, int], group: GroupMetadata) -> None:
        """Flush, add ``offsets``, commit; then begin the next transaction.

        If any step fails the transaction is aborted (its writes never become
        durable) and the error is raised: ``CommitFailedError`` when the
        group no longer accepts this member's offsets, ``ProducerFencedError``
        when a newer producer took the transactional id.
        """
        self._deferred, self._next_durable = [], []
        durable, self._durable = self._durable, []
        try:
            await self.flush()
            if self.failed is not None:  # an event's output is missing: its transaction must not commit
                raise self.failed
            if offsets:
                await self._txn_producer.send_offsets_to_transaction(offsets, group)
            await self._txn_producer.commit_transaction()
        except asyncio.CancelledError:
            # Torn down (a crash, or a stop cancelling the commit loop): no more
            # requests; the broker aborts the transaction, or a successor fences it.
            for future in [f for _, f in durable + self._next_durable] + [
                later for *_, later in self._deferred or () if later is not None
            ]:
                future.cancel()
            self._deferred, self._next_durable = None, []
            raise
        except Exception as exc:
            await self._abort_quietly(exc)
            _fail(durable, exc)
            await self._begin_next()
            raise
        for sent, future in durable:
            complete_as(sent, future)
        await self._begin_next()

    async def abort_transaction(self, reason: BaseException) -> None:
        """Abort the open transaction (its writes fail with ``reason``) and begin the next."""
        self._deferred, self._next_durable = [], []
        await self._abort_quietly(reason)
        await self._begin_next()

    async def _abort_quietly(self, reason: BaseException) -> None:
        """Abort the open transaction; a fenced producer cannot, and need not (it is aborted)."""
        self._sent_in_transaction = False
        _fail(self._durable, reason)
        self._durable = []
        try:
            await self._txn_producer.abort_transaction()
        except Exception:
            pass

    async def _begin_next(self) -> None:
        """Begin the next transaction and start the sends that waited for it, in call order."""
        self._sent_in_transaction = False
        failure: BaseException | None = None
        try:
            await self._txn_producer.begin_transaction()
        except Exception as exc:  # fenced: the app is about to crash; the waiting sends fail
            failure = exc
        deferred, self._deferred = self._deferred or [], None
        self._durable, self._next_durable = self._next_durable, []
        if failure is not None:
            _fail(self._durable, failure)
            self._durable = []
        for topic, record, later in deferred:
            if later is None:  # a forward: nobody waits for it
                if failure is None:
                    self._start_send(topic, record, with_future=False)
            elif failure is not None:
                later.set_exception(failure)
                later.exception()  # reported by the commit that failed; no "never retrieved"
            else:
                sent = self._start_send(topic, record, with_future=True)
                assert sent is not None
                complete_as(sent, later)


class _Looks:
    """A flush's looks at ``unless``: the first at once, then one per ``poll`` seconds.

    A look sooner than ``poll`` after the last one is skipped: the commit's
    doubt must hold at looks a heartbeat interval apart (a process woken from
    a pause finds its heartbeat's answer in its socket), also when the
    handover ends just after a look and the wait for acknowledgements begins.
    """

    def __init__(self, unless: Callable[[], bool] | None, poll: float) -> None:
        self.unless, self.poll = unless, poll
        self.last: float | None = None

    def give_up(self) -> bool:
        """Whether to give the flush up now (a look that holds)."""
        if self.unless is None:
            return False
        now = asyncio.get_running_loop().time()
        if self.last is not None and now - self.last < self.poll:
            return False
        self.last = now
        return self.unless()

    async def wait_for(self, futures: set[asyncio.Future[Any]]) -> bool:
        """Wait for ``futures``, looking every ``poll`` seconds; False if a look held first."""
        if self.unless is None:
            await asyncio.wait(futures)
            return True
        while not all(f.done() for f in futures):
            if self.give_up():
                return False
            await asyncio.wait(futures, timeout=self.poll)
        return True


def _enqueue_of(producer: Any) -> Callable[..., Awaitable[asyncio.Future[RecordMetadata]]]:
    """The producer's ``enqueue``; for one with ``send`` only (a test double), a task per send.

    Every driver implements ``enqueue``. A bare ``send`` still starts in
    call order: the tasks are created in order and the drain does not wait
    for their acks.
    """
    enqueue = getattr(producer, "enqueue", None)
    if enqueue is not None:
        return enqueue

    async def send_in_a_task(topic: str, **args: Any) -> asyncio.Future[RecordMetadata]:
        return asyncio.ensure_future(producer.send(topic, **args))

    return send_in_a_task


def _fail(waiting: list[_Durable], reason: BaseException) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(reason)
            future.exception()  # a store that ignores it must not log "never retrieved"
