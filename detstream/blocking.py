"""The blocking detector of ``detstream worker --debug``: say where the event loop is stuck.

An agent that calls blocking code (``time.sleep``, a synchronous HTTP
client, a long CPU loop) stops every other agent, the heartbeats and the
commits of its worker; the symptom seen from outside is a rebalance, far
from the cause. In debug mode the worker arms ``SIGALRM`` for
``blocking_timeout`` seconds and re-arms it from the loop a little before
it fires; if the loop does not get to re-arm it in time, the signal arrives
while the blocking code runs, and its stack is logged.

This reuses mode's ``BlockingDetector`` (as Faust does) with one change:
mode raises ``Blocking`` into the interrupted code, which would crash the
very agent being diagnosed (and its supervisor would restart it, hiding
the pattern); here the stack is only logged, and the code goes on.

Production only: the simulator has no wall clock, threads or signals, and
its virtual loop never blocks in real time.
"""

from __future__ import annotations

import logging
import signal
import threading
import traceback
from types import FrameType
from typing import Any

from mode.debug import BlockingDetector as _ModeBlockingDetector

__all__ = ["DEFAULT_BLOCKING_TIMEOUT", "BlockingDetector", "blocking_timeout", "start_detector"]

log = logging.getLogger(__name__)

#: Faust's default when debug mode is on and ``blocking_timeout`` is not set (seconds).
DEFAULT_BLOCKING_TIMEOUT = 10.0


class BlockingDetector(_ModeBlockingDetector):
    """mode's detector, logging the blocked stack instead of raising into it."""

    logger = log

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        stack = "".join(traceback.format_stack(frame))
        log.warning(
            "Blocking detected: the event loop has not run for more than %.3gs "
            "(blocking_timeout). Agents, heartbeats and commits wait meanwhile. "
            "It is running:\n%s", self.timeout, stack,
        )
        self._reset_signal()


def blocking_timeout(conf: Any) -> float | None:
    """The detector's timeout for these settings, or None when it is off (debug mode off)."""
    if not conf.debug:
        return None
    value = conf.blocking_timeout
    return float(value) if value else DEFAULT_BLOCKING_TIMEOUT


async def start_detector(conf: Any) -> BlockingDetector | None:
    """Start the detector if the settings ask for it and this process can run it.

    ``SIGALRM`` exists only on Unix, and only the main thread may install a
    signal handler: elsewhere the worker runs without the detector and says so.
    """
    timeout = blocking_timeout(conf)
    if timeout is None:
        return None
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        log.warning("blocking detector not started: it needs SIGALRM in the main thread")
        return None
    detector = BlockingDetector(timeout)
    await detector.start()
    log.info("blocking detector on: the loop blocked for more than %.3gs is logged", timeout)
    return detector
