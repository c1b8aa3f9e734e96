"""Tasks, timers and crontabs: the App's ``@app.task``, ``@app.timer`` and ``@app.crontab``.

They are registered when the module is imported and started once the app is
operational (after the consumer group is joined), each as a background task
the app cancels when it stops. A timer or crontab that raises is logged and
traced, and keeps its schedule: one bad run must not end a periodic job.

``stop_sources()`` cancels them while the rest of the app keeps running (and
keeps them from starting, if the app has not started yet): the simulator calls
it when its main phase ends, so that a timer that sends forever does not keep
feeding the topics the run must drain before it checks them.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument

if TYPE_CHECKING:
    from mode.utils.logging import CompositeLogger

    from .tracing import Tracer


class TasksMixin:
    """The App's periodic and one-shot jobs (mixed into ``App``)."""

    _task_funs: list[Callable[..., Any]]
    _timer_specs: list[tuple[Callable[..., Any], float, bool, str]]
    _crontab_specs: list[tuple[Any, Any, Callable[..., Any], bool, str]]
    _background: list[asyncio.Task[Any]]
    #: the running tasks, timers and crontabs (a subset of ``_background``).
    _sources: list[asyncio.Task[Any]]
    #: set by stop_sources(): tasks, timers and crontabs no longer run, nor start.
    sources_stopped: bool = False

    if TYPE_CHECKING:
        # What the mixin uses of App (and of mode's Service, App's other base).
        log: CompositeLogger

        def is_leader(self) -> bool: ...

        tracer: Tracer

    def task(self, fun: Callable[..., Any] | None = None) -> Any:
        """Run ``fun`` once the app is operational (``fun()`` or ``fun(app)``)."""

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            _require_async(f, "@app.task")
            self._task_funs.append(f)
            return f

        return decorate(fun) if fun is not None else decorate

    def timer(
        self, interval: float, *, on_leader: bool = False, name: str | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the decorated function every ``interval`` seconds (first run after one interval)."""
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise InvalidArgument(f"@app.timer() interval must be a number > 0, got {interval!r}")

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            _require_async(f, "@app.timer")
            label = name or f"{f.__module__}.{f.__qualname__}"
            self._timer_specs.append((f, float(interval), on_leader, label))
            return f

        return decorate

    def crontab(
        self, cron_format: str, *, timezone: Any = None, on_leader: bool = False,
        name: str | None = None,
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

    def _start_tasks(self) -> None:
        """Start every task, timer and crontab (the app is operational)."""
        self._sources = []
        if self.sources_stopped:
            return
        for fun in self._task_funs:
            self._spawn(_call_with_app(fun, self), f"task:{fun.__qualname__}")
        for fun, interval, on_leader, label in self._timer_specs:
            self._spawn(self._run_timer(fun, interval, on_leader, label), f"timer:{label}")
        if self._crontab_specs:
            from .crontab import run as run_crontab

            for cron, tz, fun, on_leader, label in self._crontab_specs:
                self._spawn(run_crontab(self, cron, tz, fun, on_leader, label), f"crontab:{label}")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        future = asyncio.ensure_future(coro)
        self._background.append(future)
        self._sources.append(future)

    def source_names(self) -> list[str]:
        """Labels of the tasks, timers and crontabs this app runs (``timer:mod.fun``, ...)."""
        names = [f"task:{fun.__qualname__}" for fun in self._task_funs]
        names += [f"timer:{label}" for *_, label in self._timer_specs]
        names += [f"crontab:{label}" for *_, label in self._crontab_specs]
        return names

    async def stop_sources(self) -> None:
        """Stop the app's own sources of work: cancel every task, timer and crontab.

        Agents, the consumer group, commits and the producer keep running, so
        what the sources sent is still processed. Once called, a later start
        of this app starts none of them. Idempotent.
        """
        self.sources_stopped = True
        running = [f for f in getattr(self, "_sources", ()) if not f.done()]
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
            if on_leader and not self.is_leader():
                continue
            self.tracer.record("timer", name=label)
            try:
                await _call_with_app(fun, self)
            except Exception as exc:
                self.tracer.record("timer-error", name=label, error=type(exc).__name__)
                self.log.exception("timer %s raised %r", label, exc)


def _require_async(fun: Callable[..., Any], what: str) -> None:
    if not inspect.iscoroutinefunction(fun):
        raise InvalidArgument(f"{what} needs an async def function, got {fun!r}")


async def _call_with_app(fun: Callable[..., Any], app: Any) -> Any:
    params = inspect.signature(fun).parameters
    return await (fun(app) if params else fun())

