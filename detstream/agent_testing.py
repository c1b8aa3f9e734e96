"""``agent.test_context()``: unit-test one agent without a broker (Faust's AgentTestWrapper).

::

    async with count_words.test_context() as agent:
        event = await agent.put("hello", key=b"k")   # returns once the agent is done with it
        assert agent.results[0] == ...               # what it yielded, in order

The context runs a copy of the agent on an in-memory channel of its own, so
``put`` hands a value straight to the agent: nothing is serialised, as in
Faust. ``put`` returns the event once the agent asked for the next one (it
is done with it: every value it yielded for it went to its sinks first), and
re-raises the exception if the agent raised instead. The copy is not
restarted after an error (Faust's ``CrashingSupervisor``); unlike Faust the
error does not crash the app.

Where Faust makes you mock topics, this context gives an app that is not
started a producer of its own that keeps every record instead of sending
it: ``agent.sent`` lists them (``ConsumerRecord``, bytes as they would go
on the wire), whether the agent sent them, yielded them to a sink, or wrote
a table (changelog records). Table writes work: the event's partition is the
``partition`` given to ``put`` (default 0). On a started app the real
producer is used and ``sent`` stays empty.

It needs an event loop and nothing else: a plain ``asyncio.run`` in a test,
or ``sim.testing.run_sandboxed`` for virtual time and seeded randomness.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import mode

from ._types import ConsumerRecord, RecordMetadata
from .channel import Channel
from .clock import new_uuid, wall_time
from .engine.producer import ProducerBuffer
from .errors import ImproperlyConfigured
from .events import Event, Message
from .rpc.wire import request_headers, topic_name

if TYPE_CHECKING:
    from .agent import Agent
    from .app import App

__all__ = ["AgentTestContext"]


class _StayDown(mode.SupervisorStrategy):
    """The copy's supervisor: a crashed actor stays down; ``put`` raises its error.

    mode's CrashingSupervisor would crash the whole app (the actor's parent);
    a test wants the error, and the app left as it was.
    """

    async def restart_services(self, services: list[Any]) -> None:
        return None


class AgentTestContext:
    """The running test copy of an agent: ``put``, ``results``, ``sent``.

    ``results`` maps the index of each value the agent yielded (0, 1, ...) to
    the value; for an agent that does not yield, the index of each event it
    finished to the event's value (as faust-streaming documents).
    ``sent_offset`` counts puts, ``processed_offset`` results.
    """

    def __init__(
        self,
        agent: Agent,
        *,
        channel: Channel | None = None,
        supervisor_strategy: type[mode.SupervisorStrategy] | None = None,
        on_error: Callable[[Agent, BaseException], Any] | None = None,
        **options: Any,
    ) -> None:
        if channel is not None and not isinstance(channel, Channel):
            raise TypeError(f"test_context(channel=...) needs a channel, got {channel!r}")
        self.original = agent
        self.app: App = agent.app
        self.channel = channel if channel is not None else agent.app.channel()
        self.results: dict[int, Any] = {}
        self.sent: list[ConsumerRecord] = []
        self.sent_offset = 0
        self.processed_offset = 0
        self._supervisor_strategy = _supervisor(supervisor_strategy)
        self._user_on_error = on_error
        self._options = options
        #: whether the running copy yields: decided by what its function returned (None: not yet).
        self._yields: bool | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._crash: BaseException | None = None
        self._copy: Agent | None = None
        #: the copy's subscriber buffers on ``channel`` (removed again on exit).
        self._queues: list[Any] = []
        self._own_producer: ProducerBuffer | None = None
        self._own_admin = False

    def __repr__(self) -> str:
        return f"<AgentTestContext: {self.original.name}>"

    # -- lifecycle ----------------------------------------------------------------
    async def __aenter__(self) -> AgentTestContext:
        await self._lend_producer()
        self._copy = self._make_copy()
        before = list(self.channel.subscribers)
        await self._copy.start()
        self._queues = [q for q in self.channel.subscribers if q not in before]
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        copy, self._copy = self._copy, None
        try:
            if copy is not None:
                await copy.stop()
            for queue in self._queues:  # the channel forgets the copy's buffer
                if queue in self.channel.subscribers:
                    self.channel.subscribers.remove(queue)
            self._queues = []
        finally:
            await self._return_producer()
        for waiter in self._waiting.values():
            waiter.cancel()
        self._waiting.clear()

    def _make_copy(self) -> Agent:
        from .agent import Agent

        agent = self.original
        options: dict[str, Any] = dict(
            name=agent.name, concurrency=agent.concurrency, help=agent.help,
            sink=list(agent.sinks),
        )
        options.update(self._options)
        return Agent(
            self._observed(agent.fun), app=self.app, channel=self.channel,
            on_error=self._on_error, supervisor_strategy=self._supervisor_strategy, **options,
        )

    def _observed(self, fun: Callable[..., Any]) -> Callable[..., Any]:
        """``fun`` as the copy runs it: what it yields is noted in ``results`` as it yields.

        Whether the agent yields is decided from what ``fun`` returns when it
        runs (an async generator, or a coroutine), not from how it is written:
        a plain function returning an async generator yields too.
        """
        from .agent import _yields

        def run(stream: Any) -> Any:
            result = fun(stream)
            self._yields = _yields(result)
            return self._noting(result) if self._yields else result

        return run

    async def _noting(self, values: Any) -> Any:
        async for value in values:
            await self._on_value(value)
            yield value

    async def _lend_producer(self) -> None:
        """An app that is not started gets a producer that keeps records instead of sending."""
        app = self.app
        if app._producer is not None:
            return
        self._own_producer = ProducerBuffer(_KeepingProducer(self.sent))
        await self._own_producer.start()
        app._producer = self._own_producer
        if app.admin is None:  # topics made while the agent runs are "declared" here
            app.admin = _NoAdmin()
            self._own_admin = True

    async def _return_producer(self) -> None:
        app = self.app
        if self._own_producer is not None and app._producer is self._own_producer:
            await self._own_producer.stop()
            app._producer = None
        self._own_producer = None
        if self._own_admin:
            app.admin = None
            self._own_admin = False

    # -- feeding the agent ---------------------------------------------------------
    async def put(
        self,
        value: Any = None,
        key: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, Any] | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        *,
        reply_to: Any = None,
        correlation_id: str | None = None,
        wait: bool = True,
    ) -> Event:
        """Hand ``value`` to the agent; with ``wait`` (default), return once it is processed.

        Returns the event the agent received. Raises what the agent raised,
        here or, once the agent is down, on every later ``put``. The
        serializer arguments are accepted for Faust's signature; values are
        not serialised.
        """
        self._check_running()
        if reply_to is not None:
            headers = request_headers(topic_name(reply_to), correlation_id or str(new_uuid()),
                                      headers)
        event = self._event(key, value, partition, timestamp, headers)
        done = asyncio.get_running_loop().create_future()
        self._waiting[event.message.offset] = done  # type: ignore[union-attr]
        self.sent_offset += 1
        for queue in list(self.channel.subscribers):
            await queue.put(event)
        if wait:
            await done
        return event

    def _check_running(self) -> None:
        if self._copy is None:
            raise ImproperlyConfigured(
                f"{self!r} is not running: use it as `async with agent.test_context() as ctx:` "
                "and put values inside the block"
            )
        if self._crash is not None:
            raise self._crash

    def _event(self, key: Any, value: Any, partition: int | None, timestamp: float | None,
               headers: Mapping[str, Any] | None) -> Event:
        """An event as if fetched from the agent's topic (offset = number of puts so far)."""
        header_items = tuple(
            (str(k), v if isinstance(v, bytes) else str(v).encode())
            for k, v in (headers or {}).items()
        )
        message = Message(
            topic=_source_name(self.original), partition=partition or 0,
            offset=self.sent_offset, timestamp=wall_time() if timestamp is None else timestamp,
            key=key, value=value, headers=header_items,
            refcount=max(1, len(self.channel.subscribers)), lease=_PutLease(self._on_acked),
        )
        return Event(self.app, key, value, dict(header_items), message)

    # -- what the agent did -----------------------------------------------------------
    async def _on_value(self, value: Any) -> None:
        """Each value the agent yields, in order."""
        self.results[self.processed_offset] = value
        self.processed_offset += 1

    def _on_acked(self, message: Message) -> None:
        """The agent is done with the event of ``message``: release its ``put``.

        Its table writes' changelog records are sent now, as a commit would
        (``changelog_cache``), so ``sent`` shows them after the event's own sends.
        """
        self.app.tables.flush_changelogs()
        if not self._yields:
            self.results[self.processed_offset] = message.value
            self.processed_offset += 1
        waiter = self._waiting.pop(message.offset, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _on_error(self, agent: Agent, exc: BaseException) -> None:
        """The agent raised: every waiting ``put`` (and every later one) raises ``exc``."""
        if self._user_on_error is not None:
            result = self._user_on_error(agent, exc)
            if inspect.isawaitable(result):
                await result
        if self._supervisor_strategy is _StayDown:
            self._crash = exc
        for offset in sorted(self._waiting):
            waiter = self._waiting.pop(offset)
            if not waiter.done():
                waiter.set_exception(exc)


def _supervisor(strategy: type[mode.SupervisorStrategy] | None) -> type[mode.SupervisorStrategy]:
    """Faust's default here is CrashingSupervisor; without the app crashing, that is _StayDown."""
    if strategy is None or strategy is mode.CrashingSupervisor:
        return _StayDown
    if not (isinstance(strategy, type) and issubclass(strategy, mode.SupervisorStrategy)):
        raise TypeError(
            f"test_context(supervisor_strategy=...) needs a mode supervisor class, got {strategy!r}"
        )
    return strategy


def _source_name(agent: Agent) -> str:
    """The agent's topic name for the events' messages, as Faust: ``<internal>`` for a channel."""
    get_name = getattr(agent.channel, "get_topic_name", None)
    try:
        return str(get_name()) if get_name is not None else "<internal>"
    except Exception:
        return "<internal>"


class _KeepingProducer:
    """A producer that keeps the records it is given (``AgentTestContext.sent``)."""

    reads_sender_context = False  # it keeps records, not where they came from

    def __init__(self, kept: list[ConsumerRecord]) -> None:
        self.kept = kept
        self._offsets: dict[tuple[str, int], int] = {}

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, *, key: bytes | None, value: bytes | None,
                   partition: int | None = None, timestamp: float | None = None,
                   headers: Any = ()) -> RecordMetadata:
        partition = partition or 0
        offset = self._offsets.get((topic, partition), 0)
        self._offsets[(topic, partition)] = offset + 1
        stamp = wall_time() if timestamp is None else timestamp
        self.kept.append(ConsumerRecord(topic, partition, offset, stamp, key, value, tuple(headers)))
        return RecordMetadata(topic, partition, offset, stamp)

    async def enqueue(self, topic: str, **record: Any) -> asyncio.Future[RecordMetadata]:
        """Kept at once, in call order; the future is already done."""
        ack: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        ack.set_result(await self.send(topic, **record))
        return ack

    async def forward(self, topic: str, **record: Any) -> asyncio.Future[None]:
        """Kept at once, in call order; the (batch's) future is already done."""
        await self.send(topic, **record)
        ack: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ack.set_result(None)
        return ack

    def forward_nowait(self, topic: str, *args: Any) -> None:
        """Never: ``forward`` keeps records (no record is kept by a call that does not await)."""
        return None

    async def partitions_for(self, topic: str) -> int:
        return 1


class _NoAdmin:
    """Topics made while a test context runs need no broker."""

    async def create_topic(self, name: str, **kwargs: Any) -> None:
        return None

    async def partitions_for(self, name: str) -> int | None:
        return None


class _PutLease:
    """The lease of the messages a test context makes: always current, acks release ``put``."""

    def __init__(self, on_acked: Callable[[Message], None]) -> None:
        self.acked = on_acked

    quiescing = False

    async def may_start(self, message: Message) -> None:
        return None

    def is_current(self, message: Message) -> bool:
        return True

    def begin(self, message: Message) -> bool:
        return True

    def finished(self, message: Message) -> None:
        pass

    def done(self, message: Message, ack: bool) -> None:
        if ack:
            message.ack()
