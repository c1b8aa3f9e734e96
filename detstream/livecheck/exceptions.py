"""What goes wrong in LiveCheck: a test (failed, raised, timed out, skipped) or a whole case.

A test's exception ends its execution and is reported; a case's
(``SuiteFailed`` and its kinds) marks the case failed and is reported once
per ``state_transition_delay``. The ``LiveCheckTest*`` names are the same
classes under the names later faust-streaming releases gave them.
"""

from __future__ import annotations

__all__ = [
    "LiveCheckError", "LiveCheckTestFailed", "LiveCheckTestRaised", "LiveCheckTestSkipped",
    "LiveCheckTestTimeout", "ServiceDown", "SuiteFailed", "SuiteStalled", "TestFailed",
    "TestRaised", "TestSkipped", "TestTimeout",
]


class LiveCheckError(Exception):
    """Base class of LiveCheck's errors."""


class SuiteFailed(LiveCheckError):
    """The case as a whole failed: too many tests in a row did not pass."""


class ServiceDown(SuiteFailed):
    """A service the case sends fake requests to (``get_url``) does not answer."""


class SuiteStalled(SuiteFailed):
    """No test of the case was executed for longer than its ``warn_stalled_after``."""


class TestSkipped(LiveCheckError):
    """The test was not run: its case is inactive, or it expired before it could run."""

    __test__ = False  # not a pytest test class


class TestFailed(LiveCheckError):
    """An assertion of the test failed."""

    __test__ = False


class TestRaised(LiveCheckError):
    """The test raised an exception other than an assertion."""

    __test__ = False


class TestTimeout(LiveCheckError):
    """The test waited longer than its timeout for a signal."""

    __test__ = False


LiveCheckTestSkipped = TestSkipped
LiveCheckTestFailed = TestFailed
LiveCheckTestRaised = TestRaised
LiveCheckTestTimeout = TestTimeout
