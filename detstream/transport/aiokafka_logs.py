"""What aiokafka logs, made readable: one filter on each of its module loggers.

aiokafka logs every failed request and every metadata refresh that misses a
topic, at ERROR, as often as it retries: a healthy first start of a worker
shows "Topic ... not found in cluster metadata" while its topics are being
created, and a one-minute broker outage logged tens of thousands of lines.
The filter (:data:`AIOKAFKA_LOGS`) does three things:

- while a client bootstraps, it collects "Unable connect to" errors as the
  reasons of the driver's one warning (:meth:`AiokafkaLogFilter.bootstrap_errors`);
- during a transport's start-up (:class:`StartUp`: until its group consumer's
  first assignment, at most ``START_UP_GRACE`` seconds) what is expected then
  (a topic not in metadata yet, no group coordinator yet) is logged at DEBUG;
- every other message is rate-limited per logger and message template: the
  first passes, then at most one per ``WINDOW`` seconds, and the next one to
  pass is preceded by "aiokafka: N more like '<template>' in the last X s".

Time is the running event loop's ``time()``: virtual time under the
simulator, so what is logged is a function of the seed there, and no wall
clock is read. A record logged with no loop running passes unchanged.
This module does not import aiokafka: it names its loggers and errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "AIOKAFKA_LOGGERS", "AIOKAFKA_LOGS", "START_UP_GRACE", "WINDOW", "AiokafkaLogFilter",
    "StartUp", "install",
]

#: aiokafka's module loggers (a filter on a logger does not apply to its children).
AIOKAFKA_LOGGERS = (
    "aiokafka",  # aiokafka.client logs here
    "aiokafka.admin.client",
    "aiokafka.cluster",
    "aiokafka.conn",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
    "aiokafka.consumer.subscription_state",
    "aiokafka.coordinator.assignors.abstract",
    "aiokafka.coordinator.assignors.range",
    "aiokafka.coordinator.assignors.roundrobin",
    "aiokafka.coordinator.assignors.sticky.partition_movements",
    "aiokafka.coordinator.assignors.sticky.sticky_assignor",
    "aiokafka.helpers",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
)

#: seconds (of the loop's clock) between two records of one template that pass.
WINDOW = 30.0
#: a start-up that never sees an assignment (a producer-only client) ends after this.
START_UP_GRACE = 60.0

#: message templates expected while a transport starts (its topics being created, its
#: group's coordinator not elected yet), with the error names that make them expected
#: (None: any arguments).
START_UP_NOISE: dict[str, frozenset[str] | None] = {
    "Topic %s not found in cluster metadata": None,
    "Topic %s is not available during auto-create initialization": None,
    "Group Coordinator Request failed: %s": frozenset({
        "GroupCoordinatorNotAvailableError", "CoordinatorNotAvailableError",
        "NotCoordinatorForGroupError", "NotCoordinatorError", "CoordinatorLoadInProgressError",
    }),
    "FindCoordinator Request failed: %s": frozenset({
        "GroupCoordinatorNotAvailableError", "CoordinatorNotAvailableError",
        "CoordinatorLoadInProgressError",
    }),
}

SUMMARY = "aiokafka: %d more like %r in the last %.0f s"
#: where the summaries go: not an aiokafka logger, so the filter never sees them.
summaries = logging.getLogger(__name__)


class StartUp:
    """One transport's start-up: open until its first assignment, or ``START_UP_GRACE`` s."""

    def __init__(self) -> None:
        self.opened_at: float | None = None
        self.done = False

    def open(self, now: float | None) -> None:
        if self.opened_at is None:
            self.opened_at = now

    def end(self) -> None:
        self.done = True

    def active(self, now: float | None) -> bool:
        if self.done:
            return False
        return now is None or self.opened_at is None or now - self.opened_at < START_UP_GRACE


#: the start-up of the transport whose client logs (aiokafka's tasks inherit it when made).
_START_UP: contextvars.ContextVar[StartUp | None] = contextvars.ContextVar(
    "detstream_aiokafka_start_up", default=None
)


@dataclass
class _Seen:
    """One template's records since the last that passed."""

    passed_at: float
    level: int
    suppressed: int = 0


