"""A LiveCheck case: an end-to-end test of the system, run on samples of real traffic.

A case is a class decorated with ``@livecheck.case(...)`` (see
``LiveCheck.case``), with signals as annotated attributes and a ``run``::

    @livecheck.case(warn_stalled_after=5.0, frequency=0.5, probability=0.5)
    class test_order(Case):
        order_sent_to_db: Signal[Order]

        async def run(self, side: str) -> None:
            order = await self.order_sent_to_db.wait(timeout=30.0)
            assert order.side == side

The system under test triggers it where real work starts::

    async with test_order.maybe_trigger(order_id, side=side) as test:
        ...  # with probability ``probability``, this work serves test ``test``

and signals it where steps happen (``await test_order.order_sent_to_db.send(order)``).
The LiveCheck worker runs the case's ``run`` for each triggered test
(``execute``) and posts a ``TestReport``; the case keeps count of failures:
``max_consecutive_failures`` in a row fail the case as a whole, and a case
with no test for ``warn_stalled_after`` seconds is stalled; both are
reported (once per ``state_transition_delay``). With ``frequency``, the
LiveCheck leader calls ``make_fake_request()`` that often, to make traffic
itself.

Times are the loop's (virtual under ``detstream sim``), timestamps the wall
clock's (``detstream.clock``); whether ``maybe_trigger`` triggers is drawn
from the case's own ``random`` (``detstream.clock.new_random``: seeded by the
run's seed under the simulator).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import traceback
from collections import Counter, deque
from collections.abc import AsyncIterator, Hashable, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from mode import Service

from detstream.clock import new_random, uuid_str
from detstream.web.server import HTTPRequestError, fetch

from .exceptions import ServiceDown, SuiteFailed, SuiteStalled
from .locals import current_execution_stack, current_test_stack
from .models import SignalEvent, State, TestExecution, TestReport, now
from .runners import TestRunner
from .signals import BaseSignal, seconds

if TYPE_CHECKING:
    from .app import LiveCheck

__all__ = ["Case"]


class Case(Service):
    """A LiveCheck test case (Faust's ``faust.livecheck.Case``); see the module doc."""

    Runner: ClassVar[type[TestRunner]] = TestRunner

    #: the case may run tests (an inactive case skips them).
    active: bool = True
    #: where the case stands: INIT, PASS, or how it last failed.
    status: State = State.INIT
    #: seconds between fake requests (``make_fake_request``), or None for none.
    frequency: float | None = None
    #: a case without a test for this long (seconds) is reported stalled.
    warn_stalled_after: float = 1800.0
    #: share of ``maybe_trigger`` calls that trigger a test.
    probability: float = 0.5
    #: failing tests in a row that fail the case as a whole.
    max_consecutive_failures: int = 30
    #: how many latencies, frequencies and runtimes the statistics keep.
    max_history: int = 100
    #: a test not run by then (after it was issued) is skipped.
    test_expires: timedelta = timedelta(hours=3)
    #: log a test's lines as they happen, not at its end.
    realtime_logs: bool = False
    #: ``get_url``/``post_url``: timeouts, retries and the delay between them (seconds).
    url_timeout_total: float | None = 300.0
    url_timeout_connect: float | None = None
    url_error_retries: int = 10
    url_error_delay_min: float = 0.5
    url_error_delay_backoff: float = 1.5
    url_error_delay_max: float = 5.0
    #: a failed case is reported again, or counts as recovered, only after this long (s).
    state_transition_delay: float = 60.0
    #: seconds between the statistics the case logs.
    sample_interval: float = 10.0

    def __init__(
        self,
        *,
        app: LiveCheck,
        name: str,
        probability: float | None = None,
        warn_stalled_after: float | timedelta | None = None,
        active: bool | None = None,
        signals: Iterable[BaseSignal[Any]] | None = None,
        test_expires: float | timedelta | None = None,
        frequency: float | timedelta | None = None,
        realtime_logs: bool | None = None,
        max_history: int | None = None,
        max_consecutive_failures: int | None = None,
        url_timeout_total: float | None = None,
        url_timeout_connect: float | None = None,
        url_error_retries: int | None = None,
        url_error_delay_min: float | None = None,
        url_error_delay_backoff: float | None = None,
        url_error_delay_max: float | None = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.name = name
        if active is not None:
            self.active = active
        if probability is not None:
            self.probability = float(probability)
        if warn_stalled_after is not None:
            self.warn_stalled_after = seconds(warn_stalled_after) or 0.0
        if test_expires is not None:
            self.test_expires = timedelta(seconds=seconds(test_expires) or 0.0)
        if frequency is not None:
            self.frequency = seconds(frequency)
        if realtime_logs is not None:
            self.realtime_logs = realtime_logs
        if max_history is not None:
            self.max_history = max_history
        if max_consecutive_failures is not None:
            self.max_consecutive_failures = max_consecutive_failures
        for option, value in (
            ("url_timeout_total", url_timeout_total), ("url_timeout_connect", url_timeout_connect),
            ("url_error_retries", url_error_retries), ("url_error_delay_min", url_error_delay_min),
            ("url_error_delay_backoff", url_error_delay_backoff),
            ("url_error_delay_max", url_error_delay_max),
        ):
            if value is not None:
                setattr(self, option, value)
        #: whether ``maybe_trigger`` triggers is drawn from here (seeded under the simulator).
        self.random = new_random()
        self.consecutive_failures = 0
        self.total_failures = 0
        self.total_by_state: Counter[State] = Counter()
        #: loop times: the last test started (or skipped), the last time the case failed.
        self.last_test_received: float | None = None
        self.last_fail: float | None = None
        self.frequency_history: deque[float] = deque(maxlen=self.max_history)
        self.latency_history: deque[float] = deque(maxlen=self.max_history)
        self.runtime_history: deque[float] = deque(maxlen=self.max_history)
        self.frequency_avg: float | None = None
        self.latency_avg: float | None = None
        self.runtime_avg: float | None = None
        self.signals: dict[str, BaseSignal[Any]] = {
            signal.name: signal.clone(case=self) for signal in signals or ()
        }
        self.total_signals = len(self.signals)
        self.__dict__.update(self.signals)  # ``self.order_sent`` is this case's own signal
        super().__init__(**kwargs)

    @property
    def label(self) -> str:
        return f"{type(self).__name__}: {self.name}"

    @property
    def current_test(self) -> TestExecution | None:
        """The test the running code serves, if any."""
        return current_test_stack.top

    @property
    def current_execution(self) -> TestRunner | None:
        """The run of this case's ``run`` in progress in this task, if any."""
        return current_execution_stack.top

    # -- what a user defines ---------------------------------------------------------------
    async def run(self, *test_args: Any, **test_kwargs: Any) -> None:
        """The test: wait for signals, assert what must hold. Override it."""
        raise NotImplementedError(f"case {self.name!r} must define async def run(self, ...)")

    async def make_fake_request(self) -> None:
        """Make traffic that triggers a test (called every ``frequency`` s on the leader)."""

    # -- triggering, on the system under test ---------------------------------------------
    @asynccontextmanager
    async def maybe_trigger(
        self, id: str | None = None, *args: Any, **kwargs: Any
    ) -> AsyncIterator[TestExecution | None]:
        """Trigger a test with probability ``probability``; the block serves it (or None)."""
        if self.random.random() >= self.probability:
            yield None
            return
        execution = await self.trigger(id, *args, **kwargs)
        with current_test_stack.push(execution):
            yield execution

    async def trigger(self, id: str | None = None, *args: Any, **kwargs: Any) -> TestExecution:
        """Request a run of this case now, with ``run(*args, **kwargs)``; returns the test."""
        issued = now()
        execution = TestExecution(
            id=id or uuid_str(), case_name=self.name, timestamp=issued, test_args=list(args),
            test_kwargs=dict(kwargs), expires=issued + self.test_expires,
        )
        await self.app.pending_tests.send(key=execution.id, value=execution)
        return execution

    # -- running, on the LiveCheck worker --------------------------------------------------
    async def execute(self, test: TestExecution) -> None:
        """Run ``test`` (a ``TestRunner``); raises a ``LiveCheckError`` when it did not pass."""
        runner = self.Runner(self, test, started=self._now())
        try:
            with current_execution_stack.push(runner):
                await runner.execute()
        finally:
            self.app.resolutions.forget(self.name, test.id)

    async def resolve_signal(self, key: Hashable, event: SignalEvent) -> None:
        """The LiveCheck worker received ``event`` for test ``key``."""
        signal = self.signals.get(event.signal_name)
        if signal is None:
            self.log.error("Received signal %r for case %r, which has no such signal",
                           event.signal_name, self.name)
            return
        await signal.resolve(key, event)

    async def post_report(self, report: TestReport) -> None:
        await self.app.post_report(report)

    # -- what happened to a test -------------------------------------------------------------
    async def on_test_start(self, runner: TestRunner) -> None:
        started = runner.started
        previous, self.last_test_received = self.last_test_received, started
        if previous is not None:
            since = started - previous
            if self.frequency:
                self.latency_history.append(since - self.frequency)
            self.frequency_history.append(since)

    async def on_test_skipped(self, runner: TestRunner) -> None:
        self.last_test_received = self._now()
        self.total_by_state[State.SKIP] += 1

    async def on_test_failed(self, runner: TestRunner, exc: BaseException) -> None:
        await self._test_did_not_pass(State.FAIL)

    async def on_test_error(self, runner: TestRunner, exc: BaseException) -> None:
        await self._test_did_not_pass(State.ERROR)

    async def on_test_timeout(self, runner: TestRunner, exc: BaseException) -> None:
        await self._test_did_not_pass(State.TIMEOUT)

    async def on_test_pass(self, runner: TestRunner) -> None:
        self.consecutive_failures = 0
        self.total_by_state[State.DO_NOT_SHARE] += 1
        self.runtime_history.append(runner.runtime or 0.0)
        if self.last_fail is None or runner.started > self.last_fail:
            self._maybe_recover_from_failed_state()

    async def _test_did_not_pass(self, state: State) -> None:
        self.status = state
        self.consecutive_failures += 1
        self.total_failures += 1
        self.total_by_state[state] += 1
        if self.consecutive_failures >= self.max_consecutive_failures:
            await self.on_suite_fail(SuiteFailed(
                f"Failed after {self.consecutive_failures!r} "
                f"(max={self.max_consecutive_failures!r})"
            ))

    # -- the case as a whole -------------------------------------------------------------------
    async def on_suite_fail(self, exc: SuiteFailed, new_state: State = State.FAIL) -> None:
        """The case failed (``exc``): reported unless it was reported within the transition delay."""
        report = self.status.is_ok() or self._failed_longer_than(self.state_transition_delay)
        self.status = new_state
        self.last_fail = self._now()
        if not report:
            return
        self.log.error("%s", exc)
        await self.post_report(TestReport(
            case_name=self.name, state=new_state, test=None, runtime=None, signal_latency={},
            error=str(exc), traceback="".join(traceback.format_tb(exc.__traceback__)),
        ))

    def _maybe_recover_from_failed_state(self) -> None:
        if not self.status.is_ok() and self._failed_longer_than(self.state_transition_delay):
            self.status = State.PASS

    def _failed_longer_than(self, secs: float) -> bool:
        since = self.seconds_since_last_fail
        return since is None or since > secs

    @property
    def seconds_since_last_fail(self) -> float | None:
        return None if self.last_fail is None else self._now() - self.last_fail

    # -- background work while the LiveCheck worker runs ------------------------------------------
    async def on_start(self) -> None:
        # Started here, in this order, rather than as mode's @Service.task (a set of names):
        # their order is part of a simulated run's schedule.
        self.add_future(self._sample_statistics())
        self.add_future(self._send_fake_requests())
        self.add_future(self._watch_for_stalls())

    async def _sample_statistics(self) -> None:
        while not self.should_stop:
            await self.sleep(self.sample_interval)
            self._sample()

    def _sample(self) -> None:
        if self.frequency_history:
            self.frequency_avg = statistics.median(self.frequency_history)
        if self.latency_history:
            self.latency_avg = statistics.median(self.latency_history)
        if self.runtime_history:
            self.runtime_avg = statistics.median(self.runtime_history)
        self.log.info("Stats: (median) frequency=%r latency=%r runtime=%r",
                      self.frequency_avg, self.latency_avg, self.runtime_avg)

    async def _send_fake_requests(self) -> None:
        """Every ``frequency`` seconds, on the LiveCheck leader only: ``make_fake_request()``."""
        if not self.frequency:
            return
        while not self.should_stop:
            await self.sleep(self.frequency)
            if self.should_stop or not self.app.is_leader():
                continue
            try:
                await self.make_fake_request()
            except Exception as exc:  # keep running: the case is failed, the worker is not
                self.log.exception("make_fake_request raised: %r", exc)
                await self.on_suite_fail(SuiteFailed(f"make_fake_request raised {exc!r}"))

    async def _watch_for_stalls(self) -> None:
        """Every ``warn_stalled_after`` seconds: stalled if no test came for that long."""
        interval = self.warn_stalled_after
        if interval <= 0:
            return
        watching_since = self._now()
        while not self.should_stop:
            await self.sleep(interval)
            if self.should_stop:
                break
            last = max(self.last_test_received or watching_since, watching_since)
            idle = self._now() - last
            if idle >= interval:
                await self.on_suite_fail(SuiteStalled(
                    f"Test stalled! Last received {idle:.1f} seconds ago "
                    f"(warn_stalled_after={interval})."
                ), State.STALL)
            else:
                self._maybe_recover_from_failed_state()

    # -- fake requests ------------------------------------------------------------------------
    async def get_url(self, url: Any, **kwargs: Any) -> bytes | None:
        """GET ``url`` with the app's HTTP client (retried; see ``url_request``)."""
        return await self.url_request("get", url, **kwargs)

    async def post_url(self, url: Any, **kwargs: Any) -> bytes | None:
        return await self.url_request("post", url, **kwargs)

    async def url_request(self, method: str, url: Any, **kwargs: Any) -> bytes | None:
        """The answer's body; None once ``url_error_retries`` retries failed (the case fails:
        ``ServiceDown``). Retries wait from ``url_error_delay_min`` seconds, growing by
        ``url_error_delay_backoff`` up to ``url_error_delay_max``."""
        delay = self.url_error_delay_min
        for attempt in itertools.count():
            try:
                payload = await fetch(self.app.http_client, method, str(url),
                                      total=self.url_timeout_total,
                                      connect=self.url_timeout_connect, **kwargs)
            except HTTPRequestError as exc:
                if attempt >= self.url_error_retries:
                    await self.on_suite_fail(ServiceDown(f"Cannot send fake test request: {exc}"))
                    return None
                self.log.warning("URL %r raised: %s (will retry in %.2fs)", str(url), exc, delay)
                await self.sleep(delay)
                delay = min(delay * self.url_error_delay_backoff, self.url_error_delay_max)
            else:
                self._maybe_recover_from_failed_state()
                return payload
        return None  # not reached: count() never ends

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()
