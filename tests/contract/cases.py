"""The transport contract as executable cases, run over every driver.

Each case is an ``async def case(backend)`` using only the transport seam
(``detstream.transport.base``): what it asserts, the engine may rely on, on
the simulator and on Kafka alike. ``tests/unit/sim/test_transport_contract.py``
runs them on the sim driver, ``tests/integration/test_transport_contract.py``
on aiokafka against a real broker. docs/transport-contract.md says which
behaviours are promised (pinned here) and which are only possible (the sim
produces them adversarially; they cannot be pinned, only survived).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from detstream._types import TP
from detstream.errors import CommitFailedError, FencedInstanceIdError, ProducerSendError

DEADLINE = 30.0
#: settings of every case's app: a producer that lets records past Kafka's default
#: ``max.message.bytes`` (1048588), so the broker's own limit is reachable.
APP_SETTINGS: dict[str, Any] = {"producer_max_request_size": 2_000_000, "broker_heartbeat_interval": 1.0}
#: Kafka's default ``max.message.bytes`` of a topic (a record batch's size limit).
KAFKA_MAX_MESSAGE_BYTES = 1_048_588


@dataclass
class Backend:
    """A driver under test: its transport, the app whose settings it has, and the clients a
    case made (stopped after it)."""

    transport: Any
    app: Any
    clients: list[Any] = field(default_factory=list)

    async def topic(self, partitions: int) -> str:
        name = f"contract-{secrets.token_hex(4)}"
        admin = self.transport.create_admin(client_id="contract-admin")
        self.clients.append(admin)
        await admin.create_topic(name, partitions=partitions)
        return name

    async def producer(self) -> Any:
        producer = self.transport.create_producer(client_id="contract-producer")
        self.clients.append(producer)
        await producer.start()
        return producer

    async def consumer(self, group_id: str | None = None, *, instance: str | None = None) -> Any:
        if instance is None:
            consumer = self.transport.create_consumer(client_id="contract-consumer", group_id=group_id)
        else:
            consumer = self.transport.create_consumer(
                client_id="contract-consumer", group_id=group_id, group_instance_id=instance
            )
        self.clients.append(consumer)
        return consumer

    async def close(self) -> None:
        for client in reversed(self.clients):
            stop = getattr(client, "stop", None)
            if stop is not None:
                await stop()


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` until true; fail naming ``what`` past the deadline (virtual in sim)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while not await check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def fill(backend: Backend, topic: str, partitions: int, per_partition: int) -> None:
    producer = await backend.producer()
    for partition in range(partitions):
        for i in range(per_partition):
            await producer.send(topic, key=None, value=b"%d" % i, partition=partition)


async def read(consumer: Any, want: int) -> dict[TP, list[int]]:
    """Offsets returned per partition until ``want`` records came back."""
    got: dict[TP, list[int]] = {}
    for record in await read_records(consumer, want):
        got.setdefault(TP(record.topic, record.partition), []).append(record.offset)
    return got


async def read_records(consumer: Any, want: int) -> list[Any]:
    """The records fetched until ``want`` came back, in fetch order."""
    got: list[Any] = []

    async def enough() -> bool:
        for records in (await consumer.getmany(0.5)).values():
            got.extend(records)
        return len(got) >= want

    await until(enough, f"{want} records")
    return got


async def paused_partitions_return_nothing(backend: Backend) -> None:
    """After ``pause`` returns, no record of the partition comes back until ``resume``."""
    topic = await backend.topic(2)
    await fill(backend, topic, 2, 5)
    consumer = await backend.consumer()
    p0, p1 = TP(topic, 0), TP(topic, 1)
    consumer.assign([p0, p1])
    await consumer.start()
    consumer.seek(p0, 0)
    consumer.seek(p1, 0)
    consumer.pause(p0)
    got = await read(consumer, 5)
    assert set(got) == {p1}, got
    consumer.resume(p0)
    assert (await read(consumer, 5)) == {p0: [0, 1, 2, 3, 4]}


async def a_seek_moves_the_next_fetch(backend: Backend) -> None:
    """After ``seek(tp, n)`` the next records of ``tp`` start at ``n`` (nothing stale)."""
    topic = await backend.topic(1)
    await fill(backend, topic, 1, 8)
    consumer = await backend.consumer()
    tp = TP(topic, 0)
    consumer.assign([tp])
    await consumer.start()
    consumer.seek(tp, 0)
    assert (await read(consumer, 8))[tp] == list(range(8))
    consumer.seek(tp, 3)
    assert (await read(consumer, 5))[tp] == [3, 4, 5, 6, 7]
    assert await consumer.position(tp) == 8


async def start_offsets_are_committed_else_the_reset_point(backend: Backend) -> None:
    """``start_offsets``: the group's committed offset, else ``earliest`` (detstream's default)."""
    topic = await backend.topic(2)
    await fill(backend, topic, 2, 6)
    consumer = await backend.consumer(group_id=f"contract-{secrets.token_hex(4)}")
    p0, p1 = TP(topic, 0), TP(topic, 1)
    consumer.assign([p0, p1])
    await consumer.start()
    await consumer.commit({p0: 4})
    assert await consumer.start_offsets([p0, p1]) == {p0: 4, p1: 0}


async def known_offsets_are_the_position_and_the_fetched_log_end(backend: Backend) -> None:
    """``known_offsets``: (position, log end) as the last fetch left them, no request made.

    What ``/metrics`` reads for consumer lag at every scrape. A partition
    the consumer does not read is left out.
    """
    topic = await backend.topic(2)
    await fill(backend, topic, 1, 6)
    consumer = await backend.consumer()
    p0, p1 = TP(topic, 0), TP(topic, 1)
    consumer.assign([p0])
    await consumer.start()
    consumer.seek(p0, 2)
    assert (await read(consumer, 4))[p0] == [2, 3, 4, 5]
    assert consumer.known_offsets([p0, p1]) == {p0: (6, 6)}


async def refused_as_too_large(call: Callable[..., Awaitable[Any]], topic: str, backend: Backend) -> None:
    """``call`` (send or enqueue) refuses a record over ``producer_max_request_size``, not retriably."""
    limit = int(backend.app.conf.producer_max_request_size)
    try:
        await call(topic, key=None, value=b"x" * (limit + 1), partition=0)
    except ProducerSendError as exc:
        assert "MessageSizeTooLarge" in f"{type(exc).__name__} {exc}", exc
    else:
        raise AssertionError(f"{call.__name__} accepted a record over producer_max_request_size")


async def an_oversized_send_fails_on_its_own_future(backend: Backend) -> None:
    """A record over ``producer_max_request_size`` fails its send (not retriable); later sends go."""
    topic = await backend.topic(1)
    producer = await backend.producer()
    await refused_as_too_large(producer.send, topic, backend)
    meta = await producer.send(topic, key=None, value=b"fits", partition=0)
    assert meta.offset == 0  # nothing of the refused record reached the log


async def the_broker_refuses_a_batch_over_the_topics_max_message_bytes(backend: Backend) -> None:
    """A record the producer lets through but over the topic's ``max.message.bytes``
    (Kafka's default when the topic sets none) fails its send with MESSAGE_TOO_LARGE
    from the broker, not retried; later sends go."""
    topic = await backend.topic(1)
    producer = await backend.producer()
    try:
        await producer.send(topic, key=None, value=b"x" * KAFKA_MAX_MESSAGE_BYTES, partition=0)
    except ProducerSendError as exc:
        assert "MessageSizeTooLarge" in f"{type(exc).__name__} {exc}", exc
    else:
        raise AssertionError("the broker accepted a batch over the topic's max.message.bytes")
    meta = await producer.send(topic, key=None, value=b"fits", partition=0)
    assert meta.offset == 0


async def enqueued_records_keep_call_order_and_ack_later(backend: Backend) -> None:
    """``enqueue`` returns once the record is buffered; records land in enqueue order.

    The engine's producer hands records over one at a time from a single
    task and settles each caller's future from the ack: no task per record.
    An oversized record is refused by ``enqueue`` itself (aiokafka checks the
    size before buffering), and the records around it still go.
    """
    topic = await backend.topic(1)
    producer = await backend.producer()
    acks = [await producer.enqueue(topic, key=None, value=b"%d" % i, partition=0) for i in range(3)]
    await refused_as_too_large(producer.enqueue, topic, backend)
    acks += [await producer.enqueue(topic, key=None, value=b"3", partition=0)]
    assert [(await ack).offset for ack in acks] == [0, 1, 2, 3]


async def forwarded_records_share_their_batch_future_and_keep_call_order(backend: Backend) -> None:
    """``forward`` queues as ``enqueue`` does (one order for both); its future is its batch's.

    Records forwarded one after the other, without suspending, to one
    partition join one batch: they get the same future, done once the broker
    acked all of them. Forwards interleaved with enqueues and with another
    partition keep their order per partition. An oversized forward is
    refused by ``forward`` itself, as by ``enqueue``.
    """
    topic = await backend.topic(2)
    producer = await backend.producer()
    first = await producer.forward(topic, key=None, value=b"f0", partition=0)
    second = await producer.forward(topic, key=None, value=b"f1", partition=0)
    assert first is second  # one batch, one future: no future per forwarded record
    other = await producer.forward(topic, key=None, value=b"g0", partition=1)
    assert other is not first  # another partition, another batch
    ack = await producer.enqueue(topic, key=None, value=b"e2", partition=0)
    third = await producer.forward(topic, key=None, value=b"f3", partition=0)
    await refused_as_too_large(producer.forward, topic, backend)
    for batch in (first, other, third):
        assert await batch is None
    assert (await ack).offset == 2
    consumer = await backend.consumer()
    consumer.assign([TP(topic, 0), TP(topic, 1)])
    await consumer.start()
    got: dict[TP, list[bytes]] = {}
    async def all_read() -> bool:
        for tp, records in (await consumer.getmany(1.0)).items():
            got.setdefault(tp, []).extend(r.value for r in records)
        return sum(len(values) for values in got.values()) >= 5
    await until(all_read, "the forwarded and enqueued records")
    assert got == {TP(topic, 0): [b"f0", b"f1", b"e2", b"f3"], TP(topic, 1): [b"g0"]}


async def forward_nowait_takes_a_record_as_forward_does_or_says_to_wait(backend: Backend) -> None:
    """``forward_nowait`` is ``forward`` without a coroutine where the client need not wait.

    It returns the future ``forward`` would (the batch's), or None where
    ``forward`` would wait (metadata not known yet, no room): the caller
    then awaits ``forward``, and the record takes the same place in the
    order. An oversized record is refused by the call itself.
    """
    topic = await backend.topic(1)
    producer = await backend.producer()

    async def forward(value: bytes) -> asyncio.Future[None]:
        batch = producer.forward_nowait(topic, None, value, 0)
        if batch is None:
            batch = await producer.forward(topic, key=None, value=value, partition=0)
        return batch

    first = await forward(b"n0")
    assert await forward(b"n1") is first  # no suspension between them: one batch
    limit = int(backend.app.conf.producer_max_request_size)
    try:
        producer.forward_nowait(topic, None, b"x" * (limit + 1), 0)
    except ProducerSendError as exc:
        assert "MessageSizeTooLarge" in f"{type(exc).__name__} {exc}", exc
    else:
        raise AssertionError("forward_nowait accepted a record over producer_max_request_size")
    last = await producer.forward(topic, key=None, value=b"n2", partition=0)
    for batch in (first, last):
        assert await batch is None
    consumer = await backend.consumer()
    consumer.assign([TP(topic, 0)])
    await consumer.start()
    assert [r.value for r in (await read_records(consumer, 3))] == [b"n0", b"n1", b"n2"]


async def a_clients_first_send_to_a_topic_waits_for_its_metadata(backend: Backend) -> None:
    """A client knows no topic until it asks: its first send to one waits for the topic's metadata.

    aiokafka's bootstrap asks for no topic, and its ``send`` waits for the
    topic's metadata (a request to a broker, which a host cut off from the
    brokers holds). So ``forward_nowait`` says to wait at a producer's first
    record for a topic, and not at the next one: the engine's flush must not
    wait blindly for a send still waiting there (docs/transport-contract.md,
    Producing).
    """
    topic = await backend.topic(1)
    producer = await backend.producer()
    assert producer.forward_nowait(topic, None, b"m0", 0) is None
    first = await producer.forward(topic, key=None, value=b"m0", partition=0)
    second = producer.forward_nowait(topic, None, b"m1", 0)
    assert second is not None  # known now: no wait
    for batch in (first, second):
        assert await batch is None


class Listener:
    """A rebalance listener that notes what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, set[TP]]] = []

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        self.calls.append(("revoked", set(revoked)))

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        self.calls.append(("assigned", set(assigned)))


