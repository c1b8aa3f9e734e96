"""Process-wide patches that make a simulation run depend only on its seed.

A virtual loop is not enough: libraries read clocks, randomness and the
network directly.  While a :class:`Sandbox` is active:

* ``time.time``/``monotonic``/``perf_counter`` (and ``_ns`` variants) and
  ``datetime.datetime.now()``/``utcnow()``/``today()``/``date.today()`` read
  the loop's virtual clock (wall = ``epoch + loop.time()``; the sandbox's
  local time zone is UTC, so naive ``now()`` does not depend on the host);
* the global ``random`` is seeded, and ``uuid.uuid4``, ``os.urandom`` and
  unseeded ``random.Random()`` draw from a Random derived from the seed;
* threads, sockets, subprocesses, ``os.system`` and ``os.fork`` raise
  :class:`~sim.errors.RealIOForbidden` (file I/O stays allowed), and so does
  ``time.sleep`` for any positive time: it would block the one loop every
  simulated worker shares, for real seconds the virtual clock never sees
  (Faust's ``tabletest.py`` sleeps an hour when it sees a gap).

Names copied before the sandbox started (``from time import perf_counter``,
``def f(clock=perf_counter)``) still point at the originals, so, as freezegun
does, module globals, class attributes and function defaults that *are* an
original are swapped for the fake, and swapped back on exit.  mode's timers
are the case that matters: ``Timer.__init__``, ``timer_intervals`` and
``Service.itertimer`` capture ``clock=perf_counter`` at definition time.

The fakes are permanent module-level objects that fall back to the real
function when no sandbox is active, so a reference that escapes (a module
imported during a run keeps the fake) stays correct afterwards.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import os
import random
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
from typing import Any

from sim.errors import DEFAULT_HINT, RealIOForbidden, SimulationError
from sim.loop import VirtualEventLoop
from sim.seeds import SeedStreams

__all__ = ["EPOCH", "Sandbox", "VirtualDate", "VirtualDatetime"]

#: the virtual wall clock at loop time 0 (seconds since the Unix epoch: 2023-11-14).
EPOCH = 1_700_000_000.0

_active: Sandbox | None = None

# -- originals, captured once at import ------------------------------------------

_real_time = time.time  # noqa: TID251 - the sandbox must hold the originals
_real_time_ns = time.time_ns
_real_monotonic = time.monotonic  # noqa: TID251
_real_monotonic_ns = time.monotonic_ns
_real_perf_counter = time.perf_counter  # noqa: TID251
_real_perf_counter_ns = time.perf_counter_ns
_real_sleep = time.sleep
_real_datetime = _dt.datetime
_real_date = _dt.date
_real_uuid4 = uuid.uuid4  # noqa: TID251
_real_urandom = os.urandom
_real_random_seed = random.Random.seed
_real_create_connection = socket.create_connection
_real_getaddrinfo = socket.getaddrinfo
_real_system = os.system
_real_fork = getattr(os, "fork", None)

# -- fakes -------------------------------------------------------------------------


def _fake_time() -> float:
    s = _active  # ``s.wall_time()``, inline: a record's timestamp reads it
    return _real_time() if s is None else s.epoch + s.loop._now


def _fake_time_ns() -> int:
    s = _active
    return _real_time_ns() if s is None else s.wall_time_ns()


def _fake_monotonic() -> float:
    s = _active
    return _real_monotonic() if s is None else s.loop.time()


def _fake_monotonic_ns() -> int:
    s = _active
    return _real_monotonic_ns() if s is None else round(s.loop.time() * 1e9)


def _fake_perf_counter() -> float:
    s = _active
    return _real_perf_counter() if s is None else s.loop.time()


def _fake_perf_counter_ns() -> int:
    s = _active
    return _real_perf_counter_ns() if s is None else round(s.loop.time() * 1e9)


def _fake_uuid4() -> uuid.UUID:
    s = _active
    if s is None:
        return _real_uuid4()
    return uuid.UUID(int=s._entropy.getrandbits(128), version=4)


def _fake_urandom(size: int) -> bytes:
    s = _active
    return _real_urandom(size) if s is None else s._entropy.randbytes(size)


def _fake_random_seed(self: random.Random, a: Any = None, version: int = 2) -> None:
    # random.Random() and random.seed() without an argument seed from the OS
    # (in C, out of reach of the os.urandom patch); give them seeded entropy.
    s = _active
    if a is None and s is not None:
        a = s._entropy.getrandbits(128)
    _real_random_seed(self, a, version)


class _DateMeta(type):
    """Real dates stay instances of the patched ``datetime.date``.

    Only for the virtual class itself: a project's ``class Day(date)``,
    made inside a run, is a subclass like any other (a real date is no
    ``Day``), as it is outside the simulator.
    """

    def __instancecheck__(cls, obj: object) -> bool:
        if cls is VirtualDate:
            return isinstance(obj, _real_date)
        return type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        if cls is VirtualDate:
            return issubclass(sub, _real_date)
        return type.__subclasscheck__(cls, sub)


class _DatetimeMeta(_DateMeta):
    def __instancecheck__(cls, obj: object) -> bool:
        if cls is VirtualDatetime:
            return isinstance(obj, _real_datetime)
        return type.__instancecheck__(cls, obj)

    def __subclasscheck__(cls, sub: type) -> bool:
        if cls is VirtualDatetime:
            return issubclass(sub, _real_datetime)
        return type.__subclasscheck__(cls, sub)


class VirtualDate(_real_date, metaclass=_DateMeta):
    """``datetime.date`` whose ``today()`` is virtual inside a sandbox."""

    @classmethod
    def today(cls) -> Any:
        s = _active
        if s is None:
            return super().today()
        d = _real_datetime.fromtimestamp(s.wall_time(), _dt.timezone.utc)
        return cls(d.year, d.month, d.day)


class VirtualDatetime(_real_datetime, metaclass=_DatetimeMeta):
    """``datetime.datetime`` whose now/utcnow/today are virtual inside a sandbox."""

    @classmethod
    def now(cls, tz: _dt.tzinfo | None = None) -> Any:
        s = _active
        if s is None:
            return super().now(tz)
        utc = cls.fromtimestamp(s.wall_time(), _dt.timezone.utc)
        return utc.replace(tzinfo=None) if tz is None else utc.astimezone(tz)

    @classmethod
    def utcnow(cls) -> Any:
        s = _active
        if s is None:
            return super().utcnow()
        return cls.now(None)

    @classmethod
    def today(cls) -> Any:
        return cls.now(None)


_OUTSIDE = "run this code outside `detstream sim`"


def _fake_sleep(secs: float) -> None:
    """``time.sleep``: refused under a sandbox (0 is a no-op), the real one outside."""
    if _active is None:
        _real_sleep(secs)
    elif secs > 0:
        raise RealIOForbidden(
            f"time.sleep({secs!r})", "a blocking sleep of the event loop every simulated worker shares",
            "use `await asyncio.sleep(...)` (a blocked loop stalls a worker in production too)",
        )


def _forbid(call: str, what: str, hint: str = _OUTSIDE) -> Any:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise RealIOForbidden(call, what, hint)

    refused.__name__ = refused.__qualname__ = call.rsplit(".", 1)[-1].rstrip("()")
    return refused


def _forbid_net(call: str) -> Any:
    return _forbid(call, "real network I/O", DEFAULT_HINT)


_real_build_class = builtins.__build_class__
#: (a class's own metaclass, the virtual date metaclass) -> the metaclass deriving from both.
_COMBINED_METACLASSES: dict[tuple[type, type], type] = {}


def _build_class(func: Any, name: str, /, *bases: Any, **kwds: Any) -> Any:
    """``class`` statements inside a run: a date subclass may have a metaclass of its own.

    Outside the simulator ``class D(date, metaclass=M)`` is fine (``date``'s
    metaclass is ``type``). Inside, ``date`` is :class:`VirtualDate`, whose
    metaclass is not ``type``, and Python refuses two unrelated metaclasses
    (pydantic v1's constrained dates, which FastAPI imports lazily). Such a
    class gets a metaclass deriving from both: the other one first, so the
    class behaves as its library made it.
    """
    virtual = next((type(base) for base in bases if issubclass(type(base), _DateMeta)), None)
    if virtual is not None:
        own = kwds.get("metaclass")
        if not isinstance(own, type):
            own = next((type(base) for base in bases
                        if not issubclass(type(base), _DateMeta) and type(base) is not type), None)
        if own is not None and not issubclass(own, virtual) and not issubclass(virtual, own):
            kwds["metaclass"] = _combined_metaclass(own, virtual)
    return _real_build_class(func, name, *bases, **kwds)


def _combined_metaclass(own: type, virtual: type) -> type:
    key = (own, virtual)
    combined = _COMBINED_METACLASSES.get(key)
    if combined is None:
        combined = _COMBINED_METACLASSES[key] = type(own)(
            f"{own.__name__}WithVirtualDates", (own, virtual), {"__module__": own.__module__}
        )
    return combined


#: id(original) -> (original, stand-in): any global, class attribute or
#: default argument that *is* an original gets the stand-in.
_REPLACEMENTS: dict[int, tuple[Any, Any]] = {
    id(o): (o, f)
    for o, f in [
        (_real_time, _fake_time),
        (_real_time_ns, _fake_time_ns),
        (_real_monotonic, _fake_monotonic),
        (_real_monotonic_ns, _fake_monotonic_ns),
        (_real_perf_counter, _fake_perf_counter),
        (_real_perf_counter_ns, _fake_perf_counter_ns),
        (_real_sleep, _fake_sleep),
        (_real_datetime, VirtualDatetime),
        (_real_date, VirtualDate),
        (_real_uuid4, _fake_uuid4),
        (_real_urandom, _fake_urandom),
        (_real_create_connection, _forbid_net("socket.create_connection()")),
        (_real_getaddrinfo, _forbid_net("socket.getaddrinfo()")),
        (_real_system, _forbid("os.system()", "a real subprocess")),
        (_real_fork, _forbid("os.fork()", "a real process")),
    ]
    if o is not None
}

#: Attributes patched explicitly (the sources themselves), plus methods on
#: classes, which every subclass and copied reference sees through the class.
_EXPLICIT: list[tuple[Any, str, Any]] = [
    (time, "time", _fake_time),
    (time, "time_ns", _fake_time_ns),
    (time, "monotonic", _fake_monotonic),
    (time, "monotonic_ns", _fake_monotonic_ns),
    (time, "perf_counter", _fake_perf_counter),
    (time, "perf_counter_ns", _fake_perf_counter_ns),
    (time, "sleep", _fake_sleep),
    (_dt, "datetime", VirtualDatetime),
    (_dt, "date", VirtualDate),
    (random.Random, "seed", _fake_random_seed),
    (threading.Thread, "start", _forbid("threading.Thread.start()", "a real thread")),
    (socket.socket, "connect", _forbid_net("socket.socket.connect()")),
    (socket.socket, "connect_ex", _forbid_net("socket.socket.connect_ex()")),
    (socket.socket, "bind", _forbid_net("socket.socket.bind()")),
    (subprocess.Popen, "__init__", _forbid("subprocess.Popen()", "a real subprocess")),
    (builtins, "__build_class__", _build_class),
]

#: Modules never scanned: the sources (patched explicitly above), this module
#: (it must keep the originals), and stdlib code that waits on real time in a
#: loop (``queue.get(timeout=)``, ``Condition.wait``) and would spin forever
#: on a clock that stands still during a callback.
_SKIP_PREFIXES = (
    "time",
    "datetime",
    "_datetime",
    "_pydatetime",
    __name__,
    "threading",
    "queue",
    "multiprocessing",
    "concurrent",
    "selectors",
    "subprocess",
)

# -- patch sites -------------------------------------------------------------------------------

# A site is (kind, holder, key): "attr" holder.key / "dict" holder[key] /
# "defaults" holder.__defaults__[key] / "kwdefaults" holder.__kwdefaults__[key].
_Site = tuple[str, Any, Any]
_scanned: dict[str, tuple[types.ModuleType, list[_Site]]] = {}


def _skipped(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in _SKIP_PREFIXES)


def _function_sites(func: Any, out: list[_Site]) -> None:
    if type(func) in (staticmethod, classmethod):
        func = func.__func__
    if type(func) is not types.FunctionType:
        return
    for i, value in enumerate(func.__defaults__ or ()):
        if id(value) in _REPLACEMENTS:
            out.append(("defaults", func, i))
    for key, value in (func.__kwdefaults__ or {}).items():
        if id(value) in _REPLACEMENTS:
            out.append(("kwdefaults", func, key))


def _class_sites(cls: type, out: list[_Site]) -> None:
    for attr, member in list(vars(cls).items()):
        if id(member) in _REPLACEMENTS:
            out.append(("attr", cls, attr))
        else:
            _function_sites(member, out)


def _scan_module(name: str, mod: types.ModuleType) -> list[_Site]:
    """Every place in ``mod`` (globals, its classes, their functions) holding an original.

    Only ``type()`` is consulted before deciding to look inside a value, never
    ``isinstance``/attributes of arbitrary objects: lazy proxies in module
    globals must not be woken up by a scan.
    """
    sites: list[_Site] = []
    namespace = mod.__dict__
    for key, value in list(namespace.items()):
        if id(value) in _REPLACEMENTS:
            sites.append(("dict", namespace, key))
        elif type(value) is types.FunctionType:
            if value.__module__ == name:
                _function_sites(value, sites)
        elif issubclass(type(value), type):
            try:
                if value.__module__ == name:
                    _class_sites(value, sites)
            except Exception:  # an exotic metaclass; not worth failing a run over
                continue
    return sites


def _module_sites() -> list[_Site]:
    """Patch sites of all loaded modules; only modules not seen before are scanned."""
    sites: list[_Site] = []
    for name, mod in list(sys.modules.items()):
        if not isinstance(mod, types.ModuleType) or _skipped(name):
            continue
        cached = _scanned.get(name)
        if cached is None or cached[0] is not mod:
            cached = _scanned[name] = (mod, _scan_module(name, mod))
        sites.extend(cached[1])
    return sites


_MISSING = object()


def _get(kind: str, holder: Any, key: Any) -> Any:
    if kind == "attr":
        return (
            holder.__dict__.get(key, _MISSING)
            if isinstance(holder, type)
            else getattr(holder, key, _MISSING)
        )
    if kind == "dict":
        return holder.get(key, _MISSING)
    if kind == "defaults":
        d = holder.__defaults__ or ()
        return d[key] if key < len(d) else _MISSING
    return (holder.__kwdefaults__ or {}).get(key, _MISSING)


def _set(kind: str, holder: Any, key: Any, value: Any) -> None:
    if kind == "attr":
        if value is _MISSING:
            delattr(holder, key)
        else:
            setattr(holder, key, value)
    elif kind == "dict":
        holder[key] = value
    elif kind == "defaults":
        d = holder.__defaults__
        holder.__defaults__ = d[:key] + (value,) + d[key + 1 :]
    else:
        holder.__kwdefaults__[key] = value




class Sandbox:
    """Context manager that virtualises time, seeds randomness and forbids real I/O.

    One per simulation run; not reentrant (the patches are process-wide).
    ``sandbox.random`` is a ``random.Random(seed)`` of the runner's own,
    independent of the global ``random`` that app code may consume.
    """

    def __init__(
        self, loop: VirtualEventLoop, seed: int, *, epoch: float = EPOCH
    ) -> None:
        self.loop = loop
        self.seed = seed
        self.epoch = float(epoch)
        streams = SeedStreams(seed)
        self.random = streams.app()
        # uuid4/urandom/unseeded Random() draw from here: a stream derived from
        # the seed but separate from both self.random and the global random.
        self._entropy = streams.entropy()
        self._undo: list[tuple[str, Any, Any, Any, Any]] = []
        self._random_state: Any = None

    @staticmethod
    def active() -> Sandbox | None:
        """The sandbox currently entered, if any."""
        return _active

    def wall_time(self) -> float:
        """Virtual seconds since the Unix epoch."""
        return self.epoch + self.loop._now  # (``loop.time()``, without its call: per record sent)

    def wall_time_ns(self) -> int:
        """Virtual nanoseconds since the Unix epoch."""
        return round(self.epoch * 1e9) + round(self.loop.time() * 1e9)

    def __enter__(self) -> Sandbox:
        global _active
        if _active is not None:
            raise SimulationError(
                "a Sandbox is already active: sandboxes patch the whole process "
                "and cannot be nested or run side by side"
            )
        _active = self
        try:
            self._random_state = random.getstate()
            random.seed(self.seed)
            for holder, key, fake in _EXPLICIT:
                self._patch("attr", holder, key, fake)
            for kind, holder, key in _module_sites():
                current = _get(kind, holder, key)
                entry = _REPLACEMENTS.get(id(current))
                if entry is not None and entry[0] is current:
                    self._patch(kind, holder, key, entry[1])
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._restore()

    def patch(self, holder: Any, name: str, fake: Any) -> None:
        """Replace ``holder.name`` with ``fake`` until the sandbox exits (for what the
        generic scan cannot see, e.g. a clock read inside a C extension)."""
        self._patch("attr", holder, name, fake)

    def _patch(self, kind: str, holder: Any, key: Any, fake: Any) -> None:
        original = _get(kind, holder, key)
        if original is fake:
            return
        if (
            kind == "attr"
            and isinstance(holder, type)
            and type(fake) is types.FunctionType
            and original is not _MISSING
            and type(original) is not types.FunctionType
        ):
            # ``class C: clock = time.monotonic`` - a builtin does not bind to
            # instances, a Python function would: keep ``self.clock()`` working.
            fake = staticmethod(fake)
        try:
            _set(kind, holder, key, fake)
        except (TypeError, AttributeError):
            return  # immutable holder (a C type): nothing we can patch there
        self._undo.append((kind, holder, key, original, fake))

    def _restore(self) -> None:
        global _active
        try:
            while self._undo:
                kind, holder, key, original, fake = self._undo.pop()
                if _get(kind, holder, key) is fake:  # leave others' later changes alone
                    _set(kind, holder, key, original)
            if self._random_state is not None:
                random.setstate(self._random_state)
                self._random_state = None
        finally:
            if _active is self:
                _active = None
