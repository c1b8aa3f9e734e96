"""The private details of mode and aiokafka that detstream.compat relies on still exist.

An upgrade of either library that moves one fails here, naming it.
"""

from __future__ import annotations

from importlib.metadata import version

import mode
import pytest
from mode.debug import BlockingDetector

from detstream import compat


def test_the_installed_versions_are_the_ones_compat_was_read_from():
    assert version("mode-streaming").startswith(compat.TESTED_MODE + ".")
    assert version("aiokafka").startswith(compat.TESTED_AIOKAFKA + ".")


@pytest.mark.parametrize("strategy", [mode.OneForOneSupervisor, mode.OneForAllSupervisor])
def test_a_supervisors_restart_budget_can_be_widened(strategy):
    supervisor = strategy(max_restarts=100.0, over=1.0)
    compat.widen_restart_budget(supervisor, 100.0)
    taken = [supervisor._bucket.pour() for _ in range(3)]  # three actors restarted at once
    assert taken == [True, True, True]


def test_the_blocking_detector_hooks_detstream_overrides_exist():
    for name in ("_on_alarm", "_reset_signal"):
        assert callable(getattr(BlockingDetector, name, None)), name
