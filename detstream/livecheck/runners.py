"""One run of a test: its arguments, its outcome, how long it and its signals took, its report.

The LiveCheck worker makes a ``TestRunner`` per test execution it takes from
the ``livecheck`` topic. The run is the case's ``run(*args, **kwargs)`` under
the test as ``current_test()``: it passes when ``run`` returns, fails on an
``AssertionError``, times out when a signal does not come (``TestTimeout``),
errs on any other exception, and is skipped when the case is inactive or the
test expired before it ran. Each outcome but a skip is posted as a
``TestReport``.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

from detstream.models import maybe_model

from .exceptions import LiveCheckError, TestFailed, TestRaised, TestSkipped, TestTimeout
from .locals import current_test_stack
from .models import State, TestExecution, TestReport

if TYPE_CHECKING:
    from .case import Case
    from .signals import BaseSignal

__all__ = ["TestRunner"]

log = logging.getLogger(__name__)


class TestRunner:
    """Runs one test execution of a case and keeps what happened (Faust's ``TestRunner``)."""

    __test__ = False  # not a pytest test class

    def __init__(self, case: Case, test: TestExecution, started: float) -> None:
        self.case = case
        self.test = test
        #: loop times (virtual under ``detstream sim``).
        self.started = started
        self.ended: float | None = None
        self.runtime: float | None = None
        self.state = State.INIT
        self.error: BaseException | None = None
        self.report: TestReport | None = None
        #: seconds each signal took to come, by name.
        self.signal_latency: dict[str, float] = {}
        #: lines logged at the end of the run (unless the case has ``realtime_logs``).
        self.logs: list[tuple[str, tuple[Any, ...]]] = []

    async def execute(self) -> None:
        """Run the test; raises a ``LiveCheckError`` saying how it did not pass."""
        test = self.test
        with current_test_stack.push(test):
            if not self.case.active:
                await self.skip("case inactive")
            if test.is_expired:
                await self.skip("expired")
            args = [maybe_model(arg) for arg in test.test_args]
            kwargs = {key: maybe_model(value) for key, value in test.test_kwargs.items()}
            await self.on_start()
            try:
                await self.case.run(*args, **kwargs)
            except TestTimeout as exc:
                await self.on_timeout(exc)
                raise
            except AssertionError as exc:
                await self.on_failed(exc)
                raise TestFailed(exc) from exc
            except LiveCheckError as exc:
                await self.on_error(exc)
                raise
            except Exception as exc:
                await self.on_error(exc)
                raise TestRaised(exc) from exc
            else:
                await self.on_pass()

    async def skip(self, reason: str) -> NoReturn:
        """Do not run the test: tell the case, and raise ``TestSkipped``."""
        exc = TestSkipped(f"Test {self.test.ident} skipped: {reason}")
        self.state = State.SKIP
        log.info("Skipped test %s: %s (expires %s)", self.test.ident, reason, self.test.expires)
        await self.case.on_test_skipped(self)
        raise exc

    async def on_start(self) -> None:
        self.log_info("Test %s executing... (issued %s)", self.case.name, self.test.human_date)
        await self.case.on_test_start(self)

    async def on_signal_wait(self, signal: BaseSignal[Any], timeout: float | None) -> None:
        self.log_info("%r/%r %s (%rs)...", signal.index, self.case.total_signals,
                      signal.name.upper(), timeout)

    async def on_signal_received(
        self, signal: BaseSignal[Any], time_start: float, time_end: float
    ) -> None:
        self.signal_latency[signal.name] = time_end - time_start

    async def on_failed(self, exc: BaseException) -> None:
        await self._ended(State.FAIL, exc, "Test failed: %r")
        await self.case.on_test_failed(self, exc)
        await self._post_report()

    async def on_error(self, exc: BaseException) -> None:
        await self._ended(State.ERROR, exc, "Test raised: %r")
        await self.case.on_test_error(self, exc)
        await self._post_report()

    async def on_timeout(self, exc: BaseException) -> None:
        await self._ended(State.TIMEOUT, exc, "Test timed out: %r")
        await self.case.on_test_timeout(self, exc)
        await self._post_report()

    async def on_pass(self) -> None:
        self.end()
        self.state = State.DO_NOT_SHARE
        self.log_info("Test OK in %.3fs", self.runtime or 0.0)
        self._flush_logs(logging.INFO)
        await self.case.on_test_pass(self)
        await self._post_report()

    async def _ended(self, state: State, exc: BaseException, message: str) -> None:
        self.end()
        self.state = state
        self.error = exc
        self._flush_logs(logging.INFO)
        self.case.log.error("[%s] " + message, self.test.shortident, exc, exc_info=exc)

    def end(self) -> None:
        self.ended = asyncio.get_running_loop().time()
        self.runtime = self.ended - self.started

    async def _post_report(self) -> None:
        error = self.error
        self.report = TestReport(
            case_name=self.case.name,
            state=self.state,
            test=self.test,
            runtime=self.runtime,
            signal_latency=dict(self.signal_latency),
            error=str(error) if error is not None else None,
            traceback="".join(traceback.format_tb(error.__traceback__)) if error else None,
        )
        await self.case.post_report(self.report)

    def log_info(self, message: str, *args: Any) -> None:
        """Log now with ``realtime_logs``, else keep the line for the end of the run."""
        if self.case.realtime_logs:
            self.case.log.info("[%s] " + message, self.test.shortident, *args)
        else:
            self.logs.append((message, args))

    def _flush_logs(self, severity: int) -> None:
        if not self.logs:
            return
        lines = "\n".join(f"[{self.test.shortident}] {msg % args}" for msg, args in self.logs)
        self.logs.clear()
        self.case.log.log(severity, "%s", lines)