async def static_member(backend: Backend, group: str, topic: str, instance: str) -> tuple[Any, Listener]:
    """A started group consumer of ``topic`` with group instance id ``instance``, once assigned."""
    consumer = await backend.consumer(group, instance=instance)
    listener = Listener()
    consumer.subscribe([topic], listener)
    await consumer.start()

    async def assigned() -> bool:
        await consumer.getmany(0.1)
        return bool(consumer.assignment()) and consumer.generation >= 0

    await until(assigned, f"an assignment for static member {instance!r}")
    return consumer, listener


async def a_restarted_static_member_takes_its_place_without_a_rebalance(backend: Backend) -> None:
    """KIP-345: a static member does not leave its group when it stops; a consumer joining with
    its instance id takes its place at once (not after its session timeout), with its
    partitions and its generation: the group does not rebalance."""
    topic = await backend.topic(2)
    group = f"contract-{secrets.token_hex(4)}"
    first, _ = await static_member(backend, group, topic, "instance-1")
    partitions, generation = first.assignment(), first.generation
    assert partitions == {TP(topic, 0), TP(topic, 1)}, partitions
    await first.stop()
    loop = asyncio.get_running_loop()
    began = loop.time()
    second, _ = await static_member(backend, group, topic, "instance-1")
    waited = loop.time() - began
    session = float(backend.app.conf.broker_session_timeout)
    assert waited < session / 4, f"the restarted static member waited {waited:.1f}s (session {session:g}s)"
    assert (second.assignment(), second.generation) == (partitions, generation)
    await second.commit({TP(topic, 0): 0})  # a member of the group's generation


