"""Agents: stream processors started with the app, supervised like Faust's.

``@app.agent(topic)`` wraps ``async def f(stream)``. The agent runs
``concurrency`` actors sharing one buffer; each actor is a mode Service under
the agent's supervisor strategy, so a crashed actor is restarted (or, with
``mode.CrashingSupervisor``, the app crashes). A failing event is acked and
reported, never retried forever — Faust's at-least-once contract covers
crashes and rebalances, not exceptions.

``isolated_partitions=True`` runs one actor per assigned partition of the
agent's topic instead, as Faust does: an actor starts when its partition is
assigned (before its records are delivered) and is stopped when an
assignment no longer has it, and its stream's ``active_partitions`` is ``{tp}``. Records reach
the actors through the agent's one buffer, handed on in order to the
partition's own (bounded) buffer, so a slow partition holds up the others
once its buffer is full.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import mode
from mode import Service

from ._types import TP
from .channel import Channel
from .clock import new_uuid
from .compat import widen_restart_budget
from .engine.buffer import SubscriberBuffer
from .errors import DecodeError, ImproperlyConfigured, InvalidArgument
from .events import Message, current_event, set_current_agent
from .events import current_agent as current_agent  # re-exported: agents own the idea
from .mutants import on as mutant_on
from .mutants import register as register_mutant
from .rpc.agent_rpc import AgentRPC, ReplyPromise, request_headers, topic_name
from .stream import Stream, stream_owner
from .topic import Topic

if TYPE_CHECKING:
    from .agent_testing import AgentTestContext
    from .app import App

AgentFun = Callable[[Stream], Any]

#: the type of the values an agent consumes: ``Agent[Order]`` (Faust's ``AgentT[T]``).
T = TypeVar("T")

#: a one-for-all supervisor restarts only the actor that failed, as one-for-one does.
SUPERVISOR_RESTARTS_ONE = register_mutant(
    "supervisor-restarts-one",
    "an agent's OneForAllSupervisor restarts only the failed actor instead of all of them",
)
#: restarts per second an agent's supervisor allows before the app crashes (Faust's figure).
MAX_RESTARTS = 100.0

class Actor(Service):
    """One running instance of an agent's function over the shared stream."""

    def __init__(self, agent: Agent, stream: Stream, index: int) -> None:
        self.agent = agent
        self.stream = stream
        self.index = index
        # A child of the app in mode's service tree: a crash no supervisor takes
        # (CrashingSupervisor) walks up the tree and crashes the app.
        super().__init__(beacon=agent.app.beacon)

    @property
    def label(self) -> str:
        return f"Actor({self.agent.name}#{self.index})"

    async def on_start(self) -> None:
        # named after the actor, not mode's repr of the coroutine (a memory address):
        # ``app.monitor``'s events_by_task and deadlock reports show it
        task = self.add_future(self._run())
        if isinstance(task, asyncio.Task):
            task.set_name(self.label)

    async def _run(self) -> None:
        set_current_agent(self.agent)
        made: list[Stream] = []  # streams the agent's function makes (``app.stream(t)``, ...)
        stream_owner.set(made)
        try:
            await self._run_function()
        finally:
            _close_made_streams(self.stream, made)

    async def _run_function(self) -> None:
        try:
            result = self.agent.fun(self.stream)
            if _yields(result):
                agent = self.agent
                async for value in result:
                    event = current_event()
                    if event is not None and event.headers:  # (no call per value without headers)
                        agent.rpc.answer(value)  # the event had a reply-to: answer it
                    waiting = agent._forward_or_wait(value)
                    if waiting is not None:
                        await waiting
            else:
                _check_awaited(self.agent, result)
                await result
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.agent._on_actor_error(self, exc)


