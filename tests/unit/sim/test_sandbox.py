"""Sandbox: virtual clocks, seeded randomness, refused real I/O, exact restore."""

from __future__ import annotations

import asyncio
import datetime
import os
import random
import socket
import subprocess
import sys
import threading
import time
import types
import uuid
from datetime import datetime as imported_datetime
from pathlib import Path
from time import perf_counter, sleep  # noqa: TID251 - the sandbox must patch this very reference

import mode.services
import mode.timers
import pytest

import sim.sandbox
from sim.errors import RealIOForbidden, SimulationError
from sim.loop import VirtualEventLoop
from sim.sandbox import Sandbox

EPOCH = 1_700_000_000.0
REAL = {
    "time": time.time,  # noqa: TID251
    "monotonic": time.monotonic,  # noqa: TID251
    "perf_counter": time.perf_counter,  # noqa: TID251
    "datetime": datetime.datetime,
    "date": datetime.date,
    "uuid4": uuid.uuid4,  # noqa: TID251
    "urandom": os.urandom,
    "thread_start": threading.Thread.start,
    "popen_init": subprocess.Popen.__init__,
    "create_connection": socket.create_connection,
    "system": os.system,
    "fork": getattr(os, "fork", None),
}


class ClockHolder:
    """A class attribute holding a builtin clock: must stay callable on instances."""

    clock = time.monotonic  # noqa: TID251


@pytest.fixture
def loop():
    loop = VirtualEventLoop()
    yield loop
    loop.close()


def _advance(loop: VirtualEventLoop, seconds: float) -> None:
    loop.run_until_complete(asyncio.sleep(seconds))


def _assert_all_restored() -> None:
    assert time.time is REAL["time"]  # noqa: TID251
    assert time.monotonic is REAL["monotonic"]  # noqa: TID251
    assert time.perf_counter is REAL["perf_counter"]  # noqa: TID251
    assert datetime.datetime is REAL["datetime"]
    assert datetime.date is REAL["date"]
    assert uuid.uuid4 is REAL["uuid4"]  # noqa: TID251
    assert os.urandom is REAL["urandom"]
    assert threading.Thread.start is REAL["thread_start"]
    assert subprocess.Popen.__init__ is REAL["popen_init"]
    assert socket.create_connection is REAL["create_connection"]
    assert os.system is REAL["system"]
    assert "connect" not in vars(socket.socket)
    assert "bind" not in vars(socket.socket)
    assert perf_counter is REAL["perf_counter"]
    assert imported_datetime is REAL["datetime"]
    assert sim.sandbox.Sandbox.active() is None


def test_clocks_are_virtual_inside_and_real_outside(loop) -> None:
    with Sandbox(loop, 1):
        _advance(loop, 5)
        assert time.time() == EPOCH + 5  # noqa: TID251
        assert time.time_ns() == int(EPOCH * 1e9) + 5_000_000_000
        assert time.monotonic() == 5.0  # noqa: TID251
        assert time.perf_counter() == 5.0  # noqa: TID251
        assert time.monotonic_ns() == time.perf_counter_ns() == 5_000_000_000
        expected = REAL["datetime"].fromtimestamp(EPOCH + 5, datetime.timezone.utc)
        assert datetime.datetime.now() == expected.replace(tzinfo=None)
        assert datetime.datetime.utcnow() == expected.replace(tzinfo=None)
        assert datetime.datetime.today() == expected.replace(tzinfo=None)
        assert datetime.datetime.now(datetime.timezone.utc) == expected
        assert datetime.date.today() == expected.date()
    _assert_all_restored()
    assert time.time() != EPOCH + 5  # noqa: TID251
    assert abs(datetime.datetime.now().timestamp() - time.time()) < 60  # noqa: TID251


def test_custom_epoch(loop) -> None:
    with Sandbox(loop, 1, epoch=0.0):
        _advance(loop, 2)
        assert time.time() == 2.0  # noqa: TID251
        assert datetime.datetime.utcnow() == REAL["datetime"](1970, 1, 1, 0, 0, 2)


def test_virtual_datetimes_stay_usable_like_real_ones(loop) -> None:
    real_dt = REAL["datetime"](2020, 5, 17, 12, 0)
    real_d = REAL["date"](2020, 5, 17)
    with Sandbox(loop, 1):
        now = datetime.datetime.now()
        built = datetime.datetime(2021, 1, 2, 3, 4, 5)
        for value in (now, built, real_dt):
            assert isinstance(value, datetime.datetime)
            assert isinstance(value, datetime.date)
            assert isinstance(value, REAL["datetime"])
        assert isinstance(real_d, datetime.date)
        assert not isinstance(real_d, datetime.datetime)
        assert issubclass(REAL["datetime"], datetime.datetime)
        assert built - real_dt == REAL["datetime"](2021, 1, 2, 3, 4, 5) - real_dt
        assert real_dt + (built - real_dt) == built
        assert built.isoformat() == "2021-01-02T03:04:05"
        assert datetime.datetime.fromisoformat("2021-01-02T03:04:05") == built
        assert imported_datetime.now() == now
    assert isinstance(now, datetime.datetime)  # still a real datetime afterwards


