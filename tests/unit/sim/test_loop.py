"""VirtualEventLoop: virtual clock, FIFO timers, deadlock reports, refused I/O, shuffle."""

from __future__ import annotations

import asyncio
import gc
import inspect
import random
import time

import mode
import pytest

from sim.errors import Deadlock, RealIOForbidden, SimulationError
from sim.loop import REFUSED_METHODS, VirtualEventLoop, run
from sim.sandbox import Sandbox

BRIEF_REFUSED = """
run_in_executor set_default_executor getaddrinfo getnameinfo create_connection create_server
create_unix_connection create_unix_server create_datagram_endpoint connect_accepted_socket
connect_read_pipe connect_write_pipe subprocess_exec subprocess_shell add_reader add_writer
remove_reader remove_writer sock_recv sock_recv_into sock_sendall sock_connect sock_accept
sock_sendfile sendfile start_tls add_signal_handler remove_signal_handler
""".split()


@pytest.fixture
def loop():
    loop = VirtualEventLoop()
    yield loop
    if not loop.is_closed():
        tasks = loop.pending_tasks()
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()


def test_an_hour_of_one_second_ticks_is_exact_and_fast() -> None:
    async def main() -> tuple[int, float]:
        ticks = 0
        for _ in range(3600):
            await asyncio.sleep(1)
            ticks += 1
        return ticks, asyncio.get_running_loop().time()

    wall_start = time.perf_counter()  # noqa: TID251 - measuring real time on purpose
    ticks, now = run(main())
    wall = time.perf_counter() - wall_start  # noqa: TID251
    assert (ticks, now) == (3600, 3600.0)
    assert wall < 10.0, "the virtual loop must not sleep for real"


def test_clock_starts_at_start_and_only_moves_to_timers() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = [loop.time()]
        await asyncio.sleep(0)
        seen.append(loop.time())
        await asyncio.sleep(2.5)
        seen.append(loop.time())
        return seen

    assert run(main(), start=100.0) == [100.0, 100.0, 102.5]


def test_call_later_runs_in_time_order_and_equal_times_fifo(loop) -> None:
    fired: list[tuple[str, float]] = []

    def note(label: str) -> None:
        fired.append((label, loop.time()))

    loop.call_later(3, note, "c")
    loop.call_later(1, note, "a")
    loop.call_at(2, note, "b")
    # Many equal deadlines: plain asyncio's heap would not keep these in order.
    for i in range(20):
        loop.call_later(5, note, f"eq{i}")
    done = loop.create_future()
    loop.call_later(6, done.set_result, None)
    loop.run_until_complete(done)

    assert fired[:3] == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert fired[3:] == [(f"eq{i}", 5.0) for i in range(20)]


def test_cancelled_timer_does_not_fire(loop) -> None:
    fired: list[str] = []
    handle = loop.call_later(1, fired.append, "cancelled")
    loop.call_later(2, fired.append, "kept")
    handle.cancel()
    loop.run_until_complete(asyncio.sleep(3))
    assert fired == ["kept"]
    assert loop.time() == 3.0


def test_wait_for_and_timeout_fire_at_the_right_virtual_time() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        seen = []
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), timeout=2.5)
        seen.append(loop.time())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.75):
                await asyncio.sleep(10)
        seen.append(loop.time())
        return seen

    assert run(main(), start=10.0) == [12.5, 13.25]


def test_queue_gather_create_task_work() -> None:
    async def main() -> tuple[list[int], list[str], float]:
        queue: asyncio.Queue[int | None] = asyncio.Queue(maxsize=2)
        got: list[int] = []

        async def producer() -> str:
            for i in range(5):
                await queue.put(i)
                await asyncio.sleep(0.5)
            await queue.put(None)
            return "produced"

        async def consumer() -> str:
            while (item := await queue.get()) is not None:
                got.append(item)
            return "consumed"

        results = await asyncio.gather(
            asyncio.create_task(producer()), asyncio.create_task(consumer())
        )
        return got, results, asyncio.get_running_loop().time()

    assert run(main()) == ([0, 1, 2, 3, 4], ["produced", "consumed"], 2.5)


def test_huge_sleep_is_clamped_by_asyncio_but_lands_exactly() -> None:
    # asyncio caps one select() at MAXIMUM_SELECT_TIMEOUT (one day).
    async def main() -> float:
        await asyncio.sleep(3 * 86400 + 0.25)
        return asyncio.get_running_loop().time()

    assert run(main()) == 3 * 86400 + 0.25


class _CappedLoop(VirtualEventLoop):
    """Fails instead of spinning forever, for the test that guards against it."""

    iterations = 0

    def _run_once(self) -> None:
        self.iterations += 1
        if self.iterations > 1000:
            raise AssertionError("loop spins without firing a due timer")
        super()._run_once()


