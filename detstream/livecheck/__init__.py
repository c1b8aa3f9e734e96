"""LiveCheck: end-to-end tests of a running system, on samples of its real traffic (Faust's).

A LiveCheck app (``livecheck = app.LiveCheck()``) runs *cases* against the
app it tests. The app triggers a test where real work starts (with a
probability: ``async with case.maybe_trigger(id) as test:``), the test
travels with that work through Kafka headers and HTTP headers into every
agent and view it reaches, and the code there signals the steps it takes
(``await case.step.send(value)``). The LiveCheck worker (``detstream
livecheck``) runs the case's ``run`` for each test: it waits for the signals
and asserts on their values, and posts a ``TestReport`` of each run. A case
also fails as a whole after too many failing runs in a row, or when no test
came for ``warn_stalled_after`` seconds.

Modules: ``app`` (the LiveCheck App), ``case`` (Case), ``signals``,
``runners`` (one test run), ``models`` (the records and headers),
``locals`` (the current test), ``propagation`` (headers in and out),
``resolutions`` (signals waiting for their tests), ``exceptions``.
"""

from __future__ import annotations

from .app import LiveCheck
from .case import Case
from .exceptions import (
    LiveCheckError,
    ServiceDown,
    SuiteFailed,
    SuiteStalled,
    TestFailed,
    TestRaised,
    TestSkipped,
    TestTimeout,
)
from .locals import current_execution, current_execution_stack, current_test, current_test_stack
from .models import SignalEvent, State, TestExecution, TestReport
from .runners import TestRunner
from .signals import BaseSignal, Signal

__all__ = [
    "BaseSignal", "Case", "LiveCheck", "LiveCheckError", "ServiceDown", "Signal", "SignalEvent",
    "State", "SuiteFailed", "SuiteStalled", "TestExecution", "TestFailed", "TestRaised",
    "TestReport", "TestRunner", "TestSkipped", "TestTimeout", "current_execution",
    "current_execution_stack", "current_test", "current_test_stack",
]