async def a_second_member_with_the_instance_id_fences_the_first(backend: Backend) -> None:
    """Two consumers with one group instance id: the later one takes the instance (partitions and
    generation, no rebalance); the earlier one is fenced for good: ``FencedInstanceIdError`` from
    ``commit`` and, after its next heartbeat, ``getmany``. It does not join again (which would
    take the instance back): the later one keeps it, its listener told nothing more."""
    topic = await backend.topic(2)
    group = f"contract-{secrets.token_hex(4)}"
    first, _ = await static_member(backend, group, topic, "instance-1")
    generation = first.generation
    second, listener = await static_member(backend, group, topic, "instance-1")
    assert (second.assignment(), second.generation) == (first.assignment(), generation)
    told = list(listener.calls)
    try:
        await first.commit({TP(topic, 0): 0})
    except FencedInstanceIdError as exc:
        assert exc.instance == "instance-1" and exc.group == group, exc
    else:
        raise AssertionError("the replaced static member's commit was accepted")

    async def fenced() -> bool:
        try:
            await first.getmany(0.1)
        except FencedInstanceIdError:
            return True
        return False

    await until(fenced, "the replaced static member's fetch to fail fenced")
    loop = asyncio.get_running_loop()
    calm_until = loop.time() + 2.5 * float(backend.app.conf.broker_heartbeat_interval)
    while loop.time() < calm_until:  # a few heartbeats: nobody takes the instance back
        await second.getmany(0.2)
    assert listener.calls == told, listener.calls
    assert second.generation == generation
    await second.commit({TP(topic, 0): 0})


