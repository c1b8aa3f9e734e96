"""Where the signals a LiveCheck worker received wait for the tests that wait for them.

A signal may arrive before its test runs (the system under test was quick)
or while the test waits for it, so received signals are kept, by (signal,
case, test key), and a waiting test is woken by exactly its own. What a
finished test received is forgotten (``forget``); a signal for a test that
never runs is dropped once ``max_kept`` newer ones arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable

from .models import SignalEvent

__all__ = ["Resolutions", "SignalKey"]

#: (signal name, case name, test key): what a test waits for.
SignalKey = tuple[str, str, Hashable]


class Resolutions:
    """The received signals of a LiveCheck app, and the tests waiting for them."""

    def __init__(self, max_kept: int = 10_000) -> None:
        self.max_kept = max_kept
        self._received: dict[SignalKey, SignalEvent] = {}  # oldest first
        self._waiters: dict[SignalKey, list[asyncio.Future[SignalEvent]]] = {}

    def __len__(self) -> int:
        return len(self._received)

    def resolve(self, key: SignalKey, event: SignalEvent) -> None:
        """``event`` arrived for ``key``: keep it, and wake the tests waiting for it."""
        self._received.pop(key, None)
        self._received[key] = event
        while len(self._received) > self.max_kept:
            del self._received[next(iter(self._received))]
        for waiter in self._waiters.pop(key, []):
            if not waiter.done():
                waiter.set_result(event)

    def get(self, key: SignalKey) -> SignalEvent | None:
        return self._received.get(key)

    async def wait(self, key: SignalKey, timeout: float | None) -> SignalEvent:
        """The event for ``key``, once it arrived; ``asyncio.TimeoutError`` after ``timeout`` s."""
        event = self._received.get(key)
        if event is not None:
            return event
        waiter: asyncio.Future[SignalEvent] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(waiter)
        try:
            return await asyncio.wait_for(waiter, timeout)
        finally:
            waiters = self._waiters.get(key)
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[key]

    def forget(self, case_name: str, test_key: Hashable) -> None:
        """Drop what a finished test of ``case_name`` received."""
        for key in [k for k in self._received if k[1] == case_name and k[2] == test_key]:
            del self._received[key]