def test_timer_due_now_fires_even_when_the_clock_is_huge() -> None:
    # At 1e12 s, now + 1 ns == now: asyncio's own "is it due" test fails.
    loop = _CappedLoop(start=1e12)
    try:
        fut = loop.create_future()
        loop.call_at(loop.time(), fut.set_result, "fired")
        assert loop.run_until_complete(fut) == "fired"
        loop.run_until_complete(asyncio.sleep(1.5))
        assert loop.time() == 1e12 + 1.5
    finally:
        loop.close()


async def _stuck_helper(event: asyncio.Event, where: list[int]) -> None:
    where.append(inspect.currentframe().f_lineno + 1)
    await event.wait()


async def _stuck_main(event: asyncio.Event, where: list[int]) -> None:
    where.append(inspect.currentframe().f_lineno + 1)
    await _stuck_helper(event, where)


def test_deadlock_names_the_stuck_task_and_its_line(loop) -> None:
    event = asyncio.Event()
    where: list[int] = []
    task = loop.create_task(_stuck_main(event, where), name="stuck-waiter")
    with pytest.raises(Deadlock) as info:
        loop.run_until_complete(task)
    message = str(info.value)
    assert "nothing is runnable and no timer is scheduled" in message
    assert len(info.value.tasks) == 1
    report = info.value.tasks[0]
    assert report in message
    assert "'stuck-waiter'" in report
    assert "_stuck_main()" in report
    assert f"{__file__}:{where[0]}" in report
    assert f"_stuck_helper() at {__file__}:{where[1]}" in report
    assert isinstance(info.value, SimulationError)

    # The loop is still usable for cleanup, and closable.
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()
    assert loop.is_closed()


def test_deadlock_on_a_bare_event_wait(loop) -> None:
    with pytest.raises(Deadlock) as info:
        loop.run_until_complete(asyncio.Event().wait())
    assert "Event.wait()" in str(info.value)
    assert "'Task-1'" in str(info.value)


def test_deadlock_lists_every_task_in_creation_order_and_never_hangs(loop) -> None:
    loop.call_later(5, lambda: None).cancel()  # a cancelled timer is not a timer
    for name in ("zeta", "alpha", "mid"):
        loop.create_task(asyncio.Event().wait(), name=name)
    with pytest.raises(Deadlock) as info:
        loop.run_until_complete(loop.create_future())
    names = [t.split("'")[1] for t in info.value.tasks]
    assert names == ["zeta", "alpha", "mid"]


def test_run_reports_deadlock_and_cleans_up() -> None:
    async def main() -> None:
        await asyncio.Event().wait()

    with pytest.raises(Deadlock, match="main"):
        run(main())
    assert asyncio._get_running_loop() is None


def test_run_cancels_leftovers_in_creation_order_and_unsets_loop() -> None:
    cancelled: list[str] = []
    seen_loop: list[asyncio.AbstractEventLoop] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def main() -> str:
        seen_loop.append(asyncio.get_running_loop())
        for name in ("c", "a", "b", "d"):
            asyncio.create_task(forever(name))
        await asyncio.sleep(1)
        return "done"

    assert run(main()) == "done"
    assert cancelled == ["c", "a", "b", "d"]
    assert seen_loop[0].is_closed()
    with pytest.raises(RuntimeError):
        asyncio.get_running_loop()


def test_default_task_names_count_per_loop() -> None:
    async def main() -> list[str]:
        inner = asyncio.create_task(asyncio.sleep(0))
        await inner
        return [asyncio.current_task().get_name(), inner.get_name()]

    assert run(main()) == run(main()) == ["Task-1", "Task-2"]


@pytest.mark.parametrize("name", sorted(REFUSED_METHODS))
def test_refused_methods_raise_naming_the_method(loop, name: str) -> None:
    with pytest.raises(RealIOForbidden) as info:
        getattr(loop, name)(None, None)
    assert f"loop.{name}()" in str(info.value)
    assert info.value.call == f"loop.{name}()"
    assert "deterministically" in str(info.value)


def test_refused_methods_cover_the_brief_and_exist_on_this_python() -> None:
    assert set(BRIEF_REFUSED) <= set(REFUSED_METHODS)
    for name in REFUSED_METHODS:
        assert hasattr(asyncio.AbstractEventLoop, name), name
        assert getattr(VirtualEventLoop, name) is not getattr(asyncio.BaseEventLoop, name)