async def transactional_producer(backend: Backend) -> Any:
    producer = backend.transport.create_producer(
        client_id="contract-txn", transactional_id=f"contract-{secrets.token_hex(4)}",
        transaction_timeout=30.0,
    )
    backend.clients.append(producer)
    await producer.start()
    return producer


async def transactional_offsets_of_a_replaced_member_are_refused(backend: Backend) -> None:
    """KIP-447: ``send_offsets_to_transaction`` with the group metadata of a member another
    consumer replaced is refused (``CommitFailedError``; here ``FencedInstanceIdError``, the
    static member's instance taken); the abort that follows aborts the transaction at the
    broker (its record never visible, not even after the next commit), and the offsets of
    the current member commit with the next transaction."""
    topic = await backend.topic(1)
    group = f"contract-{secrets.token_hex(4)}"
    first, _ = await static_member(backend, group, topic, "instance-1")
    replaced = first.group_metadata()
    second, _ = await static_member(backend, group, topic, "instance-1")
    producer = await transactional_producer(backend)
    await producer.begin_transaction()
    await producer.send(topic, key=None, value=b"zombie", partition=0)
    try:
        await producer.send_offsets_to_transaction({TP(topic, 0): 1}, replaced)
    except CommitFailedError:
        pass
    else:
        raise AssertionError("the replaced member's transactional offsets were accepted")
    await producer.abort_transaction()
    await producer.begin_transaction()
    await producer.send(topic, key=None, value=b"owner", partition=0)
    await producer.send_offsets_to_transaction({TP(topic, 0): 3}, second.group_metadata())
    await producer.commit_transaction()

    async def committed() -> bool:
        return await second.committed(TP(topic, 0)) == 3

    await until(committed, "the current member's transactional offsets")
    reader = backend.transport.create_consumer(
        client_id="contract-reader", group_id=None, isolation_level="read_committed"
    )
    backend.clients.append(reader)
    reader.assign([TP(topic, 0)])
    await reader.start()
    reader.seek(TP(topic, 0), 0)
    assert [r.value for r in await read_records(reader, 1)] == [b"owner"]


