"""Tasks, timers and crontabs: the App's ``@app.task``, ``@app.timer`` and ``@app.crontab``.

They are registered when the module is imported and started once the app is
operational (its first assignment's tables recovered, as Faust's), each as a background task
the app cancels when it stops. A timer or crontab that raises is logged and
traced, and keeps its schedule: one bad run must not end a periodic job.

A task may read a stream (``async for w in topic.stream()``, as Faust's
streams guide does): the streams a task, timer or crontab makes are closed
when it ends, however it ends (returned, raised, cancelled), so that their
buffers do not hold up the other streams of their topics (``Stream.close``).

``stop_sources()`` cancels them while the rest of the app keeps running (and
keeps them from starting, if the app has not started yet): the simulator calls
it when its main phase ends, so that a timer that sends forever does not keep
feeding the topics the run must drain before it checks them.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from .errors import InvalidArgument

if TYPE_CHECKING:
    from .engine.host import EngineLog
    from .settings import Settings
    from .tracing import Tracer

#: starts a source's coroutine as a background task of the app (``App`` keeps it to cancel at stop).
Spawn = Callable[[Coroutine[Any, Any, Any]], "asyncio.Future[Any]"]


class SourcesHost(Protocol):
    """What the sources need of their app; the app itself is what ``fun(app)`` receives."""

    @property
    def conf(self) -> Settings: ...

    @property
    def log(self) -> EngineLog: ...

    @property
    def tracer(self) -> Tracer: ...

    def is_leader(self) -> bool: ...


class AppSources:
    """The App's own sources of work: its tasks, timers and crontabs (``app.sources``).

    ``App.task``, ``App.timer`` and ``App.crontab`` register here, and the
    App starts them once operational, through a ``spawn`` of its own.
    """

    def __init__(self, host: SourcesHost) -> None:
        self._host = host
        #: (fun, on_leader): an ``on_leader`` task starts only on the worker that leads then.
        self._task_funs: list[tuple[Callable[..., Any], bool]] = []
        self._timer_specs: list[tuple[Callable[..., Any], float, bool, str]] = []
        #: (cron, timezone or None = conf.timezone, fun, on_leader, label); see crontab().
        self._crontab_specs: list[tuple[Any, Any, Callable[..., Any], bool, str]] = []
        #: the running tasks, timers and crontabs.
        self._running: list[asyncio.Future[Any]] = []
        #: set by stop(): tasks, timers and crontabs no longer run, nor start.
        self.stopped = False

    def task(
        self, fun: Callable[..., Any] | None = None, *, on_leader: bool = False, traced: bool = True,
    ) -> Any:
        """Run ``fun`` once the app is operational (``fun()`` or ``fun(app)``).

        ``on_leader``: only on the worker that leads the group then (Faust's).
        ``traced`` is Faust's OpenTracing switch: taken, and nothing to do here
        (every source is in the trace).
        """

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            _require_async(f, "@app.task")
            self._task_funs.append((f, on_leader))
            return f

        return decorate(fun) if fun is not None else decorate

    def timer(
        self, interval: float | timedelta, *, on_leader: bool = False, name: str | None = None,
        traced: bool = True, max_drift_correction: float = 0.1,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the decorated function every ``interval`` seconds (first run after one interval).

        ``interval`` is Faust's ``Seconds``: a number or a ``timedelta``. The
        runs keep to the schedule (each is due one interval after the last
        was due, whatever the previous run took), so there is no drift for
        ``max_drift_correction`` to correct; it and ``traced`` are taken for
        Faust's signature.
        """
        if isinstance(interval, timedelta):
            interval = interval.total_seconds()
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise InvalidArgument(
                f"@app.timer() interval must be a number of seconds > 0 or a timedelta, got {interval!r}"
            )

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            _require_async(f, "@app.timer")
            label = name or f"{f.__module__}.{f.__qualname__}"
            self._timer_specs.append((f, float(interval), on_leader, label))
            return f

        return decorate

    def crontab(
        self, cron_format: str, *, timezone: Any = None, on_leader: bool = False,
        name: str | None = None, traced: bool = True,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the decorated function at the times of ``cron_format`` (5 fields).

        Times are wall-clock times in ``timezone`` (a zone name or tzinfo;
        default: the ``timezone`` setting, UTC), virtual under the simulator.
        """
        from .crontab import parse, zone

        cron = parse(cron_format)
        tz = zone(timezone) if timezone is not None else None

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            _require_async(f, "@app.crontab")
            label = name or f"{f.__module__}.{f.__qualname__}"
            self._crontab_specs.append((cron, tz, f, on_leader, label))
            return f

        return decorate

    def start(self, spawn: Spawn) -> None:
        """Start every task, timer and crontab (the app is operational)."""
        self._running = []
        if self.stopped:
            return
        host = self._host
        for fun, on_leader in self._task_funs:
            if on_leader and not host.is_leader():
                continue
            self._running.append(spawn(_closing_its_streams(_call_with_app(fun, host))))
        for fun, interval, on_leader, label in self._timer_specs:
            self._running.append(spawn(_closing_its_streams(
                self._run_timer(fun, interval, on_leader, label))))
        if self._crontab_specs:
            from .crontab import run as run_crontab

            for cron, tz, fun, on_leader, label in self._crontab_specs:
                self._running.append(spawn(_closing_its_streams(
                    run_crontab(host, cron, tz, fun, on_leader, label))))

    def names(self) -> list[str]:
        """Labels of the tasks, timers and crontabs this app runs (``timer:mod.fun``, ...)."""
        names = [f"task:{fun.__qualname__}" for fun, _ in self._task_funs]
        names += [f"timer:{label}" for *_, label in self._timer_specs]
        names += [f"crontab:{label}" for *_, label in self._crontab_specs]
        return names

    async def stop(self) -> None:
        """Cancel every task, timer and crontab; a later start starts none. Idempotent."""
        self.stopped = True
        running = [f for f in self._running if not f.done()]
        for future in running:
            future.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    async def _run_timer(self, fun: Callable[..., Any], interval: float, on_leader: bool, label: str) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + interval
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            due += interval
            host = self._host
            if on_leader and not host.is_leader():
                continue
            host.tracer.record("timer", name=label)
            try:
                await _call_with_app(fun, host)
            except Exception as exc:
                host.tracer.record("timer-error", name=label, error=type(exc).__name__)
                host.log.exception("timer %s raised %r", label, exc)


def _require_async(fun: Callable[..., Any], what: str) -> None:
    if not inspect.iscoroutinefunction(fun):
        raise InvalidArgument(f"{what} needs an async def function, got {fun!r}")


async def _closing_its_streams(source: Coroutine[Any, Any, Any]) -> Any:
    """Run ``source``; when it ends, close the streams it made (see the module doc)."""
    from .stream import stream_owner

    owned: list[Any] = []
    token = stream_owner.set(owned)
    try:
        return await source
    finally:
        stream_owner.reset(token)
        for stream in owned:
            stream.close()


async def _call_with_app(fun: Callable[..., Any], app: Any) -> Any:
    params = inspect.signature(fun).parameters
    return await (fun(app) if params else fun())