def test_refused_async_method_raises_at_call_time_inside_a_task() -> None:
    async def main() -> None:
        await asyncio.get_running_loop().create_connection(asyncio.Protocol, "localhost", 9092)

    with pytest.raises(RealIOForbidden, match=r"loop\.create_connection\(\)"):
        run(main())


def _interleaving(shuffle: random.Random | None) -> list[int]:
    order: list[int] = []

    async def worker(i: int) -> None:
        await asyncio.sleep(0)
        order.append(i)
        await asyncio.sleep(1)  # equal-time timers are permuted too
        order.append(100 + i)

    async def main() -> None:
        await asyncio.gather(*(worker(i) for i in range(8)))

    run(main(), shuffle=shuffle)
    return order


def test_without_shuffle_order_is_fifo() -> None:
    assert _interleaving(None) == list(range(8)) + [100 + i for i in range(8)]


def test_shuffle_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    first = _interleaving(random.Random(7))
    assert first == _interleaving(random.Random(7))
    assert sorted(first) == sorted(_interleaving(None))
    others = [_interleaving(random.Random(seed)) for seed in range(8, 16)]
    assert any(other != first for other in others)
    assert any(o != _interleaving(None) for o in [first, *others])


class _Ticker(mode.Service):
    def __init__(self) -> None:
        super().__init__()
        self.ticks: list[float] = []

    @mode.Service.timer(1.0)
    async def _tick(self) -> None:
        self.ticks.append(asyncio.get_running_loop().time())


def _run_ticker(seed: int) -> list[float]:
    loop = VirtualEventLoop()
    asyncio.set_event_loop(loop)
    try:

        async def main() -> list[float]:
            service = _Ticker()
            await service.start()
            await asyncio.sleep(10)
            await service.stop()
            return service.ticks

        with Sandbox(loop, seed):
            return loop.run_until_complete(main())
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_mode_service_timer_ticks_on_virtual_time() -> None:
    first = _run_ticker(1)
    assert first == _run_ticker(1)
    # mode's Timer reads its clock (perf_counter, patched by the sandbox):
    # on virtual time it sees no drift and ticks exactly every second.  The
    # tick due at 10.0 loses the tie to main's sleep(10), scheduled earlier.
    assert first == [float(s) for s in range(1, 10)]


def test_waiting_until_a_deadline_never_spins_on_float_residue():
    """A timer fired within the clock resolution moves the clock to its deadline.

    Regression: with other timers interleaved (here 2.8 s and 3 s periods, as a
    commit loop and heartbeats have), ``deadline - loop.time()`` was left at
    ~1e-14 after a wait; the timer for that remainder fired without moving the
    clock and a "fetch until deadline" loop spun forever at one instant.
    """
    from sim.loop import run

    async def ticker(period):
        while True:
            await asyncio.sleep(period)

    async def main():
        loop = asyncio.get_running_loop()
        tickers = [asyncio.ensure_future(ticker(p)) for p in (2.8, 3.0)]
        never = asyncio.Event()
        spins = 0
        while loop.time() < 120:
            deadline = loop.time() + 1.0
            while (remaining := deadline - loop.time()) > 0:
                spins += 1
                assert spins < 1000, f"spinning at {loop.time()!r}, remaining={remaining!r}"
                try:
                    await asyncio.wait_for(never.wait(), min(remaining, 3.0))
                except asyncio.TimeoutError:
                    pass
        for t in tickers:
            t.cancel()
        return spins

    assert run(main()) <= 130


def test_tasks_inherit_their_owner_and_can_be_found():
    from sim.loop import run, task_owner

    async def child():
        await asyncio.sleep(100)

    async def worker():
        asyncio.ensure_future(child())
        await asyncio.sleep(100)

    async def main():
        loop = asyncio.get_running_loop()
        token = task_owner.set("w1")
        w1 = asyncio.ensure_future(worker())
        task_owner.reset(token)
        other = asyncio.ensure_future(worker())
        await asyncio.sleep(1)
        owned = loop.tasks_owned_by("w1")
        result = (len(owned), w1 in owned, other in owned)
        for task in owned:
            task.cancel()
        other.cancel()
        return result

    assert run(main()) == (2, True, False)


def test_a_big_heap_of_timers_with_ties_and_cancellations_fires_in_time_then_fifo_order(loop) -> None:
    # The heap compares handles with _TimerHandle.__lt__ on every push and pop; many
    # ties and enough cancellations to make asyncio rebuild the heap exercise it all.
    rng = random.Random(7)
    fired: list[int] = []
    expected: list[tuple[float, int]] = []
    for seq in range(2000):
        when = float(rng.randrange(50))
        handle = loop.call_at(when, fired.append, seq)
        if rng.random() < 0.6:
            handle.cancel()
        else:
            expected.append((when, seq))
    loop.run_until_complete(asyncio.sleep(60))
    assert fired == [seq for _, seq in sorted(expected)]