async def a_read_committed_offset_lookup_waits_for_an_open_transaction(backend: Backend) -> None:
    """KIP-447's stable offset fetch: a read_committed consumer's ``committed`` (and where it
    starts a partition) waits while an open transaction holds offsets of the partition, and
    then sees the transaction's; a read_uncommitted consumer reads the old offset at once."""
    topic = await backend.topic(1)
    group = f"contract-{secrets.token_hex(4)}"
    tp = TP(topic, 0)
    owner = await backend.consumer(group)
    owner.subscribe([topic], Listener())
    await owner.start()

    async def assigned() -> bool:
        await owner.getmany(0.1)
        return tp in owner.assignment()

    await until(assigned, "the owner's assignment")
    producer = await transactional_producer(backend)
    await producer.begin_transaction()
    await producer.send_offsets_to_transaction({tp: 9}, owner.group_metadata())
    plain = await backend.consumer(group)
    stable = backend.transport.create_consumer(
        client_id="contract-stable", group_id=group, isolation_level="read_committed"
    )
    backend.clients.append(stable)
    await plain.start()
    await stable.start()
    assert await plain.committed(tp) is None
    lookup = asyncio.ensure_future(stable.committed(tp))
    done, _ = await asyncio.wait({lookup}, timeout=2.0)
    assert not done, "a read_committed offset lookup answered while a transaction held the offset"
    await producer.commit_transaction()
    assert await lookup == 9


CASES = [
    paused_partitions_return_nothing,
    a_seek_moves_the_next_fetch,
    start_offsets_are_committed_else_the_reset_point,
    known_offsets_are_the_position_and_the_fetched_log_end,
    an_oversized_send_fails_on_its_own_future,
    the_broker_refuses_a_batch_over_the_topics_max_message_bytes,
    enqueued_records_keep_call_order_and_ack_later,
    forwarded_records_share_their_batch_future_and_keep_call_order,
    forward_nowait_takes_a_record_as_forward_does_or_says_to_wait,
    a_clients_first_send_to_a_topic_waits_for_its_metadata,
    a_restarted_static_member_takes_its_place_without_a_rebalance,
    a_second_member_with_the_instance_id_fences_the_first,
    transactional_offsets_of_a_replaced_member_are_refused,
    a_read_committed_offset_lookup_waits_for_an_open_transaction,
]
