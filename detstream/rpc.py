"""Agent RPC: ``ask``, ``map`` and ``join`` over Kafka, as Faust does them.

A request is an ordinary record on the agent's topic carrying two headers,
``Faust-Ag-ReplyTo`` (the caller's reply topic) and ``Faust-Ag-CorrelationId``.
An agent that yields while processing such an event sends a
``ReqRepResponse(key, value, correlation_id)`` to that reply topic (see
``Actor._run``); the caller's :class:`ReplyConsumer` reads it and fulfils the
:class:`ReplyPromise` waiting for that correlation id.

The reply consumer is not a member of the app's consumer group: it assigns
the partitions of its reply topics by hand, starting at their end, so it
needs no rebalance and works in client-only mode (``app.start_client()``:
producer and replies, no group, no agents), e.g. from a script. It is made
and started on the first ask (or with the app when ``reply_create_topic`` is
set), after creating the reply topic, and before the first request is sent,
so no reply can be missed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mode import Service

from ._types import TP, RecordMetadata
from .clock import new_uuid
from .events import Event, current_event
from .models import BLESSED_KEY, Record, registry

if TYPE_CHECKING:
    from .app import App
    from .channel import Channel

__all__ = [
    "CORRELATION_ID_HEADER",
    "REPLY_TO_HEADER",
    "AgentRPC",
    "BarrierState",
    "ReplyConsumer",
    "ReplyPromise",
    "ReqRepResponse",
    "replies_for",
]

#: Faust's header names (``use_reply_headers=True``, its default).
REPLY_TO_HEADER = "Faust-Ag-ReplyTo"
CORRELATION_ID_HEADER = "Faust-Ag-CorrelationId"


class ReqRepResponse(Record, serializer="json", namespace="@ReqRepResponse"):
    """What an agent sends to the reply topic (Faust's record, same JSON)."""

    key: Any
    value: Any
    correlation_id: str


class ReplyPromise(asyncio.Future):  # type: ignore[type-arg]
    """A future of the reply to one request; ``await`` it for the agent's answer."""

    def __init__(self, reply_to: str, correlation_id: str) -> None:
        super().__init__(loop=asyncio.get_running_loop())
        self.reply_to = reply_to
        self.correlation_id = correlation_id

    def fulfill(self, correlation_id: str, value: Any) -> None:
        if correlation_id != self.correlation_id:
            raise ValueError(f"reply {correlation_id!r} is not for {self.correlation_id!r}")
        if not self.done():
            self.set_result(value)

    def fail(self, exc: BaseException) -> None:
        """The request could not be sent, or the app stopped: no reply will come."""
        if not self.done():
            self.set_exception(exc)
            self.exception()  # a caller that gave up must not log "never retrieved"

    @property
    def correlation_ids(self) -> tuple[str, ...]:
        return (self.correlation_id,)


class BarrierState(ReplyPromise):
    """Replies to many requests (``map``/``join``): a queue, done once all arrived.

    ``add`` each correlation id before its request is sent, ``finalize`` once
    all are sent; the barrier is done when every reply is in.
    """

    def __init__(self, reply_to: str) -> None:
        super().__init__(reply_to, correlation_id="")
        self.pending: set[str] = set()
        self.total = 0
        self.size: int | None = None
        self._results: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._taken = 0
        self._error: BaseException | None = None

    @property
    def correlation_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.pending))

    def add(self, correlation_id: str) -> None:
        self.pending.add(correlation_id)
        self.total += 1

    def finalize(self) -> None:
        self.size = self.total
        self._maybe_done()

    def fulfill(self, correlation_id: str, value: Any) -> None:
        if correlation_id not in self.pending:
            return  # a second yield for the same request
        self.pending.discard(correlation_id)
        self._results.put_nowait((correlation_id, value))
        self._maybe_done()

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            self._results.put_nowait(("", _FAILED))
        super().fail(exc)

    def _maybe_done(self) -> None:
        if self.size is not None and not self.pending and not self.done():
            self.set_result(None)

    def get_nowait(self) -> tuple[str, Any] | None:
        """A reply that has arrived, or None."""
        try:
            item = self._results.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return self._took(item)

    async def iterate(
        self, deadline: float | None = None, what: str = "the requests"
    ) -> AsyncIterator[tuple[str, Any]]:
        """``(correlation_id, value)`` as replies arrive, until all of them were taken."""
        loop = asyncio.get_running_loop()
        while self.size is None or self._taken < self.size:
            if deadline is None:
                item = await self._results.get()
            else:
                try:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise asyncio.TimeoutError
                    item = await asyncio.wait_for(self._results.get(), remaining)
                except asyncio.TimeoutError:
                    raise asyncio.TimeoutError(
                        f"{what}: {len(self.pending)} of {self.total} replies still missing "
                        f"(correlation ids {_few(self.pending)}, reply topic {self.reply_to!r})"
                    ) from None
            yield self._took(item)

    def _took(self, item: tuple[str, Any]) -> tuple[str, Any]:
        if item[1] is _FAILED:
            assert self._error is not None
            raise self._error
        self._taken += 1
        return item