def test_iteration_hook_runs_every_n_iterations_and_can_be_removed() -> None:
    seen: list[int] = []

    async def main() -> int:
        loop = asyncio.get_running_loop()
        loop.call_every_iterations(3, seen.append)
        for _ in range(10):
            await asyncio.sleep(0)
        loop.call_every_iterations(1, None)
        for _ in range(5):
            await asyncio.sleep(0)
        return loop.iterations

    assert run(main()) > 15
    assert len(seen) == 3, "every third of the ten iterations, then none"
    assert seen == [seen[0], seen[0] + 3, seen[0] + 6]
    with pytest.raises(ValueError):
        VirtualEventLoop().call_every_iterations(0, seen.append)


# -- the garbage collection policy of a run (sim.gc_policy) --------------------------


class _Cycle:
    """Garbage only the cyclic collector frees; notes the loop iteration it was freed at."""

    def __init__(self, freed: list[int]) -> None:
        self.me = self
        self.freed = freed

    def __del__(self) -> None:
        loop = asyncio.get_event_loop_policy().get_event_loop()
        self.freed.append(loop.iterations)


def _drop_cycles_during_a_run(freed: list[int], young_every: int) -> list[tuple[int, int]]:
    from sim.gc_policy import SimGcPolicy

    async def main() -> None:
        assert not gc.isenabled()
        for _ in range(5):
            _Cycle(freed)
            for _ in range(young_every):
                await asyncio.sleep(0)

    loop = VirtualEventLoop()
    with SimGcPolicy(young_every=young_every, full_at=young_every * 4) as policy:
        policy.attach(loop)
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return policy.collections


def test_gc_policy_collects_cycles_at_loop_iterations_whatever_the_heap() -> None:
    first: list[int] = []
    collections = _drop_cycles_during_a_run(first, young_every=16)
    assert len(first) == 5, "every cycle is freed during the run"
    assert all(iteration % 16 == 0 for iteration in first)
    assert collections[:5] == [(16, 1), (32, 1), (48, 1), (64, 2), (80, 1)]  # full at 4x, then 8x
    # Another run with a different amount of garbage made before it: automatic
    # collection would fire at other points; the policy's do not move.
    ballast = [[i] for i in range(50_000)]
    second: list[int] = []
    _drop_cycles_during_a_run(second, young_every=16)
    del ballast
    assert second == first


def test_gc_policy_restores_the_collector_as_it_found_it() -> None:
    from sim.testing import run_sandboxed

    async def main() -> bool:
        await asyncio.sleep(1)
        return gc.isenabled()

    was_enabled = gc.isenabled()
    thresholds = gc.get_threshold()
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            assert run_sandboxed(main, seed=1) is False
            assert gc.isenabled() is enabled
            assert gc.get_freeze_count() == 0
            assert gc.get_threshold() == thresholds
    finally:
        (gc.enable if was_enabled else gc.disable)()


def test_gc_policy_leaves_a_callers_freeze_alone() -> None:
    from sim.testing import run_sandboxed

    async def main() -> None:
        await asyncio.sleep(1)

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        run_sandboxed(main, seed=1)
        assert gc.get_freeze_count() > frozen // 2  # still frozen (a few frozen objects may die)
    finally:
        gc.unfreeze()


def test_futures_and_tasks_can_hash_by_creation_order():
    """Sets of them then iterate alike in every process (``hash_by_creation_order``)."""
    from sim.loop import run as run_virtual

    async def main():
        loop = asyncio.get_running_loop()
        loop.hash_by_creation_order()
        futures = [loop.create_future() for _ in range(3)]
        task = asyncio.ensure_future(asyncio.sleep(0))
        await task
        return [hash(f) for f in futures], hash(task)

    hashes, task_hash = run_virtual(main())
    assert hashes == [1, 2, 3] and task_hash == 4


def test_a_callback_that_raises_is_reported_to_the_exception_handler_and_the_loop_runs_on():
    """As asyncio's ``Handle._run``: a done callback that raises (aiokafka's accumulator does, for
    a batch retried and then failed) is logged, not the end of the run."""
    reported: list[dict] = []

    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: reported.append(context))
        ran: list[str] = []

        def fails() -> None:
            raise KeyError("batch")

        loop.call_soon(fails)
        loop.call_soon(ran.append, "after")
        await asyncio.sleep(1.0)
        return ran

    assert run(main()) == ["after"]
    assert [type(c["exception"]) for c in reported] == [KeyError]
    assert reported[0]["message"].startswith("Exception in callback ")
    assert "fails" in reported[0]["message"]