def test_copied_references_and_defaults_are_patched_and_restored(loop) -> None:
    timer_init_kw = mode.timers.Timer.__init__.__kwdefaults__
    itertimer_kw = mode.services.Service.itertimer.__kwdefaults__
    with Sandbox(loop, 1):
        _advance(loop, 3)
        assert perf_counter() == 3.0
        assert imported_datetime.now() == datetime.datetime.now()
        assert mode.timers.perf_counter() == 3.0
        assert mode.services.perf_counter() == 3.0
        assert timer_init_kw["clock"]() == 3.0
        assert itertimer_kw["clock"]() == 3.0
        assert mode.timers.timer_intervals.__defaults__[-1]() == 3.0
        assert mode.timers.Timer(1.0).clock() == 3.0
        assert ClockHolder().clock() == ClockHolder.clock() == 3.0
    _assert_all_restored()
    assert timer_init_kw["clock"] is REAL["perf_counter"]
    assert itertimer_kw["clock"] is REAL["perf_counter"]
    assert mode.timers.timer_intervals.__defaults__[-1] is REAL["perf_counter"]
    assert mode.timers.perf_counter is REAL["perf_counter"]
    assert mode.services.monotonic is REAL["monotonic"]
    assert vars(ClockHolder)["clock"] is REAL["monotonic"]


def test_restored_on_exception(loop) -> None:
    with pytest.raises(ZeroDivisionError), Sandbox(loop, 1):
        assert perf_counter() == 0.0
        1 / 0  # noqa: B018
    _assert_all_restored()


def test_scans_are_cached_and_new_modules_are_scanned(loop) -> None:
    with Sandbox(loop, 1):
        pass
    cached = sim.sandbox._scanned[__name__]
    fresh = types.ModuleType("sandbox_test_fresh_module")
    exec("from time import monotonic\ndef f(clock=monotonic):\n    return clock()\n", vars(fresh))
    sys.modules[fresh.__name__] = fresh
    try:
        with Sandbox(loop, 1):
            _advance(loop, 4)
            assert fresh.monotonic() == loop.time()
            assert fresh.f() == loop.time()
        assert sim.sandbox._scanned[__name__] is cached
        assert fresh.monotonic is REAL["monotonic"]
        assert fresh.f.__defaults__[0] is REAL["monotonic"]
    finally:
        del sys.modules[fresh.__name__]


def test_references_taken_inside_fall_back_to_real_clocks_outside(loop) -> None:
    with Sandbox(loop, 1):
        _advance(loop, 1)
        escaped = time.perf_counter  # noqa: TID251
        assert escaped() == 1.0
    assert escaped is not REAL["perf_counter"]
    assert abs(escaped() - time.perf_counter()) < 60  # noqa: TID251


def _draws(seed: int) -> tuple[list[float], list[uuid.UUID], bytes, float]:
    loop = VirtualEventLoop()
    try:
        with Sandbox(loop, seed) as sandbox:
            floats = [random.random() for _ in range(3)]
            uuids = [uuid.uuid4() for _ in range(3)]  # noqa: TID251
            noise = os.urandom(16)
            unseeded = random.Random().random()
            assert sandbox.random.random() == random.Random(seed).random()
        return floats, uuids, noise, unseeded
    finally:
        loop.close()


def test_same_seed_same_randomness_different_seed_different() -> None:
    first = _draws(42)
    assert first == _draws(42)
    other = _draws(43)
    for a, b in zip(first, other, strict=True):
        assert a != b
    assert all(u.version == 4 for u in first[1])
    assert first[0][0] == random.Random(42).random()  # the global random was seeded


def test_global_random_state_is_restored() -> None:
    random.seed(1234)
    state = random.getstate()
    expected = random.random()
    random.setstate(state)
    _draws(7)
    assert random.getstate() == state
    assert random.random() == expected
    _assert_all_restored()


def test_outside_randomness_is_not_seeded() -> None:
    _draws(1)
    assert uuid.uuid4() != uuid.uuid4()  # noqa: TID251
    assert os.urandom(16) != os.urandom(16)