class AiokafkaLogFilter(logging.Filter):
    """Collects bootstrap errors, hushes start-up noise, rate-limits the rest (see the module)."""

    def __init__(self, window: float = WINDOW) -> None:
        super().__init__()
        self.window = window
        #: the lists of clients bootstrapping now, each collecting "Unable connect to" reasons.
        self.reasons: list[list[str]] = []
        #: (logger, template) -> what was seen of it, on the loop ``_loop`` (reset on another).
        self.seen: dict[tuple[str, str], _Seen] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the filter ------------------------------------------------------------------
    def filter(self, record: logging.LogRecord) -> bool:
        if self.reasons and str(record.msg).startswith("Unable connect to"):
            message = record.getMessage().removeprefix("Unable connect to ")
            for reasons in self.reasons:
                reasons.append(message)
            return False
        loop = _running_loop()
        if loop is None:
            return True
        now = loop.time()
        if self._start_up_noise(record, now):
            return _as_debug(record)
        return self._rate_limit(record, loop, now)

    def _start_up_noise(self, record: logging.LogRecord, now: float) -> bool:
        start_up = _START_UP.get()
        if start_up is None or not start_up.active(now) or record.msg not in START_UP_NOISE:
            return False
        errors = START_UP_NOISE[str(record.msg)]
        if errors is None:
            return True
        args = record.args if isinstance(record.args, tuple) else ()
        return any(type(arg).__name__ in errors for arg in args)

    def _rate_limit(self, record: logging.LogRecord, loop: asyncio.AbstractEventLoop, now: float) -> bool:
        if loop is not self._loop:  # another run (a sim seed): its clock starts anew
            self.seen.clear()
            self._loop = loop
        key = (record.name, str(record.msg))
        seen = self.seen.get(key)
        if seen is None:
            self.seen[key] = _Seen(passed_at=now, level=record.levelno)
            return True
        if now - seen.passed_at < self.window:
            seen.suppressed += 1
            seen.level = max(seen.level, record.levelno)
            return False
        self._summarise(key, seen, now)
        self.seen[key] = _Seen(passed_at=now, level=record.levelno)
        return True

    # -- summaries -------------------------------------------------------------------
    def flush(self) -> None:
        """Summarise what was held back and not summarised yet (a worker or a run ends)."""
        loop = _running_loop()
        for key, seen in sorted(self.seen.items()):
            now = loop.time() if loop is not None and loop is self._loop else seen.passed_at
            self._summarise(key, seen, now)
        self.seen.clear()

    def _summarise(self, key: tuple[str, str], seen: _Seen, now: float) -> None:
        if seen.suppressed:
            summaries.log(seen.level, SUMMARY, seen.suppressed, key[1], now - seen.passed_at)
            seen.suppressed = 0

    # -- scopes the driver opens -----------------------------------------------------
    @contextlib.contextmanager
    def bootstrap_errors(self) -> Iterator[list[str]]:
        """While a client starts, collect (instead of logging) why hosts did not answer."""
        reasons: list[str] = []
        self.reasons.append(reasons)
        try:
            yield reasons
        finally:
            # by identity: clients bootstrapping at once collect the same reasons, and
            # list.remove() would take the first equal list, another client's
            self.reasons = [other for other in self.reasons if other is not reasons]


def starting(start_up: StartUp) -> None:
    """The calling task, and the tasks it makes from now on, belong to ``start_up``."""
    loop = _running_loop()
    start_up.open(loop.time() if loop is not None else None)
    _START_UP.set(start_up)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _as_debug(record: logging.LogRecord) -> bool:
    """Make ``record`` a DEBUG one; pass it only where its logger shows DEBUG."""
    record.levelno, record.levelname = logging.DEBUG, "DEBUG"
    return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


#: the one filter, on every aiokafka module logger once :func:`install` ran.
AIOKAFKA_LOGS = AiokafkaLogFilter()


def install() -> AiokafkaLogFilter:
    """Put :data:`AIOKAFKA_LOGS` on each of aiokafka's module loggers (once)."""
    for name in AIOKAFKA_LOGGERS:
        logger = logging.getLogger(name)
        if AIOKAFKA_LOGS not in logger.filters:
            logger.addFilter(AIOKAFKA_LOGS)
    return AIOKAFKA_LOGS
