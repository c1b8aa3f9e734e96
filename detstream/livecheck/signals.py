"""Signals: how the system under test tells a running LiveCheck test that a step happened.

A case declares them as annotated attributes (``order_sent: Signal[Order]``).
The system under test calls ``await case.order_sent.send(value)`` where the
step happens; it sends only while a test is current (``current_test()``:
the code serves a test), to the LiveCheck bus topic, keyed by the test's id.
The LiveCheck worker's test waits with ``await self.order_sent.wait(timeout=30)``
and gets the value, or fails with ``TestTimeout``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from detstream.errors import InvalidArgument
from detstream.models import maybe_model

from .exceptions import TestTimeout
from .locals import current_execution, current_test
from .models import SignalEvent

if TYPE_CHECKING:
    from .case import Case

__all__ = ["BaseSignal", "Signal", "seconds"]

VT = TypeVar("VT")


def seconds(value: float | timedelta | None) -> float | None:
    """A timeout as seconds (a number or a timedelta; None: no timeout)."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class BaseSignal(Generic[VT]):
    """A named step of a case; bound to its case when the case is made (``clone(case=...)``)."""

    def __init__(self, name: str = "", case: Case | None = None, index: int = -1) -> None:
        self.name = name
        self._case = case
        #: its position among the case's signals (1-based), for the runner's log.
        self.index = index

    def __set_name__(self, owner: type, name: str) -> None:
        if not self.name:
            self.name = name

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"

    @property
    def case(self) -> Case:
        if self._case is None:
            raise InvalidArgument(
                f"signal {self.name!r} belongs to no case: declare it on a class decorated "
                "with @livecheck.case(), and use it through the case"
            )
        return self._case

    def clone(self, **changes: Any) -> BaseSignal[VT]:
        """A copy with ``changes`` (``case=``, ``index=``)."""
        options: dict[str, Any] = {"name": self.name, "case": self._case, "index": self.index}
        options.update(changes)
        return type(self)(**options)

    def key_for(self, test_key: Hashable) -> tuple[str, str, Hashable]:
        """What this signal of one test is kept and waited for under."""
        return self.name, self.case.name, test_key

    async def send(self, value: VT | None = None, *, key: Any = None, force: bool = False) -> None:
        raise NotImplementedError

    async def wait(self, *, key: Any = None, timeout: float | timedelta | None = None) -> VT:
        raise NotImplementedError

    async def resolve(self, key: Hashable, event: SignalEvent) -> None:
        """The LiveCheck worker received ``event`` for test ``key``: wake its test."""
        self.case.app.resolutions.resolve(self.key_for(key), event)


class Signal(BaseSignal[VT]):
    """A signal sent through the LiveCheck app's bus topic (Faust's ``Signal``)."""

    async def send(self, value: VT | None = None, *, key: Any = None, force: bool = False) -> None:
        """Tell the current test this step happened, with ``value``.

        Does nothing when no test is current, unless ``force`` (then ``key``,
        the test's id, is required).
        """
        test = current_test()
        if test is None:
            if not force:
                return
            if key is None:
                raise InvalidArgument(f"signal {self.name!r}: send(force=True) needs key=")
        elif key is None:
            key = test.id
        case = self.case
        event = SignalEvent(signal_name=self.name, case_name=case.name, key=key, value=value)
        await case.app.bus.send(key=key, value=event)

    async def wait(self, *, key: Any = None, timeout: float | timedelta | None = None) -> VT:
        """The value this step was signalled with, once it is (in the running test).

        Raises ``TestTimeout`` after ``timeout`` seconds without it.
        """
        runner = current_execution()
        if runner is None:
            raise RuntimeError(f"signal {self.name!r}: wait() is for a running test's run()")
        test_key = runner.test.id if key is None else key
        timeout_s = seconds(timeout)
        await runner.on_signal_wait(self, timeout_s)
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            event = await self.case.app.resolutions.wait(self.key_for(test_key), timeout_s)
        except asyncio.TimeoutError:
            raise TestTimeout(f"Timed out waiting for signal {self.name} ({timeout})") from None
        await runner.on_signal_received(self, time_start=started, time_end=loop.time())
        self._verify(event, test_key)
        return maybe_model(event.value)

    def _verify(self, event: SignalEvent, key: Any) -> None:
        assert event.key == key, f"{event.key!r} == {key!r}"
        assert event.signal_name == self.name, f"{event.signal_name!r} == {self.name!r}"
        assert event.case_name == self.case.name, f"{event.case_name!r} == {self.case.name!r}"
