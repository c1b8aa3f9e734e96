"""The records LiveCheck sends: test executions, signal events, reports, and the test headers.

A test execution travels three ways: as a ``TestExecution`` record on the
``livecheck`` topic (the LiveCheck worker runs it), and as the
``LiveCheck-Test-*`` headers of every Kafka record and HTTP request sent
while it is the current test (``as_headers``/``from_headers``), so the
systems under test know they are serving it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from detstream.clock import wall_time
from detstream.models import Record

__all__ = [
    "HEADER_TEST_EXPIRES", "HEADER_TEST_ID", "HEADER_TEST_NAME", "HEADER_TEST_TIMESTAMP",
    "OK_STATES", "SignalEvent", "State", "TestExecution", "TestReport", "now",
]

HEADER_TEST_ID = "LiveCheck-Test-Id"
HEADER_TEST_NAME = "LiveCheck-Test-Name"
HEADER_TEST_TIMESTAMP = "LiveCheck-Test-Timestamp"
HEADER_TEST_EXPIRES = "LiveCheck-Test-Expires"
#: every test header, in the order they are sent.
TEST_HEADERS = (HEADER_TEST_ID, HEADER_TEST_NAME, HEADER_TEST_TIMESTAMP, HEADER_TEST_EXPIRES)


def now() -> datetime:
    """The wall time as an aware UTC datetime (virtual under ``detstream sim``)."""
    return datetime.fromtimestamp(wall_time(), timezone.utc)


class State(str, Enum):
    """What became of a test execution, or where a case stands.

    The values are Faust's (``DO_NOT_SHARE`` is Faust's state of a passed
    test); ``PASS`` is the state a case returns to once it recovered from a
    failure (Faust names it without defining it).
    """

    INIT = "INIT"
    PASS = "PASS"
    DO_NOT_SHARE = "111/***/111"
    FAIL = "FAIL"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    STALL = "STALL"
    SKIP = "SKIP"

    def is_ok(self) -> bool:
        return self in OK_STATES


OK_STATES = frozenset({State.INIT, State.PASS, State.DO_NOT_SHARE, State.SKIP})


class SignalEvent(Record, namespace="detstream.livecheck.SignalEvent"):
    """A signal of a test, sent by the system under test (``Signal.send``) to the bus topic."""

    signal_name: str
    case_name: str
    key: Any
    value: Any


class TestExecution(Record, isodates=True, namespace="detstream.livecheck.TestExecution"):
    """One requested run of a case: its id, arguments, and when it was issued and expires."""

    __test__ = False  # not a pytest test class

    id: str
    case_name: str
    timestamp: datetime
    test_args: list[Any]
    test_kwargs: dict[str, Any]
    expires: datetime

    @classmethod
    def from_headers(cls, headers: Mapping[str, Any]) -> TestExecution | None:
        """The test named by Kafka or HTTP headers, or None when they name none."""
        if HEADER_TEST_ID not in headers:
            return None
        return cls(
            id=_text(headers[HEADER_TEST_ID]),
            case_name=_text(headers[HEADER_TEST_NAME]),
            timestamp=datetime.fromisoformat(_text(headers[HEADER_TEST_TIMESTAMP])),
            expires=datetime.fromisoformat(_text(headers[HEADER_TEST_EXPIRES])),
            test_args=[],
            test_kwargs={},
        )

    def as_headers(self) -> dict[str, str]:
        """The headers that carry this test to the systems under test."""
        return {
            HEADER_TEST_ID: self.id,
            HEADER_TEST_NAME: self.case_name,
            HEADER_TEST_TIMESTAMP: self.timestamp.isoformat(),
            HEADER_TEST_EXPIRES: self.expires.isoformat(),
        }

    @property
    def ident(self) -> str:
        return f"{self.case_name}:{self.id}"

    @property
    def shortident(self) -> str:
        short_id = self.id if len(self.id) <= 15 else self.id[:15] + "[...]"
        return f"{self.short_case_name}:{short_id}"

    @property
    def short_case_name(self) -> str:
        return self.case_name.split(".")[-1]

    @property
    def human_date(self) -> str:
        if self.timestamp.date() == now().date():
            return f"Today {self.timestamp.strftime('%H:%M:%S')}"
        return str(self.timestamp)

    @property
    def is_expired(self) -> bool:
        return now() >= self.expires


class TestReport(Record, namespace="detstream.livecheck.TestReport"):
    """What became of a test execution (``test``), or of a whole case (``test`` is None)."""

    __test__ = False

    case_name: str
    state: State
    test: TestExecution | None
    runtime: float | None
    signal_latency: dict[str, float]
    error: str | None
    traceback: str | None

    def __post_init__(self) -> None:
        self.state = State(self.state)  # decoded JSON gives the value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, (bytes, bytearray)) else str(value)
