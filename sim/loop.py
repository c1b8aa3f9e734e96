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

Asyncio internals relied on (stable since 3.7, checked on 3.11): the ready
queue is the deque ``self._ready``, ``self._scheduled`` is the timer heap
(``close`` clears it), ``TimerHandle.cancel`` counts cancelled timers in
``self._timer_cancelled_count`` (``_timer_handle_cancelled``), and
``run_forever`` calls ``self._run_once()`` once per iteration. This loop
overrides ``_run_once`` with asyncio's algorithm minus the parts that need
real I/O, and keeps its heap as ``(when, sequence, handle)`` tuples, which
compare in C rather than through ``TimerHandle.__lt__``: the loop's own
overhead is a large share of a simulation with many workers.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import weakref
from asyncio import base_events, events, format_helpers
from asyncio.log import logger
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Iterator
from contextvars import Context, ContextVar, copy_context
from functools import partial
from itertools import count
from operator import attrgetter
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from sim.errors import Deadlock, RealIOForbidden

__all__ = ["VirtualEventLoop", "run", "task_owner"]

#: Who a task belongs to (e.g. a simulated worker). Tasks inherit it from the
#: context they are created in, so a worker's whole task tree can be found,
#: and killed, when the simulator crashes that worker.
task_owner: ContextVar[str | None] = ContextVar("sim_task_owner", default=None)

T = TypeVar("T")
#: reads a virtual loop's clock in C (``VirtualEventLoop.clock``).
_read_now = attrgetter("_now")

if TYPE_CHECKING:
    from typing_extensions import TypeVarTuple, Unpack

    _Ts = TypeVarTuple("_Ts")

#: Timers due within this much of "now" fire in the same iteration.  Fixed (not
#: the host's monotonic resolution) so runs are identical across platforms.
CLOCK_RESOLUTION = 1e-9

#: asyncio's: the heap is rebuilt without cancelled timers when it holds more than
#: this many, more than this fraction of them cancelled; and the longest select.
_MIN_SCHEDULED_TIMER_HANDLES: int = base_events._MIN_SCHEDULED_TIMER_HANDLES  # type: ignore[attr-defined]
_MIN_CANCELLED_TIMER_HANDLES_FRACTION: float = (
    base_events._MIN_CANCELLED_TIMER_HANDLES_FRACTION  # type: ignore[attr-defined]
)
MAXIMUM_SELECT_TIMEOUT: float = base_events.MAXIMUM_SELECT_TIMEOUT  # type: ignore[attr-defined]

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


#: makes a handle without running its ``__init__`` (the loop fills its slots).
_new_object = object.__new__


class _TimerHandle(asyncio.TimerHandle):
    """A timer that breaks ties by creation order.

    Plain asyncio orders the timer heap by ``_when`` only, and ``heapq`` is
    not stable, so two timers due at the same instant run in an order that
    depends on the heap's history.  Deterministic, but not FIFO; with a
    sequence number equal-time timers run in the order they were scheduled.

    The loop's heap holds ``(when, seq, handle)`` tuples, so it never calls
    ``__lt__``; it orders handles compared elsewhere the same way.
    """

    __slots__ = ("_seq",)
    # asyncio.TimerHandle's slots (typeshed names them without declaring them).
    _when: float
    _scheduled: bool
    _cancelled: bool
    _loop: VirtualEventLoop
    _callback: Callable[..., object] | None
    _args: Any
    _repr: str | None
    _source_traceback: Any
    _context: Context

    def __init__(self, seq: int, *args: Any) -> None:
        super().__init__(*args)
        self._seq = seq

    def cancel(self) -> None:
        """``TimerHandle.cancel`` (and the loop's count of cancelled timers) in one call.

        The same steps as asyncio's three calls: counted as cancelled while
        still in the heap, then the callback and its arguments dropped.
        """
        if self._cancelled:
            return
        loop = self._loop
        if self._scheduled:  # BaseEventLoop._timer_handle_cancelled
            loop._timer_cancelled_count += 1
        self._cancelled = True
        if loop._debug:  # (what get_debug() returns)
            self._repr = repr(self)
        self._callback = None
        self._args = None

    def __lt__(self, other: object) -> bool:
        if type(other) is _TimerHandle:
            when, other_when = self.when(), other.when()
            return when < other_when or (when == other_when and self._seq < other._seq)
        if isinstance(other, asyncio.TimerHandle):
            return super().__lt__(other)
        return NotImplemented


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
            when = loop._scheduled[0][0]
            if when - loop._now > timeout:
                loop._now += timeout
            else:
                loop._now = max(loop._now, when)
        return []

    def close(self) -> None:
        pass


