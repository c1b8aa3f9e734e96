"""A deterministic asyncio event loop whose clock is virtual.

``VirtualEventLoop`` reuses ``asyncio.BaseEventLoop`` for everything (ready
queue, timers, tasks, async generators) and replaces only the part that waits:
the selector.  Its ``select(timeout)`` never blocks.  Asyncio computes
``timeout`` as "time until the next timer"; the fake selector jumps the
virtual clock to that timer instead of waiting, so an hour of 1 s timers costs
3600 loop iterations and no real time.  ``timeout=None`` means nothing is
ready and no timer exists: a real loop would hang forever, this one raises
:class:`~sim.errors.Deadlock` listing where every task is stuck.

There is no real I/O source behind this loop, so every method that would need
one (sockets, pipes, subprocesses, signals, executors) is refused with
:class:`~sim.errors.RealIOForbidden`.

Asyncio internals relied on (stable since 3.7, checked on 3.11): ``_run_once``
calls ``self._selector.select(timeout)`` then ``self._process_events``;
timers live in the heap ``self._scheduled`` as ``TimerHandle`` (``_when``,
``_scheduled``); the ready queue is the deque ``self._ready``.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import weakref
from collections.abc import Callable, Coroutine
from contextvars import Context, ContextVar
from itertools import count
from types import FrameType
from typing import Any, TypeVar

from sim.errors import Deadlock, RealIOForbidden

__all__ = ["VirtualEventLoop", "run", "task_owner"]

#: Who a task belongs to (e.g. a simulated worker). Tasks inherit it from the
#: context they are created in, so a worker's whole task tree can be found,
#: and killed, when the simulator crashes that worker.
task_owner: ContextVar[str | None] = ContextVar("sim_task_owner", default=None)

T = TypeVar("T")

#: Timers due within this much of "now" fire in the same iteration.  Fixed (not
#: the host's monotonic resolution) so runs are identical across platforms.
CLOCK_RESOLUTION = 1e-9

DEADLOCK_HINT = (
    "nothing is runnable and no timer is scheduled: every task waits on something no one will set"
)

_NET = ("real network I/O", None)
_THREADS = (
    "a real thread",
    "the simulation is single-threaded: call the function directly, "
    "or run this code outside `detstream sim`",
)
_PROCS = ("a real subprocess", "run this code outside `detstream sim`")
_FDS = (
    "real file-descriptor polling",
    "there is no real I/O behind a virtual loop: use the app's transport, "
    "or run this code outside `detstream sim`",
)
_SIGNALS = (
    "a real signal handler",
    "the simulation injects crashes from its fault plan instead; "
    "run this code outside `detstream sim`",
)

_REFUSALS: dict[str, tuple[str, str | None]] = {
    "run_in_executor": _THREADS,
    "set_default_executor": _THREADS,
    "getaddrinfo": _NET,
    "getnameinfo": _NET,
    "create_connection": _NET,
    "create_server": _NET,
    "create_unix_connection": _NET,
    "create_unix_server": _NET,
    "create_datagram_endpoint": _NET,
    "connect_accepted_socket": _NET,
    "connect_read_pipe": _FDS,
    "connect_write_pipe": _FDS,
    "subprocess_exec": _PROCS,
    "subprocess_shell": _PROCS,
    "add_reader": _FDS,
    "add_writer": _FDS,
    "remove_reader": _FDS,
    "remove_writer": _FDS,
    "sock_recv": _NET,
    "sock_recv_into": _NET,
    "sock_recvfrom": _NET,
    "sock_recvfrom_into": _NET,
    "sock_sendall": _NET,
    "sock_sendto": _NET,
    "sock_connect": _NET,
    "sock_accept": _NET,
    "sock_sendfile": _NET,
    "sendfile": _NET,
    "start_tls": _NET,
    "add_signal_handler": _SIGNALS,
    "remove_signal_handler": _SIGNALS,
}

#: Loop methods that need the real world (those this Python has), and why
#: each is refused: (what it is, hint).
REFUSED_METHODS: dict[str, tuple[str, str | None]] = {
    name: why for name, why in _REFUSALS.items() if hasattr(asyncio.AbstractEventLoop, name)
}


class _TimerHandle(asyncio.TimerHandle):
    """A timer that breaks ties by creation order.

    Plain asyncio orders the timer heap by ``_when`` only, and ``heapq`` is
    not stable, so two timers due at the same instant run in an order that
    depends on the heap's history.  Deterministic, but not FIFO; with a
    sequence number equal-time timers run in the order they were scheduled.

    Every push and pop of the heap compares handles with this Python-level
    ``__lt__`` (about 2 log n times), so it is written for speed: an exact
    type test and plain attribute reads, no ``super()`` call on that path.
    """

    __slots__ = ("_seq",)

    def __init__(self, seq: int, *args: Any) -> None:
        super().__init__(*args)
        self._seq = seq

    def __lt__(self, other: object) -> bool:
        if type(other) is _TimerHandle:
            when, other_when = self._when, other._when
            return when < other_when or (when == other_when and self._seq < other._seq)
        return super().__lt__(other)


class _VirtualSelector:
    """Stands in for ``selectors.BaseSelector``: never blocks, moves the clock."""

    __slots__ = ("_loop",)

    def __init__(self, loop: VirtualEventLoop) -> None:
        self._loop = loop

    def select(self, timeout: float | None) -> list[Any]:
        loop = self._loop
        if timeout is None:
            raise loop._deadlock()
        if timeout > 0:
            # asyncio computed timeout = min(when - now, MAXIMUM_SELECT_TIMEOUT).
            # Land exactly on the timer's ``when`` (now + timeout can be off by
            # an ulp and then the timer would not be due); if the timeout was
            # clamped, just advance by it.
            when = loop._scheduled[0]._when
            if when - loop._now > timeout:
                loop._now += timeout
            else:
                loop._now = max(loop._now, when)
        return []

    def close(self) -> None:
        pass


def _refuser(name: str, what: str, hint: str | None) -> Callable[..., Any]:
    # A plain function even for ``async def`` originals: raising at call time
    # points the traceback at the caller, and an un-awaited coroutine would
    # only produce a "never awaited" warning.
    def refused(self: VirtualEventLoop, *args: Any, **kwargs: Any) -> Any:
        if hint is None:
            raise RealIOForbidden(f"loop.{name}()", what)
        raise RealIOForbidden(f"loop.{name}()", what, hint)

    refused.__name__ = refused.__qualname__ = name
    refused.__doc__ = f"Refused under simulation: ``{name}`` would be {what}."
    return refused


class VirtualEventLoop(asyncio.BaseEventLoop):
    """An asyncio loop on a virtual clock; single-threaded and deterministic.

    ``start`` is the initial value of :meth:`time`.  ``shuffle``, when given,
    permutes the ready queue with that ``random.Random`` at every iteration.
    It is opt-in because it deliberately goes beyond what asyncio promises:
    asyncio runs ``call_soon`` callbacks FIFO, but nothing promises the order
    in which *independent* tasks become ready (in production that order comes
    from the network and the OS).  Shuffling explores those interleavings
    from a seed; code that silently relies on FIFO order of ``call_soon``
    across tasks may break under it, which is exactly what it is for.
    """

    def __init__(self, *, start: float = 0.0, shuffle: random.Random | None = None) -> None:
        super().__init__()
        self._now = float(start)
        self._clock_resolution = CLOCK_RESOLUTION
        self._selector = _VirtualSelector(self)
        self._shuffle = shuffle
        self._timer_seq = count()
        self._task_seq = count(1)
        # Creation order of tasks, to report and cancel them deterministically
        # (asyncio.all_tasks() is a set ordered by memory address).
        self._task_order: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = (
            weakref.WeakKeyDictionary()
        )
        self._task_owner: weakref.WeakKeyDictionary[asyncio.Task[Any], str] = (
            weakref.WeakKeyDictionary()
        )
        #: loop iterations so far: a point in the run that depends on the schedule only.
        self.iterations = 0
        self._iteration_hook: Callable[[int], object] | None = None
        self._hook_every = 0
        self._hook_due = 0

    # -- clock ---------------------------------------------------------------

    def time(self) -> float:
        """Virtual seconds; moves only when the loop jumps to the next timer."""
        return self._now

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: Any,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback`` at virtual time ``when``; equal times run FIFO."""
        if when is None:
            raise TypeError("when cannot be None")
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:  # type: ignore[attr-defined]
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        timer = _TimerHandle(next(self._timer_seq), when, callback, args, self, context)
        if timer._source_traceback:  # type: ignore[attr-defined]
            del timer._source_traceback[-1]  # type: ignore[attr-defined]
        heapq.heappush(self._scheduled, timer)  # type: ignore[attr-defined]
        timer._scheduled = True  # type: ignore[attr-defined]
        return timer

    def call_every_iterations(self, every: int, hook: Callable[[int], object] | None) -> None:
        """Call ``hook(iterations)`` at the start of every ``every``-th loop iteration (None: stop).

        For work that must happen at points of the run that depend on the
        schedule alone, never on the host: the garbage collection policy
        (``sim.gc_policy``) collects there, so a finalizer that a collection
        runs touches the loop at the same step in every run of a seed. The
        hook runs before the iteration's ready callbacks, outside any task.
        """
        if every < 1:
            raise ValueError(f"every must be at least 1, not {every}")
        self._iteration_hook = hook
        self._hook_every = every
        self._hook_due = self.iterations + every

    # -- tasks ---------------------------------------------------------------

    def create_task(
        self, coro: Any, *, name: str | None = None, **kwargs: Any
    ) -> asyncio.Task[Any]:
        """Like asyncio's, but default names count per loop, not per process.

        asyncio's ``Task-N`` counter is process-global, so the second run of
        a seed in one process would name its tasks differently.
        """
        seq = next(self._task_seq)
        task = super().create_task(coro, name=f"Task-{seq}" if name is None else name, **kwargs)
        self._task_order[task] = seq
        context = kwargs.get("context")
        owner = context.get(task_owner) if context is not None else task_owner.get()
        if owner is not None:
            self._task_owner[task] = owner
        return task

    def tasks_owned_by(self, owner: str) -> list[asyncio.Task[Any]]:
        """Unfinished tasks created (directly or not) under ``task_owner == owner``."""
        return [t for t in self.pending_tasks() if self._task_owner.get(t) == owner]

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """This loop's unfinished tasks, in creation order."""
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        return sorted(tasks, key=lambda t: (self._task_order.get(t, 0), t.get_name()))

    # -- the parts of BaseEventLoop that are left to subclasses ----------------

    def _process_events(self, event_list: list[Any]) -> None:
        # Called once per iteration of _run_once, between select and the ready callbacks.
        self.iterations += 1
        if self._iteration_hook is not None and self.iterations >= self._hook_due:
            self._hook_due += self._hook_every
            self._iteration_hook(self.iterations)
        # Move due timers to the ready queue here, before _run_once would.
        # Two reasons: (1) asyncio fires timers with ``when < now +
        # resolution``; once ``now`` is so large that adding the resolution
        # rounds away (about 194 virtual days at 1 ns), a timer due exactly
        # now would never fire and the loop would spin; nextafter() keeps it
        # due.  (2) With ``shuffle`` the due timers take part in the permutation.
        ready, scheduled = self._ready, self._scheduled  # type: ignore[attr-defined]
        end = self._now + self._clock_resolution
        if end == self._now:
            end = math.nextafter(end, math.inf)
        while scheduled and scheduled[0]._when < end:
            handle = heapq.heappop(scheduled)
            handle._scheduled = False
            # A timer fired a hair early (within the resolution) moves the clock
            # to its deadline: otherwise "deadline - now" stays a tiny positive
            # number and a caller waiting "until the deadline" spins forever.
            self._now = max(self._now, handle._when)
            ready.append(handle)
        if self._shuffle is not None and len(ready) > 1:
            handles = list(ready)
            self._shuffle.shuffle(handles)
            ready.clear()
            ready.extend(handles)

    def _write_to_self(self) -> None:
        # Nothing to wake: the loop never blocks.
        pass

    def close(self) -> None:
        """Close the loop (allowed after a :class:`Deadlock`)."""
        super().close()
        self._selector.close()

    # -- deadlock report -------------------------------------------------------

    def _deadlock(self) -> Deadlock:
        tasks = [describe_task(t) for t in self.pending_tasks()]
        lines = "".join(f"\n  {t}" for t in tasks)
        return Deadlock(
            f"deadlock at virtual time {self._now!r}: {DEADLOCK_HINT}; "
            f"{len(tasks)} pending task(s):{lines}",
            tasks,
        )