def test_real_io_is_refused_naming_the_call(loop) -> None:
    with Sandbox(loop, 1):
        cases = [
            ("threading.Thread.start()", lambda: threading.Thread(target=print).start()),
            (
                "socket.create_connection()",
                lambda: socket.create_connection(("127.0.0.1", 9), timeout=0.01),
            ),
            ("socket.getaddrinfo()", lambda: socket.getaddrinfo("localhost", 9092)),
            ("subprocess.Popen()", lambda: subprocess.run(["true"], check=False)),
            ("os.system()", lambda: os.system("true")),
        ]
        for call, action in cases:
            with pytest.raises(RealIOForbidden) as info:
                action()
            assert info.value.call == call
            assert call in str(info.value)
        with socket.socket() as sock:
            for method, args in [("connect", ("127.0.0.1", 9)), ("connect_ex", ("127.0.0.1", 9))]:
                with pytest.raises(RealIOForbidden, match=rf"socket\.socket\.{method}\(\)"):
                    getattr(sock, method)(args)
            with pytest.raises(RealIOForbidden, match=r"socket\.socket\.bind\(\)"):
                sock.bind(("127.0.0.1", 0))
        if REAL["fork"] is not None:
            assert os.fork is not REAL["fork"]  # only then is it safe to call
            with pytest.raises(RealIOForbidden, match=r"os\.fork\(\)"):
                os.fork()
        with open(os.devnull, "rb") as f:  # file I/O stays allowed
            assert f.read() == b""
    _assert_all_restored()


def test_a_blocking_sleep_is_refused_and_sleep_zero_is_not(loop) -> None:
    """``time.sleep`` would block the loop every simulated worker shares, for real time."""
    real_sleep = time.sleep
    with Sandbox(loop, 1):
        with pytest.raises(RealIOForbidden, match=r"time\.sleep\(3600\).*asyncio\.sleep") as info:
            time.sleep(3600)
        assert info.value.call == "time.sleep(3600)"
        with pytest.raises(RealIOForbidden):
            sleep(0.5)  # a reference copied at import is swapped too
        time.sleep(0)
    assert time.sleep is real_sleep and sleep is real_sleep
    _assert_all_restored()


def test_nested_sandbox_refused(loop) -> None:
    with Sandbox(loop, 1) as outer:
        with pytest.raises(SimulationError, match="already active"), Sandbox(loop, 2):
            pass
        with pytest.raises(SimulationError), outer:
            pass
        assert Sandbox.active() is outer
        assert perf_counter() == loop.time()
    _assert_all_restored()


DATE_WITH_ITS_OWN_METACLASS = '''
import abc
import datetime

import detstream


class Meta(type):
    pass


class Day(datetime.date, metaclass=Meta):
    pass


class Stamp(datetime.datetime, abc.ABC):  # a metaclass of its own through a base
    pass


app = detstream.App("own-metaclass-dates", broker="kafka://localhost:9092")


def sim_scenario(sim):
    @sim.check
    def dates_behave_as_outside(result):
        day, real_day = Day(2020, 5, 17), datetime.date(2020, 5, 17)
        assert isinstance(Day, Meta) and isinstance(day, datetime.date)
        assert isinstance(day, Day) and not isinstance(real_day, Day)
        assert not issubclass(datetime.date, Day) and issubclass(Day, datetime.date)
        assert isinstance(Stamp(2020, 5, 17), datetime.datetime)
        assert not isinstance(datetime.datetime(2020, 5, 17), Stamp)
'''


def test_a_date_subclass_with_its_own_metaclass_is_made_and_behaves_as_outside(tmp_path):
    """Inside a run the date classes are the sandbox's, whose metaclass is not ``type``: a
    subclass with a metaclass of its own gets one deriving from both, and a real date is
    no instance of a project's subclass (only of the patched ``date`` itself)."""
    from sim.runner import SimOptions, run

    target = tmp_path / "own_metaclass_dates.py"
    target.write_text(DATE_WITH_ITS_OWN_METACLASS)
    report = run(str(target), SimOptions(seed=1, duration=1.0, faults="none"))
    assert report.ok, report.violations


def test_pydantic_v1_dates_can_be_defined_by_a_simulated_project(tmp_path):
    """FastAPI imports pydantic.v1 lazily: its constrained dates are made inside the run.

    In a fresh process: in this one pydantic.v1 may be imported already, and
    the test would pass without the sandbox doing anything.
    """
    pytest.importorskip("pydantic.v1")
    target = tmp_path / "uses_pydantic_v1.py"
    target.write_text(
        "import pydantic.v1\nimport detstream\n"
        "app = detstream.App('pydantic-v1-dates', broker='kafka://localhost:9092')\n"
    )
    script = (
        "import sys\n"
        "from sim.runner import SimOptions, run\n"
        "assert 'pydantic.v1' not in sys.modules\n"
        f"assert run({str(target)!r}, SimOptions(seed=1, duration=1.0, faults='none')).ok\n"
    )
    repo = str(Path(__file__).resolve().parents[3])
    result = subprocess.run([sys.executable, "-c", script], cwd=repo, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": repo})
    assert result.returncode == 0, result.stderr[-2000:]