#: queued by ``BarrierState.fail`` to end an iteration with the error.
_FAILED = object()


class ReplyConsumer(Service):
    """Reads the app's reply topics (manually assigned) and fulfils waiting promises."""

    #: seconds one fetch waits for replies before asking again.
    poll_timeout = 1.0

    def __init__(self, app: App) -> None:
        self.app = app
        self._waiting: dict[str, list[ReplyPromise]] = {}
        self._topics: set[str] = set()
        #: next offset to read per partition (kept across re-assignments).
        self._positions: dict[TP, int] = {}
        self._consumer: Any = None
        self._lock = asyncio.Lock()
        self._assigned = asyncio.Event()
        self._drainer: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None
        super().__init__()

    @property
    def label(self) -> str:
        return f"ReplyConsumer({self.app.conf.id})"

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._topics)

    # -- lifecycle ------------------------------------------------------------------
    async def on_start(self) -> None:
        app = self.app
        isolation = {"isolation_level": "read_committed"} if app.exactly_once else {}
        self._consumer = app.transport.create_consumer(
            client_id=f"{app.client_name}-replies", group_id=None, **isolation
        )
        await self._consumer.start()
        self._drainer = asyncio.ensure_future(self._drain())

    async def on_stop(self) -> None:
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.cancel()
            try:
                await drainer
            except asyncio.CancelledError:
                pass
        self._failed = RuntimeError(f"app {self.app.conf.id!r} is stopped")
        self._fail_all(lambda p: RuntimeError(
            f"app {self.app.conf.id!r} stopped before the reply to "
            f"{_few(p.correlation_ids)} arrived on {p.reply_to!r}"
        ))
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def _fail_all(self, error: Any) -> None:
        waiting, self._waiting = self._waiting, {}
        for promise in {id(p): p for ps in waiting.values() for p in ps}.values():
            promise.fail(error(promise))

    async def ensure_topic(self, name: str) -> None:
        """Create reply topic ``name`` if needed and read it from its current end."""
        if name in self._topics:
            return
        async with self._lock:
            if name in self._topics:
                return
            app = self.app
            if app._producer is None:
                await app.start_client()
            if not self.started:
                app.add_dependency(self)  # stopped with the app
                await self.maybe_start()
            partitions = await self._declare(name)
            new = [TP(name, p) for p in range(partitions)]
            consumer = self._consumer
            consumer.assign(sorted({*self._positions, *new}))
            self._positions.update(await consumer.end_offsets(new))
            for tp, offset in sorted(self._positions.items()):
                consumer.seek(tp, offset)  # assign() may have reset the known ones
            self._topics.add(name)
            self._assigned.set()
            app._record("reply-topic", topic=name, partitions=partitions)

    async def _declare(self, name: str) -> int:
        conf = self.app.conf
        expires = conf.reply_expires
        seconds = expires.total_seconds() if isinstance(expires, timedelta) else float(expires)
        admin = self.app.admin
        await admin.create_topic(
            name, partitions=1, replication_factor=conf.topic_replication_factor,
            config={"cleanup.policy": "delete", "retention.ms": str(int(seconds * 1000))},
        )
        return await admin.partitions_for(name) or 1

    # -- waiting --------------------------------------------------------------------------
    def add(self, promise: ReplyPromise, correlation_id: str | None = None) -> None:
        """Fulfil ``promise`` with the reply to ``correlation_id`` (default: the promise's)."""
        if self._failed is not None:
            raise RuntimeError(f"no reply can arrive: the reply consumer of app "
                               f"{self.app.conf.id!r} is down ({self._failed})")
        cid = correlation_id or promise.correlation_id
        self._waiting.setdefault(cid, []).append(promise)

    def discard(self, promise: ReplyPromise, correlation_ids: Iterable[str]) -> None:
        for cid in correlation_ids:
            promises = self._waiting.get(cid)
            if promises and promise in promises:
                promises.remove(promise)
                if not promises:
                    del self._waiting[cid]

    @property
    def waiting(self) -> int:
        """Requests whose replies are awaited."""
        return len(self._waiting)

    # -- reading ------------------------------------------------------------------------
    async def _drain(self) -> None:
        await self._assigned.wait()
        try:
            while True:
                batch = await self._consumer.getmany(self.poll_timeout)
                for tp in sorted(batch):
                    for record in batch[tp]:
                        self._positions[tp] = max(self._positions.get(tp, 0), record.offset + 1)
                        self._on_reply(record.topic, record.offset, record.value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # nothing will fulfil the promises: fail them loudly
            self.log.exception("reading replies failed: %r", exc)
            self.app._record("engine-error", error=type(exc).__name__)
            self._failed = failure = exc
            self._fail_all(lambda p: RuntimeError(f"reading replies failed: {failure!r}"))

    def _on_reply(self, topic: str, offset: int, value: bytes | None) -> None:
        try:
            cid, reply = decode_reply(value)
        except ValueError as exc:
            self.log.warning("skipping unreadable reply at %s@%d: %s", topic, offset, exc)
            return
        promises = self._waiting.pop(cid, None)
        if not promises:
            return  # not ours any more (timed out), or a second yield for one request
        self.app._record("reply", correlation_id=cid)
        for promise in promises:
            promise.fulfill(cid, reply)


# -- wire format ---------------------------------------------------------------------------
def want_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode()
    return str(value)


def request_headers(
    reply_to: str, correlation_id: str, headers: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """``headers`` plus the reply-to topic and correlation id of a request."""
    merged = {str(k): v if isinstance(v, bytes) else str(v).encode() for k, v in (headers or {}).items()}
    merged[REPLY_TO_HEADER] = reply_to.encode()
    merged[CORRELATION_ID_HEADER] = correlation_id.encode()
    return merged


def reply_address(event: Event | None) -> tuple[str, str] | None:
    """(reply topic, correlation id) of the request ``event`` is, or None."""
    if event is None or not event.headers:
        return None
    reply_to = want_str(event.headers.get(REPLY_TO_HEADER))
    if not reply_to:
        return None
    return reply_to, want_str(event.headers.get(CORRELATION_ID_HEADER)) or ""


def encode_reply(key: Any, value: Any, correlation_id: str) -> bytes:
    return ReqRepResponse(key=key, value=value, correlation_id=correlation_id).dumps()


def decode_reply(data: bytes | None) -> tuple[str, Any]:
    """(correlation id, value) of a reply record; ValueError if it is not one."""
    if data is None:
        raise ValueError("empty record")
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict) or "correlation_id" not in payload:
        raise ValueError("not a ReqRepResponse (no correlation_id)")
    return str(payload["correlation_id"]), _revive(payload.get("value"))


def _revive(value: Any) -> Any:
    """A Record the agent yielded comes back as that Record (by its ``__faust`` namespace)."""
    if isinstance(value, dict):
        meta = value.get(BLESSED_KEY)
        if isinstance(meta, dict) and meta.get("ns") in registry:
            return Record.from_data(value)
    return value


def send_reply(app: App, reply_to: str, correlation_id: str, key: Any, value: Any) -> asyncio.Future[RecordMetadata]:
    """Send an agent's answer to the caller (joins the transaction under exactly-once)."""
    app._record("reply-sent", topic=reply_to, correlation_id=correlation_id)
    return app.producer.send_soon(
        reply_to, key=None, value=encode_reply(key, value, correlation_id),
        headers=((CORRELATION_ID_HEADER, correlation_id.encode()),),
    )


# -- the caller's side ----------------------------------------------------------------------
async def replies_for(app: App, reply_to: str) -> ReplyConsumer:
    """The app's reply consumer, started (with the app as a client if need be), reading ``reply_to``."""
    consumer: ReplyConsumer | None = getattr(app, "_reply_consumer", None)
    if consumer is None:
        consumer = ReplyConsumer(app)
        app._reply_consumer = consumer  # type: ignore[attr-defined]
    await consumer.ensure_topic(reply_to)
    return consumer


async def maybe_start_replies(app: App) -> None:
    """``reply_create_topic=True``: create the reply topic and read it as the app starts."""
    if app.conf.reply_create_topic:
        await replies_for(app, app.conf.reply_to)


def topic_name(target: Any) -> str:
    """A reply topic given as a name, a Topic or an Agent (Faust's ``_get_strtopic``)."""
    if isinstance(target, str):
        return target
    channel = getattr(target, "channel", target)
    get_name = getattr(channel, "get_topic_name", None)
    if get_name is None:
        raise TypeError(f"reply_to must be a topic name, a Topic or an Agent, not {target!r}")
    return str(get_name())


def _few(ids: Iterable[str], n: int = 3) -> str:
    ids = sorted(ids)
    shown = ", ".join(ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")


async def _aiter_items(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class AgentRPC:
    """Request-reply methods of :class:`~detstream.agent.Agent` (Faust's ``ask``/``map``/``join``)."""

    app: App
    name: str
    channel: Channel

    async def send(self, **kwargs: Any) -> Any:  # implemented by Agent
        raise NotImplementedError

    async def ask(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, Any] | None = None,
        reply_to: Any = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send ``value`` to the agent and return what it yields for it.

        Raises ``asyncio.TimeoutError`` (naming the agent and the correlation
        id) when ``timeout`` seconds pass without a reply.
        """
        promise = await self.ask_nowait(
            value, key=key, partition=partition, timestamp=timestamp, headers=headers,
            reply_to=reply_to, correlation_id=correlation_id,
        )
        try:
            if timeout is None:
                return await asyncio.shield(promise)
            return await asyncio.wait_for(asyncio.shield(promise), timeout)
        except asyncio.TimeoutError:
            if promise.done():
                raise  # a TimeoutError the agent's reply path raised, not ours
            self._forget(promise, promise.correlation_ids)
            raise asyncio.TimeoutError(
                f"agent {self.name!r} did not reply within {timeout:g}s "
                f"(correlation id {promise.correlation_id}, reply topic {promise.reply_to!r})"
            ) from None
        except asyncio.CancelledError:
            self._forget(promise, promise.correlation_ids)
            raise

    async def ask_nowait(
        self,
        value: Any = None,
        *,
        key: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, Any] | None = None,
        reply_to: Any = None,
        correlation_id: str | None = None,
        force: bool = False,
    ) -> ReplyPromise:
        """Send the request and return its :class:`ReplyPromise` (``await`` it for the reply)."""
        topic = topic_name(reply_to or self.app.conf.reply_to)
        replies = await self._ready_for_requests(topic)
        promise = ReplyPromise(topic, correlation_id or str(new_uuid()))
        replies.add(promise)
        await self._request(replies, promise, promise.correlation_id, key, value,
                            partition=partition, timestamp=timestamp, headers=headers)
        return promise

    async def kvmap(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]],
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> AsyncIterator[Any]:
        """Ask for each ``(key, value)``; yield the replies as they arrive.

        ``timeout``: seconds, counted from the last request sent, for all
        replies to arrive (else ``asyncio.TimeoutError``).
        """
        topic = topic_name(reply_to or self.app.conf.reply_to)
        replies = await self._ready_for_requests(topic)
        barrier = BarrierState(topic)
        try:
            async for key, value in _aiter_items(items):
                cid = str(new_uuid())
                barrier.add(cid)
                replies.add(barrier, cid)
                await self._request(replies, barrier, cid, key, value)
                while (got := barrier.get_nowait()) is not None:
                    yield got[1]
            barrier.finalize()
            async for _, value in barrier.iterate(self._deadline(timeout), self._what("map")):
                yield value
        finally:
            self._forget(barrier, list(barrier.pending))

    async def map(
        self, values: Iterable[Any] | AsyncIterable[Any], key: Any = None,
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> AsyncIterator[Any]:
        """Ask for each value (all with ``key``); yield the replies as they arrive."""
        async for result in self.kvmap(_with_key(key, values), reply_to, timeout=timeout):
            yield result

    async def kvjoin(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]],
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> list[Any]:
        """Ask for each ``(key, value)``; return the replies in input order."""
        topic = topic_name(reply_to or self.app.conf.reply_to)
        replies = await self._ready_for_requests(topic)
        barrier = BarrierState(topic)
        order: dict[str, int] = {}
        try:
            async for key, value in _aiter_items(items):
                cid = str(new_uuid())
                order[cid] = len(order)
                barrier.add(cid)
                replies.add(barrier, cid)
                await self._request(replies, barrier, cid, key, value)
            barrier.finalize()
            results: list[Any] = [None] * len(order)
            async for cid, value in barrier.iterate(self._deadline(timeout), self._what("join")):
                results[order[cid]] = value
            return results
        finally:
            self._forget(barrier, list(barrier.pending))

    async def join(
        self, values: Iterable[Any] | AsyncIterable[Any], key: Any = None,
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> list[Any]:
        """Ask for each value (all with ``key``); return the replies in input order."""
        return await self.kvjoin(_with_key(key, values), reply_to, timeout=timeout)

    # -- internals --------------------------------------------------------------------
    async def _ready_for_requests(self, reply_to: str) -> ReplyConsumer:
        replies = await replies_for(self.app, reply_to)
        from .topic import Topic

        channel = self.channel
        if self.app.client_only and isinstance(channel, Topic) and channel.internal:
            await self.app.declared(channel)  # no worker may have created it yet
        return replies

    async def _request(
        self, replies: ReplyConsumer, promise: ReplyPromise, cid: str, key: Any, value: Any,
        **options: Any,
    ) -> None:
        try:
            sent = await self.send(key=key, value=value, reply_to=promise.reply_to,
                                   correlation_id=cid, **options)
        except BaseException:
            self._forget(promise, [cid])
            raise
        if isinstance(sent, asyncio.Future):
            sent.add_done_callback(lambda f: _fail_on_error(f, promise))

    def _forget(self, promise: ReplyPromise, correlation_ids: Iterable[str]) -> None:
        replies: ReplyConsumer | None = getattr(self.app, "_reply_consumer", None)
        if replies is not None:
            replies.discard(promise, correlation_ids)

    def _deadline(self, timeout: float | None) -> float | None:
        return None if timeout is None else asyncio.get_running_loop().time() + timeout

    def _what(self, op: str) -> str:
        return f"agent {self.name!r} {op}()"

    def _maybe_reply(self, value: Any) -> None:
        """Called with each value the agent yields: answer the request being processed."""
        event = current_event()
        address = reply_address(event)
        if event is not None and address is not None:
            reply_to, cid = address
            send_reply(self.app, reply_to, cid, event.key, value)


def _fail_on_error(sent: asyncio.Future[Any], promise: ReplyPromise) -> None:
    if sent.cancelled() or promise.done():
        return
    exc = sent.exception()
    if exc is not None:
        promise.fail(exc)


async def _with_key(key: Any, values: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[tuple[Any, Any]]:
    async for value in _aiter_items(values):
        yield key, value
