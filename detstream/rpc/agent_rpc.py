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

The pieces live in sibling modules, re-exported here: the wire format in
:mod:`detstream.rpc.wire`, the promises (``ask``; barrier for ``map``/``join``)
in :mod:`detstream.rpc.promises`, the reply consumer in
:mod:`detstream.rpc.replies`; this module holds :class:`AgentRPC`, the part of an
agent that asks and answers (``agent.rpc``; ``Agent.ask`` and the others call it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from detstream.clock import new_uuid
from detstream.events import current_event

from .promises import BarrierState, ReplyPromise
from .replies import ReplyConsumer, replies_for
from .replies import maybe_start_replies as maybe_start_replies  # re-exported
from .wire import (
    CORRELATION_ID_HEADER,
    REPLY_TO_HEADER,
    ReqRepResponse,
    reply_address,
    send_reply,
    topic_name,
)

# also importable from here, as before the split (not in ``__all__``)
from .wire import decode_reply as decode_reply
from .wire import encode_reply as encode_reply
from .wire import request_headers as request_headers
from .wire import want_str as want_str

if TYPE_CHECKING:
    from detstream.app import App
    from detstream.channel import Channel

__all__ = [
    "CORRELATION_ID_HEADER",
    "REPLY_TO_HEADER",
    "AgentRPC",
    "RPCAgent",
    "BarrierState",
    "ReplyConsumer",
    "ReplyPromise",
    "ReqRepResponse",
    "replies_for",
]

async def _aiter_items(items: Iterable[Any] | AsyncIterable[Any]) -> AsyncIterator[Any]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


class RPCAgent(Protocol):
    """What request-reply needs of its agent: a name, a channel, a send, and the app."""

    name: str
    channel: Channel

    @property
    def app(self) -> App: ...

    async def send(
        self, *, key: Any = None, value: Any = None, reply_to: Any = None,
        correlation_id: str | None = None, **kwargs: Any,
    ) -> Any: ...


class AgentRPC:
    """Request-reply of one :class:`~detstream.agent.Agent` (Faust's ``ask``/``map``/``join``).

    Built by the agent (``agent.rpc``); the agent's ``ask``, ``ask_nowait``,
    ``map``, ``kvmap``, ``join`` and ``kvjoin`` call the methods of the same names.
    """

    def __init__(self, agent: RPCAgent) -> None:
        self._agent = agent

    @property
    def app(self) -> App:
        return self._agent.app

    @property
    def name(self) -> str:
        return self._agent.name

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
        from detstream.topic import Topic

        channel = self._agent.channel
        if self.app.client_only and isinstance(channel, Topic) and channel.internal:
            await self.app.declared(channel)  # no worker may have created it yet
        return replies

    async def _request(
        self, replies: ReplyConsumer, promise: ReplyPromise, cid: str, key: Any, value: Any,
        **options: Any,
    ) -> None:
        try:
            sent = await self._agent.send(key=key, value=value, reply_to=promise.reply_to,
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

    def answer(self, value: Any) -> None:
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