#: handles whose ``_run`` is asyncio's ``Handle._run`` (``_run_once`` runs their callback inline).
_PLAIN_HANDLES = frozenset({events.Handle, asyncio.TimerHandle, _TimerHandle})


def _callback_failed(handle: asyncio.Handle, exc: BaseException) -> None:
    """What asyncio's ``Handle._run`` does when the callback raised: tell the exception handler."""
    callback, args = handle._callback, handle._args  # type: ignore[attr-defined]
    source = format_helpers._format_callback_source(callback, args)
    context = {"message": f"Exception in callback {source}", "exception": exc, "handle": handle}
    if handle._source_traceback:  # type: ignore[attr-defined]
        context["source_traceback"] = handle._source_traceback  # type: ignore[attr-defined]
    handle._loop.call_exception_handler(context)  # type: ignore[attr-defined]


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

    # asyncio.BaseEventLoop's own state that this loop reads (typeshed does not declare it).
    _ready: deque[asyncio.Handle]
    _scheduled: list[tuple[float, int, _TimerHandle]]
    _timer_cancelled_count: int
    _stopping: bool
    _debug: bool
    _current_handle: asyncio.Handle | None

    def __init__(self, *, start: float = 0.0, shuffle: random.Random | None = None) -> None:
        super().__init__()
        self._now = float(start)
        self._clock_resolution = CLOCK_RESOLUTION
        self._selector = _VirtualSelector(self)
        self._shuffle = shuffle
        #: virtual seconds the current iteration takes beyond zero (``pause``).
        self._pause = 0.0
        self._timer_seq = count()
        self._task_seq = count(1)
        #: set by ``hash_by_creation_order``: futures and tasks made here hash by this count.
        self._hash_seq: Iterator[int] | None = None
        # Creation order of tasks, to report and cancel them deterministically
        # (asyncio.all_tasks() is a set ordered by memory address), per owner: a worker
        # that exits finds its own tasks without a walk over every task of the run (one
        # per worker exit, with thousands of tasks at 100 workers). Weak: a task leaves
        # its owner's map when it is gone. Tasks made under no owner are under None.
        self._owned: dict[str | None, weakref.WeakValueDictionary[int, asyncio.Task[Any]]] = {}
        #: (host, port) -> the simulated broker a connection there reaches (``sim.wire``);
        #: ``create_connection`` to any other address is refused as real I/O.
        self.simulated_endpoints: dict[tuple[str, int], Callable[[], Any]] = {}
        #: open in-memory connections, in the order they were made (``sim.wire``).
        self.simulated_connections: dict[Any, None] = {}
        #: loop iterations so far: a point in the run that depends on the schedule only.
        self.iterations = 0
        self._iteration_hook: Callable[[int], object] | None = None
        self._hook_every = 0
        self._hook_due = 0

    # -- clock ---------------------------------------------------------------

    def time(self) -> float:
        """Virtual seconds; moves only when the loop jumps to the next timer."""
        return self._now

    @property
    def clock(self) -> Callable[[], float]:
        """``time`` as a callable made of C parts (a partial of a reader of ``_now``): what
        the trace and the write history stamp every step with, a Python call less each."""
        return partial(_read_now, self)

    def call_at(
        self,
        when: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        """Schedule ``callback`` at virtual time ``when``; equal times run FIFO."""
        if when is None:
            raise TypeError("when cannot be None")
        if self._debug or self._closed:  # type: ignore[attr-defined]
            return self._call_at_checked(when, callback, args, context)
        return self._timer(when, callback, args, context)

    def _timer(
        self, when: float, callback: Callable[..., object], args: tuple[Any, ...], context: Context | None,
    ) -> _TimerHandle:
        """A scheduled timer, made as ``_TimerHandle(...)`` would make it outside debug mode.

        The handle's slots are filled here rather than through the three
        ``__init__`` of its classes: a run makes one per sleep and timeout.
        """
        seq = next(self._timer_seq)
        timer = _new_object(_TimerHandle)
        timer._context = copy_context() if context is None else context
        timer._loop = self
        timer._callback = callback
        timer._args = args
        timer._cancelled = False
        timer._repr = None
        timer._source_traceback = None
        timer._when = when
        timer._seq = seq
        heapq.heappush(self._scheduled, (when, seq, timer))
        timer._scheduled = True
        return timer

    def _call_at_checked(
        self, when: float, callback: Callable[..., object], args: tuple[Any, ...], context: Context | None,
    ) -> _TimerHandle:
        """``call_at`` with asyncio's checks: a closed loop refuses, debug mode checks the call."""
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_at")  # type: ignore[attr-defined]
        seq = next(self._timer_seq)
        timer = _TimerHandle(seq, when, callback, args, self, context)
        if timer._source_traceback:
            del timer._source_traceback[-1]
        heapq.heappush(self._scheduled, (when, seq, timer))
        timer._scheduled = True
        return timer

    def call_soon(
        self, callback: Callable[[Unpack[_Ts]], object], *args: Unpack[_Ts], context: Context | None = None,
    ) -> asyncio.Handle:
        """As asyncio's: the callback joins the ready queue (FIFO), in one call.

        Every task step and future callback of a run comes through here, so
        the handle is made without asyncio's chain of calls (``_call_soon``,
        ``Handle.__init__``, ``get_debug``); in debug mode, or on a closed
        loop, asyncio's own path runs.
        """
        if self._debug or self._closed:  # type: ignore[attr-defined]
            return super().call_soon(callback, *args, context=context)
        handle: Any = _new_object(events.Handle)
        handle._context = copy_context() if context is None else context
        handle._loop = self
        handle._callback = callback
        handle._args = args
        handle._cancelled = False
        handle._repr = None
        handle._source_traceback = None
        self._ready.append(handle)
        return handle

    def call_later(
        self,
        delay: float,
        callback: Callable[[Unpack[_Ts]], object],
        *args: Unpack[_Ts],
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        """As asyncio's (``call_at(time() + delay)``), without its extra method calls.

        A positive delay shorter than the clock's resolution is stretched to
        it. asyncio runs such a timer at once, and on a real clock time has
        passed by then; here it has not, so a client that waits out a
        deadline it computed from ``time()`` (aiokafka's fetcher, left with
        5.7e-15 s after float rounding) would wait again at the same instant
        forever. Stretched, the timer moves the virtual clock past the deadline.
        """
        if delay is None:
            raise TypeError("delay must not be None")
        if 0 < delay < self._clock_resolution:
            delay = self._clock_resolution
        if self._debug or self._closed:  # type: ignore[attr-defined]
            timer = self._call_at_checked(self._now + delay, callback, args, context)
            if timer._source_traceback:
                del timer._source_traceback[-1]
            return timer
        return self._timer(self._now + delay, callback, args, context)

    def pause(self, duration: float) -> None:
        """The current iteration takes ``duration`` more virtual seconds: a busy process.

        The next iteration starts that much later, so the timers that came
        due meanwhile run in it together, after the callbacks already queued,
        as asyncio runs them after a slow iteration. The simulated network
        pauses the loop where bugs live (``Network``'s error responses).
        """
        self._pause = max(self._pause, duration)

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

    def hash_by_creation_order(self) -> None:
        """From now on, futures and tasks made by this loop hash by the order they were made.

        A set of futures or tasks iterates in hash order, and by default they
        hash by memory address: one process runs a seed the same way every
        time, another process differently. aiokafka keeps its fetch waiters,
        pending fetches and sender tasks in sets, so under ``--driver
        aiokafka`` the same seed gave another trace in every process. The
        sim driver iterates no such set; its runs keep the default hashes.
        """
        if self._hash_seq is None:
            self._hash_seq = count(1)
            self.set_task_factory(_ordered_task)

    def create_future(self) -> asyncio.Future[Any]:
        if self._hash_seq is None:
            return asyncio.Future(loop=self)
        future = _OrderedFuture(loop=self)
        future.order = next(self._hash_seq)
        return future

    def create_task(
        self,
        coro: Coroutine[Any, Any, T] | Generator[Any, None, T],
        *,
        name: object = None,
        **kwargs: Any,
    ) -> asyncio.Task[T]:
        """Like asyncio's, but default names count per loop, not per process.

        asyncio's ``Task-N`` counter is process-global, so the second run of
        a seed in one process would name its tasks differently.
        """
        seq = next(self._task_seq)
        task = super().create_task(coro, name=f"Task-{seq}" if name is None else name, **kwargs)
        context = kwargs.get("context")
        owner = context.get(task_owner) if context is not None else task_owner.get()
        owned = self._owned.get(owner)
        if owned is None:
            owned = self._owned[owner] = weakref.WeakValueDictionary()
        owned[seq] = task
        return task

    def tasks_owned_by(self, owner: str) -> list[asyncio.Task[Any]]:
        """Unfinished tasks created (directly or not) under ``task_owner == owner``, in creation order."""
        owned = self._owned.get(owner)
        if not owned:
            return []
        return [task for _, task in sorted(owned.items()) if not task.done()]

    def pending_tasks(self) -> list[asyncio.Task[Any]]:
        """This loop's unfinished tasks, in creation order."""
        tasks = [t for t in asyncio.all_tasks(self) if not t.done()]
        seqs = {task: seq for owned in self._owned.values() for seq, task in owned.items()}
        return sorted(tasks, key=lambda t: (seqs.get(t, 0), t.get_name()))

    # -- one iteration ---------------------------------------------------------

    def _run_once(self) -> None:
        """One iteration: asyncio's ``BaseEventLoop._run_once``, on the virtual clock.

        Step for step what asyncio does (drop cancelled timers, wait for the
        next one, which here moves the clock, take the due timers, run every
        ready callback), in the same order, so a run is the same as on
        asyncio's own ``_run_once``: only the heap's entries are tuples. Even
        the local ``handle`` holds the same handle at the same moments as
        asyncio's does (the last one it saw stays alive until the next), since
        when an object is freed can decide when a finalizer runs.
        """
        handle: Any
        timer: _TimerHandle | None
        scheduled = self._scheduled
        count = len(scheduled)
        if (count > _MIN_SCHEDULED_TIMER_HANDLES
                and self._timer_cancelled_count / count > _MIN_CANCELLED_TIMER_HANDLES_FRACTION):
            # Remove delayed calls that were cancelled if their number is too high.
            kept = []
            for entry in scheduled:
                handle = entry[2]
                if handle._cancelled:
                    handle._scheduled = False
                else:
                    kept.append(entry)
            del entry  # (the heap is not empty here)
            heapq.heapify(kept)
            self._scheduled = scheduled = kept
            self._timer_cancelled_count = 0
        else:
            # Remove delayed calls that were cancelled from the head of the queue.
            while scheduled and scheduled[0][2]._cancelled:
                self._timer_cancelled_count -= 1
                handle = heapq.heappop(scheduled)[2]
                handle._scheduled = False

        if self._pause:  # the last iteration was slow: its end is where this one starts
            self._now += self._pause
            self._pause = 0.0
        ready = self._ready
        if not ready and not self._stopping:
            # asyncio would select() until the next timer: the clock jumps to it.
            if not scheduled:
                raise self._deadlock()
            when = scheduled[0][0]
            timeout = min(max(0, when - self._now), MAXIMUM_SELECT_TIMEOUT)
            if timeout > 0:
                if when - self._now > timeout:
                    self._now += timeout
                else:
                    self._now = max(self._now, when)
        # Count the iteration (and call its hook), then move every due timer to the
        # ready queue, as asyncio's ``_run_once`` does after its ``_process_events``.
        # Every due timer, for two reasons: (1) asyncio fires timers with ``when <
        # now + resolution``; once ``now`` is so large that adding the resolution
        # rounds away (about 194 virtual days at 1 ns), a timer due exactly now
        # would never fire and the loop would spin; nextafter() keeps it due.
        # (2) With ``shuffle`` the due timers take part in the permutation.
        self.iterations += 1
        if self._iteration_hook is not None and self.iterations >= self._hook_due:
            self._hook_due += self._hook_every
            self._iteration_hook(self.iterations)
        end = self._now + self._clock_resolution
        if end == self._now:
            end = math.nextafter(end, math.inf)
        while scheduled and scheduled[0][0] < end:
            timer = heapq.heappop(scheduled)[2]
            timer._scheduled = False
            # A timer fired a hair early (within the resolution) moves the clock
            # to its deadline: otherwise "deadline - now" stays a tiny positive
            # number and a caller waiting "until the deadline" spins forever.
            self._now = max(self._now, timer._when)
            ready.append(timer)
        timer = None  # (as asyncio's: the last timer moved is not kept alive past here)
        if self._shuffle is not None and len(ready) > 1:
            handles = list(ready)
            self._shuffle.shuffle(handles)
            ready.clear()
            ready.extend(handles)

        # Run every callback ready now; those they schedule run in the next iteration.
        popleft = ready.popleft
        for _ in range(len(ready)):
            handle = popleft()
            if handle._cancelled:
                continue
            if self._debug:
                self._run_debug(handle)
            elif type(handle) in _PLAIN_HANDLES:
                # ``handle._run()`` without its frame: every callback of a run comes here.
                try:
                    handle._context.run(handle._callback, *handle._args)
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    _callback_failed(handle, exc)
            else:
                handle._run()
        handle = None  # Needed to break cycles when an exception occurs.

    def _run_debug(self, handle: asyncio.Handle) -> None:
        """asyncio's debug path: note the current handle, warn about a slow callback."""
        try:
            self._current_handle = handle
            t0 = self._now
            handle._run()
            dt = self._now - t0
            if dt >= self.slow_callback_duration:
                logger.warning(
                    "Executing %s took %.3f seconds", base_events._format_handle(handle), dt  # type: ignore[attr-defined]
                )
        finally:
            self._current_handle = None

    # -- the parts of BaseEventLoop that are left to subclasses ----------------

    def _process_events(self, event_list: list[Any]) -> None:
        # asyncio's hook between the wait and the ready callbacks: this loop has no
        # events, and its ``_run_once`` takes the due timers itself.
        pass

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

_refuse_connection: Callable[..., NoReturn] = _refuser("create_connection", *REFUSED_METHODS["create_connection"])


def _create_connection(
    self: VirtualEventLoop, protocol_factory: Callable[[], asyncio.Protocol],
    host: str | None = None, port: int | None = None, **options: Any,
) -> Coroutine[Any, Any, tuple[asyncio.Transport, asyncio.Protocol]]:
    """A connection to a simulated broker (``sim.wire``) is in memory; any other is real I/O, refused.

    A plain function, as the other refusals: a refused call raises where it is made.
    """
    endpoint = self.simulated_endpoints.get((host or "", port or 0))
    if endpoint is None or options.get("ssl") is not None:
        _refuse_connection(self, protocol_factory, host, port, **options)
    return _connect_in_memory(self, protocol_factory, endpoint)


async def _connect_in_memory(
    loop: VirtualEventLoop, protocol_factory: Callable[[], asyncio.Protocol], endpoint: Callable[[], Any],
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    from sim.wire.connection import MemoryTransport

    protocol = protocol_factory()
    transport = MemoryTransport(loop, protocol, endpoint())
    protocol.connection_made(transport)
    return transport, protocol


VirtualEventLoop.create_connection = _create_connection  # type: ignore[method-assign, assignment]


class _OrderedFuture(asyncio.Future[Any]):
    """A future that hashes by creation order (``VirtualEventLoop.hash_by_creation_order``)."""

    order = 0

    def __hash__(self) -> int:
        return self.order


class _OrderedTask(asyncio.Task[Any]):
    """A task that hashes by creation order; ``order`` is set before ``__init__`` registers it."""

    order = 0

    def __hash__(self) -> int:
        return self.order


def _ordered_task(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
    task = _OrderedTask.__new__(_OrderedTask)
    assert isinstance(loop, VirtualEventLoop) and loop._hash_seq is not None
    task.order = next(loop._hash_seq)
    task.__init__(coro, loop=loop, **kwargs)  # type: ignore[misc]
    return task


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


def task_code_files(task: asyncio.Task[Any]) -> list[str]:
    """The source files of a task's coroutine chain, outermost first (``cr_await`` down)."""
    files = []
    aw: Any = task.get_coro()
    for _ in range(64):  # bounded: never loop on an odd awaitable
        frame = _frame_of(aw)
        if frame is None:
            break
        files.append(frame.f_code.co_filename)
        aw = _awaiting(aw)
    return files


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