for _name, (_what, _hint) in REFUSED_METHODS.items():
    setattr(VirtualEventLoop, _name, _refuser(_name, _what, _hint))
del _name, _what, _hint


def _frame_of(aw: Any) -> FrameType | None:
    for attr in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(aw, attr, None)
        if frame is not None:
            return frame
    return None


def _awaiting(aw: Any) -> Any:
    for attr in ("cr_await", "gi_yieldfrom", "ag_await"):
        inner = getattr(aw, attr, None)
        if inner is not None:
            return inner
    return None


def describe_task(task: asyncio.Task[Any]) -> str:
    """``Task 'name' qualname() at file:line -> inner() at file:line ...``.

    The first location is the task's own frame (``task.get_stack()``); the
    chain follows ``cr_await`` down to the innermost coroutine, which is
    usually the more telling line.
    """
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", type(coro).__name__)
    stack = task.get_stack()
    where = f"{stack[-1].f_code.co_filename}:{stack[-1].f_lineno}" if stack else "?"
    parts = [f"Task {task.get_name()!r} {qualname}() suspended at {where}"]
    inner = _awaiting(coro)
    for _ in range(64):  # bounded: never loop on an odd awaitable
        frame = _frame_of(inner)
        if frame is None:
            break
        name = getattr(inner, "__qualname__", frame.f_code.co_name)
        parts.append(f"{name}() at {frame.f_code.co_filename}:{frame.f_lineno}")
        inner = _awaiting(inner)
    return " -> ".join(parts)


def run(
    main: Coroutine[Any, Any, T],
    *,
    start: float = 0.0,
    shuffle: random.Random | None = None,
) -> T:
    """Run ``main`` on a fresh :class:`VirtualEventLoop`, like ``asyncio.run``.

    Leftover tasks are cancelled in creation order (not ``all_tasks()`` set
    order) so that their cleanup runs deterministically; then async
    generators are shut down, the loop closed and unset.
    """
    loop = VirtualEventLoop(start=start, shuffle=shuffle)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_leftovers(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_leftovers(loop: VirtualEventLoop) -> None:
    tasks = loop.pending_tasks()
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during sim.loop.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
