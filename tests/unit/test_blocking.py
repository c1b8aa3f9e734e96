"""The blocking detector on a real asyncio loop (never the simulator's).

``time.sleep`` in a coroutine is the behaviour under test: it blocks the
loop the way a synchronous client or a CPU-heavy agent would.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from types import SimpleNamespace

import pytest

import detstream
from detstream.blocking import DEFAULT_BLOCKING_TIMEOUT, blocking_timeout, start_detector


def test_the_detector_runs_only_in_debug_mode_with_fausts_default():
    assert blocking_timeout(SimpleNamespace(debug=False, blocking_timeout=1.0)) is None
    assert blocking_timeout(SimpleNamespace(debug=True, blocking_timeout=None)) == 10.0
    assert DEFAULT_BLOCKING_TIMEOUT == 10.0
    assert blocking_timeout(SimpleNamespace(debug=True, blocking_timeout=0.25)) == 0.25


def test_blocked_loop_is_logged_with_the_blocking_frame_and_the_code_goes_on(caplog):
    conf = SimpleNamespace(debug=True, blocking_timeout=0.2)
    finished = []

    async def agent_that_blocks():
        time.sleep(0.7)  # the loop is stuck here: this frame must be in the warning
        finished.append(True)

    async def main():
        detector = await start_detector(conf)
        assert detector is not None
        try:
            await asyncio.sleep(0.05)
            await agent_that_blocks()
            await asyncio.sleep(0.05)
        finally:
            await detector.stop()

    with caplog.at_level(logging.WARNING, logger="detstream.blocking"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if "Blocking detected" in r.getMessage()]
    assert warnings, caplog.text
    message = warnings[0].getMessage()
    assert "more than 0.2s" in message
    assert "in agent_that_blocks" in message and "time.sleep(0.7)" in message
    assert finished == [True]  # logged, not raised into the agent (mode would raise Blocking)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # disarmed on stop


def test_a_loop_that_does_not_block_logs_nothing(caplog):
    # Real time: a bound ten times the loop's longest step, so that a busy machine (the
    # process not scheduled for a while) is not taken for a blocked loop.
    async def main():
        detector = await start_detector(SimpleNamespace(debug=True, blocking_timeout=1.0))
        for _ in range(10):
            await asyncio.sleep(0.03)
        await detector.stop()

    with caplog.at_level(logging.WARNING, logger="detstream.blocking"):
        asyncio.run(main())
    assert "Blocking detected" not in caplog.text


def test_debug_off_starts_nothing():
    async def main():
        return await start_detector(SimpleNamespace(debug=False, blocking_timeout=0.1))

    assert asyncio.run(main()) is None


def test_an_app_in_debug_mode_under_the_simulator_leaves_sigalrm_alone():
    """Only ``detstream worker`` starts the detector; the simulator has no signals."""
    sim_testing = pytest.importorskip("sim.testing")
    before = signal.getsignal(signal.SIGALRM)

    async def main(cluster):
        app = detstream.App("debug-sim", broker="sim://", debug=True, blocking_timeout=0.1)
        await app.start()
        await asyncio.sleep(5)
        await app.stop()

    sim_testing.simulate(main, seed=1)
    assert signal.getsignal(signal.SIGALRM) == before
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
