"""Every private detail of mode and aiokafka that detstream relies on, in one place.

Both libraries lack a public way to do a few things detstream needs (widen a
supervisor's restart budget, learn the group generation a consumer joined
in, commit offsets for a given generation, ...). Reaching into their
internals from all over the code would make an upgrade a hunt; here each
reach is one small function, and ``tests/unit/test_compat.py`` checks every
one of them against the installed versions, so an upgrade that moves one
fails there, by name, instead of somewhere at run time.

Nothing here imports aiokafka: the functions take its objects as given.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from typing import Any

import mode

from detstream.partitioner import murmur2

#: the versions these details were read from (tests/unit/test_compat.py checks them).
TESTED_MODE = "0.7"
TESTED_AIOKAFKA = "0.14"


# -- mode ------------------------------------------------------------------------------
def widen_restart_budget(supervisor: mode.SupervisorStrategy, restarts: float) -> None:
    """Let ``supervisor`` restart ``restarts`` actors at once before it gives up.

    mode sizes the rate limiter's bucket to ``over`` tokens; a OneForAllSupervisor
    restarting three actors at once would give up at once.
    """
    bucket = supervisor._bucket
    bucket.capacity = bucket._tokens = restarts


# -- aiokafka (its objects are passed in; this module never imports it) ----------------
async def wait_on_metadata(producer: Any, topic: str) -> None:
    """Wait until the producer's client knows ``topic``'s partitions (aiokafka's ``send`` does)."""
    await producer.client._wait_on_metadata(topic)


def transaction_manager(producer: Any) -> Any:
    """The producer's transaction state (None unless it is transactional)."""
    return producer._txn_manager


def replace_txn_offset_commit_handler(sender_module: Any, handler_class: type) -> None:
    """Make aiokafka's sender build its TxnOffsetCommit requests with ``handler_class``.

    ``Sender._do_txn_offset_commit`` looks its handler class up in its
    module when it commits a transaction's offsets. Process-wide, idempotent.
    """
    sender_module.TxnOffsetCommitHandler = handler_class


def attach_group_metadata(producer: Any, group: Any) -> None:
    """Note on the producer's sender the group metadata of the offsets it is about to send."""
    producer._sender._detstream_group_metadata = group


def attached_group_metadata(sender: Any) -> Any:
    """What ``attach_group_metadata`` noted on ``sender`` (None: nothing)."""
    return getattr(sender, "_detstream_group_metadata", None)


def fail_transaction_abortably(sender: Any, exc: BaseException) -> None:
    """Fail the open transaction of ``sender``'s producer with ``exc``, to be aborted.

    aiokafka's ``error_transaction`` (its abortable error) also forgets the
    partitions and the consumer group the transaction added at the broker,
    so the abort that follows takes it for an empty transaction and sends
    no EndTxn: the broker's transaction stays open, the next transaction's
    AddPartitionsToTxn joins it, and its commit commits the aborted records
    too. What was added is kept, so the abort reaches the broker.
    """
    manager = sender._txn_manager
    partitions, group = set(manager._txn_partitions), manager._txn_consumer_group
    manager.error_transaction(exc)
    manager._txn_partitions.update(partitions)
    manager._txn_consumer_group = group


def read_transaction_error(producer: Any) -> BaseException | None:
    """The error the producer's open transaction failed with, marked as read (None: none).

    aiokafka's ``error_transaction`` sets the error on the transaction's
    waiter, and ``aborting_transaction`` replaces a waiter that is done with
    a new one without reading it: when the old one is collected asyncio logs
    "Future exception was never retrieved" for an error that the send or the
    call that met it already reported. Read before an abort, it is not logged.
    """
    manager = producer._txn_manager
    waiter = manager._transaction_waiter if manager is not None else None
    if waiter is None or not waiter.done() or waiter.cancelled():
        return None
    return waiter.exception()


def sender_failure(producer: Any) -> BaseException | None:
    """Why the producer's sender routine died, if it did (then it can send nothing more).

    aiokafka turns an unexpected error in the routine (for instance a
    connection lost during a FindCoordinator, aio-libs/aiokafka#1151) into a
    fatal transaction state; its transaction calls then fail on an assert.
    """
    task = producer._sender.sender_task if producer._sender is not None else None
    if task is None or not task.done() or task.cancelled():
        return None
    return task.exception()


def max_request_size(producer: Any) -> int:
    return int(producer._max_request_size)


def check_record_size(producer: Any, key: bytes | None, value: bytes | None, headers: Any) -> None:
    """Raise aiokafka's ``MessageSizeTooLargeError`` for a record past ``max_request_size``."""
    producer._serialize(key, value, headers)


def batch_appender(builder: Any) -> Callable[[int, bytes | None, bytes | None, Any], bool]:
    """``builder.append`` (aiokafka's ``BatchBuilder``) without its keyword call and serializer
    hop per record: whether the record fit (a full batch closes itself, as there).

    For a builder without serializers (ours: the producer is made without
    them); one with serializers gets its own ``append``.
    """
    if builder._key_serializer is not None or builder._value_serializer is not None:
        return lambda ms, key, value, headers: builder.append(
            timestamp=ms, key=key, value=value, headers=headers) is not None
    inner = builder._builder.append

    def append(ms: int, key: bytes | None, value: bytes | None, headers: Any) -> bool:
        if builder._closed:
            return False
        if inner(builder._relative_offset, ms, key=key, value=value, headers=headers) is None:
            builder.close()
            return False
        builder._relative_offset += 1
        return True

    return append


def uses_default_partitioner(producer: Any) -> bool:
    """Whether ``producer`` partitions keyed records with aiokafka's ``DefaultPartitioner``."""
    return _is_aiokafka_default(type(producer._partitioner))


def default_partition(producer: Any, key: bytes | None, every: list[int], available: list[int]) -> int:
    """The partition aiokafka's ``send`` would choose for ``key`` (its configured partitioner).

    For a key under aiokafka's own ``DefaultPartitioner``, the same choice
    through ``detstream.partitioner`` (the same murmur2, remembered per key).
    """
    partitioner = producer._partitioner
    if key is not None and _is_aiokafka_default(type(partitioner)):
        return every[(murmur2(key) & 0x7FFFFFFF) % len(every)]
    return int(partitioner(key, every, available))


def _is_aiokafka_default(cls: type) -> bool:
    return cls.__name__ == "DefaultPartitioner" and cls.__module__ == "aiokafka.partitioner"


async def send_admin_request(admin: Any, request: Any) -> Any:
    """Send a raw protocol request through the admin client (no public way for some)."""
    return await admin._send_request(request)


def group_membership(consumer: Any) -> tuple[int, str]:
    """(generation, member id) the consumer joined its group with."""
    coordinator = consumer._coordinator
    return coordinator.generation, coordinator.member_id


def membership_reset(consumer: Any) -> bool:
    """Whether the group consumer forgot its membership, as aiokafka does when its group
    answered a heartbeat or commit with an unknown member id or a stale generation
    (``reset_generation``: generation -1, member id empty, rejoin requested)."""
    coordinator = consumer._coordinator
    return coordinator is not None and coordinator.generation == -1 and coordinator.member_id == ""


def watch_heartbeats(consumer: Any, answered: Callable[[float], object]) -> None:
    """Call ``answered(sent_at)`` (loop time) for each heartbeat of the group consumer that
    its group answered as one of a member it still knows.

    aiokafka keeps the time of its last successful heartbeat in a local of
    its heartbeat routine; the routine calls ``_do_heartbeat`` afresh each
    time (True: answered with no error, or "rebalancing", which it counts
    as success too), so the coordinator's method is wrapped, once.
    """
    coordinator = consumer._coordinator
    if coordinator is None or getattr(coordinator, "_detstream_heartbeats", False):
        return
    heartbeat = coordinator._do_heartbeat

    async def do_heartbeat() -> bool:
        sent_at = asyncio.get_running_loop().time()
        ok = await heartbeat()
        if ok:
            answered(sent_at)
        return bool(ok)

    coordinator._do_heartbeat = do_heartbeat
    coordinator._detstream_heartbeats = True


def joining_group(consumer: Any) -> bool:
    """Whether the group consumer is connected and waits for its group's assignment.

    aiokafka's ``start`` connects, then makes its group coordinator, then
    waits for the first assignment: a start waiting past the coordinator's
    creation waits for the group (join, sync), not for the broker.
    """
    subscription = consumer._subscription.subscription
    return consumer._coordinator is not None and subscription is not None and (
        subscription.assignment is None
    )


def current_assignment(consumer: Any) -> Any:
    """The consumer's assignment in force (aiokafka's ``Assignment``), or None between two."""
    subscription = consumer._subscription.subscription
    return subscription.assignment if subscription is not None else None


def fetch_state(consumer: Any, tp: Any) -> tuple[int | None, int | None, int | None]:
    """(position, highwater, last stable offset) of an assigned partition, without a request.

    aiokafka's public ``position`` is a coroutine (it may wait for an offset
    reset); ``highwater`` and ``last_stable_offset`` assert the partition is
    assigned. One look at the partition's fetch state answers all three, or
    ``(None, None, None)`` for a partition not assigned.
    """
    assignment = current_assignment(consumer)
    state = assignment.state_value(tp) if assignment is not None else None
    if state is None:
        return None, None, None
    position = state.position if state.has_valid_position else None
    return position, state.highwater, state.lso


def build_fetched_records_with(consumer: Any, make: Callable[[Any, Any], Any]) -> None:
    """Have the records ``consumer`` fetched and has not returned yet made by ``make(tp, record)``
    (aiokafka's ``TopicPartition`` and its record of a batch) instead of its ``ConsumerRecord``.

    aiokafka turns every fetched record into a dataclass that the caller
    would only convert again, field by field: one Python construction per
    record that ``make`` saves. Its iterator looks the maker up on each
    partition's record set per record, so setting it there takes effect for
    what is not iterated yet; record sets fetched later still make aiokafka's
    records (the caller converts those). ``make`` receives no deserialized key
    or value: for a consumer made without deserializers (ours) that is the same.
    """
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None:  # not started
        return
    for result in fetcher._records.values():
        records = getattr(result, "_partition_records", None)  # a FetchError has none
        if records is not None and "_consumer_record" not in records.__dict__:
            records._consumer_record = make


async def commit_for_assignment(consumer: Any, assignment: Any, offsets: Any) -> None:
    """Commit ``offsets`` as a member of the generation ``assignment`` belongs to.

    aiokafka's public ``commit`` checks the assignment in force; a rebalance
    listener committing revoked partitions needs the one it is giving up.
    """
    await consumer._coordinator.commit_offsets(assignment, offsets)


def heed_offset_fetch_errors(coordinator_class: Any, errors: Any) -> None:
    """Make aiokafka's group coordinator raise an OffsetFetch response's group-level error.

    From v2 on, a broker reports a group-level failure (NOT_COORDINATOR,
    COORDINATOR_LOAD_IN_PROGRESS while a new coordinator loads the group
    after a broker restart) as the response's top-level error, with no
    partitions. aiokafka 0.14 reads only the partitions, so it answers "no
    committed offset" for every one of them, and the consumer starts over
    from ``auto_offset_reset``: the whole topic processed again, its output
    committed again even under exactly-once. Found by the simulator running
    aiokafka on the wire (``--driver aiokafka``, word count, default seed 3).

    Raised, the error goes through aiokafka's own retry: a retriable one
    waits ``retry_backoff_ms`` and asks again, after marking the coordinator
    dead where it moved. Idempotent; every OffsetFetch in the process is checked.
    """
    if getattr(coordinator_class, "_detstream_heeds_offset_fetch_errors", False):
        return
    send = coordinator_class._send_req
    moved = (errors.NotCoordinatorForGroupError, errors.GroupCoordinatorNotAvailableError)

    async def send_req(self: Any, request: Any) -> Any:
        response = await send(self, request)
        code = getattr(response, "error_code", 0) if getattr(response, "API_KEY", None) == 9 else 0
        if code:
            error = errors.for_code(code)
            if error in moved:
                self.coordinator_dead()
            raise error()
        return response

    coordinator_class._send_req = send_req
    coordinator_class._detstream_heeds_offset_fetch_errors = True


#: the per-broker requests of the offset lookup running in this context (see below).
_LOOKUP_REQUESTS: contextvars.ContextVar[set[asyncio.Task[Any]] | None] = contextvars.ContextVar(
    "detstream_offset_lookup_requests", default=None
)


def cancel_orphaned_offset_requests(fetcher_class: Any) -> None:
    """Make a failed offset lookup of aiokafka's fetcher cancel its requests to the other brokers.

    ``beginning_offsets``, ``end_offsets`` and ``offsets_for_times`` send one
    ListOffsets request per partition leader and ``asyncio.gather`` them;
    when one fails (a broker down, a connection closed), gather fails at once
    and leaves the others running, and the lookup retries with new ones. A
    request to a broker the host cannot reach then waits out its request
    timeout, past the consumer's stop, and a connection it completes after
    the stop lands in a closed client. Found by the simulator running aiokafka
    on the wire (``stopped-app-idle``: standby_takeover, chaos seed 14, a
    standby reader's lookup during a broker crash and a host cut). Idempotent.
    """
    if getattr(fetcher_class, "_detstream_cancels_orphaned_offset_requests", False):
        return
    lookup, request = fetcher_class._proc_offset_requests, fetcher_class._proc_offset_request

    @functools.wraps(lookup)
    async def lookup_all(self: Any, timestamps: Any) -> Any:
        requests: set[asyncio.Task[Any]] = set()
        token = _LOOKUP_REQUESTS.set(requests)  # gather's tasks start in a copy of this context
        try:
            return await lookup(self, timestamps)
        finally:
            _LOOKUP_REQUESTS.reset(token)
            for task in requests:  # failed or cancelled: the others are of no use now
                task.cancel()

    @functools.wraps(request)
    async def lookup_one(self: Any, node_id: Any, topic_data: Any) -> Any:
        requests, task = _LOOKUP_REQUESTS.get(), asyncio.current_task()
        if requests is None or task is None:
            return await request(self, node_id, topic_data)
        requests.add(task)
        try:
            return await request(self, node_id, topic_data)
        finally:
            requests.discard(task)

    fetcher_class._proc_offset_requests = lookup_all
    fetcher_class._proc_offset_request = lookup_one
    fetcher_class._detstream_cancels_orphaned_offset_requests = True


def register_broker_error(errors: Any, error_class: Any) -> None:
    """Make aiokafka's ``errors.for_code`` know ``error_class`` (an error code it lacks).

    aiokafka maps codes to classes once, at import (``errors.kafka_errors``);
    an unknown code becomes ``UnknownError``, which names nothing in a log.
    """
    errors.kafka_errors.setdefault(error_class.errno, error_class)


def carry_group_instance_id(coordinator_class: Any, rewrite: Any, fenced: Any) -> None:
    """Send a static member's group requests through ``rewrite(request, instance_id)`` and note
    a response ``fenced(response)`` says FENCED_INSTANCE_ID (see ``instance_fenced``).

    A member without ``group_instance_id`` sends its requests as they are.
    Idempotent; every group coordinator of the process is concerned.
    """
    if getattr(coordinator_class, "_detstream_carries_instance_id", False):
        return
    send = coordinator_class._send_req

    async def send_req(self: Any, request: Any) -> Any:
        instance = self._group_instance_id
        if instance is None:
            return await send(self, request)
        response = await send(self, rewrite(request, instance))
        if fenced(response):
            self._detstream_fenced_instance = instance
        return response

    coordinator_class._send_req = send_req
    coordinator_class._detstream_carries_instance_id = True


def fetch_offsets_as(coordinator_class: Any, rewrite: Any, answered: Any) -> None:
    """Send a marked consumer's group requests through ``rewrite(request)`` and hand
    aiokafka ``answered(response)`` (see ``require_stable_offsets``).

    Unmarked consumers send their requests as they are. Idempotent; every
    group coordinator of the process is concerned.
    """
    if getattr(coordinator_class, "_detstream_fetches_offsets_as", False):
        return
    send = coordinator_class._send_req

    async def send_req(self: Any, request: Any) -> Any:
        if not getattr(self._client, "_detstream_require_stable", False):
            return await send(self, request)
        return answered(await send(self, rewrite(request)))

    coordinator_class._send_req = send_req
    coordinator_class._detstream_fetches_offsets_as = True


def require_stable_offsets(consumer: Any) -> None:
    """Mark ``consumer`` (before it starts) as one whose offset fetches ask for stable offsets.

    The mark is on its client, which its group coordinator (made in
    ``start``, which may fetch offsets before it returns) sends through.
    """
    consumer._client._detstream_require_stable = True


def on_connection_events(connection_class: Any, connected: Any, closing: Any) -> None:
    """Call ``connected(connection)`` once aiokafka's connection is up, and ``closing(connection)``
    as it starts to close, before its socket goes (``close`` sends nothing, it hands the
    socket to asyncio to close). Idempotent; every aiokafka connection of the process."""
    if getattr(connection_class, "_detstream_connection_events", False):
        return
    connect, close = connection_class.connect, connection_class.close

    async def connect_then(self: Any) -> Any:
        result = await connect(self)
        connected(self)
        return result

    def close_after(self: Any, reason: Any = None, exc: Any = None) -> Any:
        closing(self)
        return close(self, reason, exc)

    connection_class.connect = connect_then
    connection_class.close = close_after
    connection_class._detstream_connection_events = True


def connection_socket(connection: Any) -> Any:
    """The socket under an open aiokafka connection (None: closed, or a transport without one)."""
    writer = connection._writer
    return None if writer is None else writer.transport.get_extra_info("socket")


def awaits_responses(connection: Any) -> bool:
    """Whether an aiokafka connection has requests whose responses it still awaits."""
    return bool(connection._requests)


def instance_fenced(consumer: Any) -> str | None:
    """The group instance id the consumer's group coordinator was fenced as, if it was."""
    coordinator = consumer._coordinator
    return getattr(coordinator, "_detstream_fenced_instance", None) if coordinator is not None else None


def bootstrap_connections(exc: BaseException) -> list[Any]:
    """The connections aiokafka's ``AIOKafkaClient.bootstrap`` had open where ``exc`` left it.

    aiokafka 0.14 closes its bootstrap connection when the metadata request
    fails with a Kafka error, not when the start is cancelled: the
    connection then stays open with its reader task running (until the
    broker drops it as idle, 10 minutes later). Its frame is in the
    traceback of the cancellation, local ``bootstrap_conn``.
    """
    found = []
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "bootstrap":
            conn = frame.f_locals.get("bootstrap_conn")
            if conn is not None:
                found.append(conn)
        tb = tb.tb_next
    return found
