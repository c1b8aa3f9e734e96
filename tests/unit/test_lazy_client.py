"""One client per LazyClient, however many callers ask at once; a stop leaves none running."""

from __future__ import annotations

import asyncio

import pytest

from detstream.transport.kafka.lazy_client import LazyClient
from sim.loop import run


class _Starts:
    """A client factory that takes ``seconds`` of virtual time and counts its starts."""

    def __init__(self, seconds: float = 1.0, fail_first: bool = False) -> None:
        self.seconds = seconds
        self.fail_first = fail_first
        self.started: list[object] = []
        self.closed_unfinished = 0

    async def __call__(self) -> object:
        try:
            await asyncio.sleep(self.seconds)
        except asyncio.CancelledError:
            self.closed_unfinished += 1  # start_client closes the client it was starting
            raise
        if self.fail_first and not self.started:
            self.started.append(None)
            raise ConnectionError("refused")
        client = object()
        self.started.append(client)
        return client


def test_callers_arriving_together_share_one_start() -> None:
    async def main() -> tuple[int, bool]:
        starts = _Starts()
        lazy = LazyClient(starts)
        first, second = await asyncio.gather(lazy.get(), lazy.get())
        third = await lazy.get()
        return len(starts.started), first is second is third

    assert run(main()) == (1, True)


def test_take_cancels_a_start_in_flight_and_hands_over_a_started_client() -> None:
    async def main() -> tuple[object, int, object, object]:
        starts = _Starts()
        lazy = LazyClient(starts)
        waiter = asyncio.ensure_future(lazy.get())
        await asyncio.sleep(0.5)
        taken_midway = await lazy.take()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        client = await lazy.get()
        return taken_midway, starts.closed_unfinished, await lazy.take(), client

    taken_midway, closed, taken, client = run(main())
    assert taken_midway is None and closed == 1
    assert taken is client


def test_a_cancelled_caller_does_not_cancel_the_start_others_wait_for() -> None:
    async def main() -> tuple[int, int]:
        starts = _Starts()
        lazy = LazyClient(starts)
        impatient = asyncio.ensure_future(lazy.get())
        patient = asyncio.ensure_future(lazy.get())
        await asyncio.sleep(0.5)
        impatient.cancel()
        await patient
        return len(starts.started), starts.closed_unfinished

    assert run(main()) == (1, 0)


def test_a_failed_start_fails_its_waiters_and_the_next_call_starts_again() -> None:
    async def main() -> tuple[list[str], bool]:
        lazy = LazyClient(_Starts(fail_first=True))
        results = await asyncio.gather(lazy.get(), lazy.get(), return_exceptions=True)
        again = await lazy.get()
        return [type(r).__name__ for r in results], again is not None

    assert run(main()) == (["ConnectionError", "ConnectionError"], True)