class Agent(Generic[T]):
    """``@app.agent()``: see the Faust guide for each argument; ``Agent[V]`` in annotations."""

    def __init__(
        self,
        fun: AgentFun,
        *,
        app: App,
        channel: Channel | str | None = None,
        name: str | None = None,
        concurrency: int = 1,
        sink: Iterable[Any] | None = None,
        on_error: Callable[[Agent, BaseException], Any] | None = None,
        supervisor_strategy: type[mode.SupervisorStrategy] | None = None,
        help: str | None = None,
        isolated_partitions: bool = False,
        **topic_options: Any,
    ) -> None:
        if not callable(fun) or isinstance(fun, type):
            raise InvalidArgument(f"@app.agent() needs an async def function, got {fun!r}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidArgument(f"agent concurrency must be an int >= 1, got {concurrency!r}")
        if isolated_partitions and concurrency != 1:
            raise InvalidArgument(
                f"agent {name or getattr(fun, '__qualname__', fun)}: isolated_partitions=True "
                f"runs one actor per partition; concurrency must be 1, not {concurrency}"
            )
        self.fun = fun
        self.app = app
        self.name = name or _default_name(fun)
        self.concurrency = concurrency
        self.sinks = list(sink or [])
        if self.sinks and _never_yields(fun):
            raise ImproperlyConfigured(
                f"Agent must yield to use sinks: agent {self.name} has sink=[...] but its "
                "function never yields, so nothing would reach them (Faust's error). Yield "
                "the values to forward, or drop sink="
            )
        self.on_error = on_error
        self.supervisor_strategy = supervisor_strategy or _default_supervisor(app)
        self.help = help or (fun.__doc__ or "").strip()
        self.channel = self._make_channel(channel, topic_options)
        #: one actor per assigned partition of the topic (see the module doc).
        self.isolated_partitions = bool(isolated_partitions)
        if self.isolated_partitions and not hasattr(self.channel, "topics"):
            raise InvalidArgument(
                f"agent {self.name}: isolated_partitions=True needs a topic (an actor per "
                "partition), not an in-memory channel"
            )
        self._supervisor: mode.SupervisorStrategy | None = None
        self._actors: list[Actor] = []
        #: isolated partitions: each assigned partition's actor and buffer; the hand-on task.
        self._isolated: dict[TP, tuple[Actor, SubscriberBuffer[Any]]] = {}
        self._dispatcher: asyncio.Future[None] | None = None
        #: events counted by isolated actors since stopped (``event_counts`` only grows).
        self._retired_counts: dict[str, int] = {}
        #: request-reply: ``ask``, ``map``, ``join`` (and the answers the agent yields).
        self.rpc = AgentRPC(self)

    def __repr__(self) -> str:
        return f"<Agent: {self.name}>"

    def _make_channel(self, channel: Channel | str | None, options: dict[str, Any]) -> Channel:
        if channel is None or isinstance(channel, str):
            # the agent's own topic is internal (declared by the app) unless it says otherwise
            name = channel if channel is not None else f"{self.app.conf.id}-{self.name}"
            return self.app.topic(name, **{"internal": True, **options})
        if options:
            raise InvalidArgument(
                f"agent {self.name}: topic options {sorted(options)} apply only when the "
                "agent makes its own topic; pass them to app.topic() instead"
            )
        if not isinstance(channel, Channel):
            raise InvalidArgument(f"agent {self.name}: channel must be a topic/channel, got {channel!r}")
        return channel

    def __call__(self, stream: Stream) -> Any:
        """Call the function directly (agents can be chained by hand)."""
        return self.fun(stream)

    def test_context(
        self,
        channel: Channel | None = None,
        supervisor_strategy: type[mode.SupervisorStrategy] | None = None,
        on_error: Callable[[Agent, BaseException], Any] | None = None,
        **kwargs: Any,
    ) -> AgentTestContext:
        """Run a copy of this agent on an in-memory channel, for unit tests (no broker)::

            async with agent.test_context() as ctx:
                event = await ctx.put(value, key=b"k")
                assert ctx.results[0] == expected

        See :mod:`detstream.agent_testing`.
        """
        from .agent_testing import AgentTestContext

        return AgentTestContext(self, channel=channel, supervisor_strategy=supervisor_strategy,
                                on_error=on_error, **kwargs)

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        queue = self.channel.subscribe()
        self._supervisor = self._make_supervisor()
        if self.isolated_partitions:
            await self._start_isolated(queue)
            return
        for index in range(self.concurrency):
            # acks=False on the topic: the agent acks each event itself (event.ack()).
            stream: Stream[Any] = Stream(self.channel, queue=queue, prefix=self.name,
                            enable_acks=getattr(self.channel, "acks", True))
            stream.concurrency_index = index
            actor = Actor(self, stream, index)
            self._actors.append(actor)
            self._supervisor.add(actor)
        await self._supervisor.start()

    def event_counts(self) -> dict[str, int]:
        """Events this agent's streams started, by the topic (or channel) they read.

        The agent's own topic, and the topics its ``group_by``/``through``
        streams read. Summed over the actors (``concurrency``) from their
        streams' ``events_total``: nothing is counted for this per event.
        """
        counts = dict(self._retired_counts)
        for label, count in _stream_counts(*(actor.stream for actor in self._actors)).items():
            counts[label] = counts.get(label, 0) + count
        return counts

    def _make_supervisor(self) -> mode.SupervisorStrategy:
        """The actors' supervisor: up to ``MAX_RESTARTS`` restarts a second, then the app crashes.

        mode's rate limiter holds only ``over`` tokens (one), so a OneForAllSupervisor
        restarting three actors at once would already give up; the bucket gets room
        for ``MAX_RESTARTS``. The supervisor's place in the service tree is under the
        app: when it gives up, its crash reaches the app and the worker exits with
        an error instead of the agent going quiet.
        """
        strategy = self.supervisor_strategy
        if mutant_on(SUPERVISOR_RESTARTS_ONE) and issubclass(strategy, mode.OneForAllSupervisor):
            strategy = mode.OneForOneSupervisor
        supervisor = strategy(max_restarts=MAX_RESTARTS, over=1.0, beacon=self.app.beacon)
        widen_restart_budget(supervisor, MAX_RESTARTS)
        return supervisor

    async def stop(self) -> None:
        if self.isolated_partitions:
            self.app.on_partitions_assigned.disconnect(self._on_assigned)
            if self._dispatcher is not None:
                self._dispatcher.cancel()
                self._dispatcher = None
        if self._supervisor is not None:
            await self._supervisor.stop()
        self._isolated.clear()

    # -- isolated partitions --------------------------------------------------------------
    async def _start_isolated(self, queue: SubscriberBuffer[Any]) -> None:
        """No actor yet: each comes with its partition's assignment."""
        assert self._supervisor is not None
        self.app.on_partitions_assigned.connect(self._on_assigned)
        self._dispatcher = asyncio.ensure_future(self._dispatch(queue))
        await self._supervisor.start()

    def _is_mine(self, tp: TP) -> bool:
        matches = getattr(self.channel, "matches", None)
        return bool(matches(tp.topic)) if matches is not None else False

    async def _on_assigned(self, sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        """Stop the actors of partitions given away, start those of partitions gained.

        Not on revocation: the group revokes every partition before each
        assignment, and a partition the next one gives back keeps its actor,
        as in Faust. Meanwhile a revoked partition's records are dropped by
        its stream (not current).
        """
        for tp in sorted(set(self._isolated) - assigned):
            actor, _ = self._isolated.pop(tp)
            assert self._supervisor is not None
            self._supervisor.discard(actor)
            self._actors.remove(actor)
            await actor.stop()
            for label, count in _stream_counts(actor.stream).items():
                self._retired_counts[label] = self._retired_counts.get(label, 0) + count
        for tp in sorted(tp for tp in assigned if self._is_mine(tp)):
            await self._actor_for(tp)

    async def _actor_for(self, tp: TP) -> SubscriberBuffer[Any]:
        """The buffer of ``tp``'s actor, starting the actor if it has none."""
        found = self._isolated.get(tp)
        if found is not None:
            return found[1]
        buffer: SubscriberBuffer[Any] = SubscriberBuffer(self.app.conf.stream_buffer_maxsize)
        stream: Stream[Any] = Stream(self.channel, queue=buffer, prefix=self.name,
                                     enable_acks=getattr(self.channel, "acks", True))
        stream.active_partitions = {tp}
        actor = Actor(self, stream, tp.partition)
        self._isolated[tp] = (actor, buffer)
        self._actors.append(actor)
        assert self._supervisor is not None
        self._supervisor.add(actor)
        await actor.start()
        return buffer

    async def _dispatch(self, shared: SubscriberBuffer[Any]) -> None:
        """Hand each record of the agent's buffer on to its partition's actor, in order.

        A record of a partition this worker no longer owns is dropped, as a
        stream drops it: its partition's new owner processes it.
        """
        while True:
            item = await shared.get()
            if not isinstance(item, Message):
                continue
            lease = item.lease
            if item.tp not in self._isolated and lease is not None and not lease.is_current(item):
                continue
            buffer = await self._actor_for(item.tp)
            await buffer.put(item)

    # -- producing to the agent -----------------------------------------------
    async def send(
        self, *, key: Any = None, value: Any = None, reply_to: Any = None,
        correlation_id: str | None = None, **kwargs: Any,
    ) -> Any:
        """Send to the agent's channel; with ``reply_to`` as a request (see ``ask``)."""
        if reply_to is not None:
            kwargs["headers"] = request_headers(
                topic_name(reply_to), correlation_id or str(new_uuid()), kwargs.get("headers")
            )
        return await self.channel.send(key=key, value=value, **kwargs)

    async def cast(self, value: Any = None, *, key: Any = None, **kwargs: Any) -> None:
        await self.channel.send(key=key, value=value, **kwargs)

    # -- request-reply (rpc/agent_rpc.py) ---------------------------------------------
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
        """Send ``value`` to the agent and return what it yields for it (``asyncio.TimeoutError``
        naming the agent and the correlation id after ``timeout`` seconds)."""
        return await self.rpc.ask(
            value, key=key, partition=partition, timestamp=timestamp, headers=headers,
            reply_to=reply_to, correlation_id=correlation_id, timeout=timeout,
        )

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
        return await self.rpc.ask_nowait(
            value, key=key, partition=partition, timestamp=timestamp, headers=headers,
            reply_to=reply_to, correlation_id=correlation_id, force=force,
        )

    def kvmap(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]],
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> AsyncIterator[Any]:
        """Ask for each ``(key, value)``; yield the replies as they arrive."""
        return self.rpc.kvmap(items, reply_to, timeout=timeout)

    def map(
        self, values: Iterable[Any] | AsyncIterable[Any], key: Any = None,
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> AsyncIterator[Any]:
        """Ask for each value (all with ``key``); yield the replies as they arrive."""
        return self.rpc.map(values, key, reply_to, timeout=timeout)

    async def kvjoin(
        self, items: Iterable[tuple[Any, Any]] | AsyncIterable[tuple[Any, Any]],
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> list[Any]:
        """Ask for each ``(key, value)``; return the replies in input order."""
        return await self.rpc.kvjoin(items, reply_to, timeout=timeout)

    async def join(
        self, values: Iterable[Any] | AsyncIterable[Any], key: Any = None,
        reply_to: Any = None, *, timeout: float | None = None,
    ) -> list[Any]:
        """Ask for each value (all with ``key``); return the replies in input order."""
        return await self.rpc.join(values, key, reply_to, timeout=timeout)

    # -- internals ------------------------------------------------------------
    def _forward_or_wait(self, value: Any) -> Awaitable[None] | None:
        """Send a yielded value to the sinks: None if the topics took it at once (the common
        case, no coroutine per value), else what the actor awaits to finish, in sink order."""
        for index, sink in enumerate(self.sinks):
            if not isinstance(sink, Topic):
                return self._forward(value, index)
            waiting = sink.forward_or_wait(value=value)
            if waiting is not None:
                return self._forward(value, index + 1, waiting)
        return None

    async def _forward(
        self, value: Any, start: int = 0, waiting: Awaitable[None] | None = None
    ) -> None:
        """The sinks from ``start`` on, after ``waiting`` (the forward to the sink before)."""
        if waiting is not None:
            await waiting
        for sink in self.sinks[start:]:
            if isinstance(sink, Agent):
                await sink.send(value=value)
            elif isinstance(sink, Channel):
                await sink.forward(value=value)
            else:
                result = sink(value)
                if inspect.isawaitable(result):
                    await result

    async def _on_actor_error(self, actor: Actor, exc: Exception) -> None:
        event = actor.stream.current_event
        message = event.message if event is not None else None
        tp = message.tp if message else None
        offset = message.offset if message else None
        if isinstance(exc, DecodeError):  # the undecodable record never became the current event
            tp = TP(exc.topic, exc.partition) if exc.topic and exc.partition is not None else None
            offset = exc.offset
        self.app.tracer.record("agent-error", agent=self.name, tp=tp, offset=offset, error=type(exc).__name__)
        self.app.log.error("agent %s raised %r; restarting it", self.name, exc)
        if self.on_error is not None:
            result = self.on_error(self, exc)
            if inspect.isawaitable(result):
                await result
        if actor.supervisor is None:  # CrashingSupervisor: the failure is the app's
            assert self._supervisor is not None  # made when the agent started its actors
            self._supervisor.wakeup()  # for this strategy: stop, restart nothing
            if not self.app.crashed:
                await self.app.crash(exc)
            return
        await actor.crash(exc)


def _default_supervisor(app: App) -> type[mode.SupervisorStrategy]:
    """The ``agent_supervisor`` setting (a class or its import path), else one-for-one."""
    setting = app.conf.agent_supervisor
    if setting is None:
        return mode.OneForOneSupervisor
    if isinstance(setting, str):
        from mode.utils.imports import symbol_by_name

        setting = symbol_by_name(setting)
    if not (isinstance(setting, type) and issubclass(setting, mode.SupervisorStrategy)):
        raise InvalidArgument(f"setting 'agent_supervisor' must be a mode SupervisorStrategy "
                              f"class or its import path, got {setting!r}")
    return setting


def _unwrapped(fun: Any) -> Any:
    """The function behind ``functools.partial`` (Faust's bound_agent.py) and a callable
    object's ``__call__``."""
    while isinstance(fun, functools.partial):
        fun = fun.func
    if not inspect.isroutine(fun) and callable(fun):
        fun = type(fun).__call__  # a callable object: its method says what a call returns
    return fun


def _never_yields(fun: Any) -> bool:
    """An ``async def`` that is not a generator: its agent cannot feed sinks.

    Anything else (an async generator function, a plain function that
    returns an async generator) is judged when it runs, as Faust does.
    """
    return inspect.iscoroutinefunction(_unwrapped(fun))


def _yields(result: Any) -> bool:
    """Whether the agent function's result is an async iterator (it yields) or an awaitable."""
    return inspect.isasyncgen(result) or (
        not inspect.isawaitable(result) and hasattr(result, "__aiter__")
    )


def _close_made_streams(stream: Stream, made: list[Stream]) -> None:
    """An actor ended: close the streams its function made, but those made from the
    agent's own stream (``group_by``, ``through``), which its restart reuses."""
    kept: set[int] = set()
    pending = [stream]
    while pending:
        node = pending.pop()
        kept.add(id(node))
        pending.extend(node.substreams())
    for made_stream in made:
        if id(made_stream) not in kept:
            made_stream.close()


def _check_awaited(agent: Agent, result: Any) -> None:
    """A result that does not yield must be awaitable, and then its agent can have no sinks."""
    if not inspect.isawaitable(result):
        raise InvalidArgument(
            f"agent {agent.name}: its function returned {result!r}, not a coroutine or an async "
            "generator: define it with `async def` (and `async for` over the stream)"
        )
    if agent.sinks:
        close = getattr(result, "close", None)
        if close is not None:  # never awaited: closed, so no "never awaited" warning
            close()
        raise ImproperlyConfigured(
            f"Agent must yield to use sinks: agent {agent.name} has sink=[...] but its function "
            "returned a coroutine, which yields nothing for them"
        )


def _default_name(fun: Any) -> str:
    inner = fun
    while isinstance(inner, functools.partial):
        inner = inner.func
    if not hasattr(inner, "__qualname__"):  # a callable object: named after its class
        inner = type(inner)
    return f"{canonical_module(inner.__module__)}.{inner.__qualname__}"


def _stream_counts(*streams: Stream[Any]) -> dict[str, int]:
    """Events started by ``streams`` and the streams made from them, each once, by the topic read."""
    counts: dict[str, int] = {}
    pending, seen = list(streams), set()
    while pending:
        one = pending.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        counts[one.channel.label] = counts.get(one.channel.label, 0) + one.events_total
        pending.extend(one.substreams())
    return counts


def canonical_module(module: str) -> str:
    """The importable name of ``module``, also when it runs as ``__main__``.

    ``python proj.py worker`` runs the project as ``__main__``; agent names
    (and so internal topic names) must be the same as under
    ``detstream worker proj``, or the two launch forms split the app's state.
    """
    if module != "__main__":
        return module
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name not in (None, "__main__"):
        return spec.name.removesuffix(".__main__")
    path = getattr(main, "__file__", None)
    if path and os.path.isfile(path):  # not for ``python -`` (``<stdin>``) or a REPL
        from .loader import module_name_for_file

        return module_name_for_file(path)
    return module
