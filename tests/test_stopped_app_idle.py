"""A graceful stop leaves none of the runtime's tasks running (``stopped-app-idle``).

The check caught two leaks of the production driver under ``--driver
aiokafka`` when it was added: two admin clients started at once per worker
start, one never closed (``transport/kafka/lazy_client.py``), and a stop
forced under its deadline left aiokafka's request tasks retrying (produce,
transaction and offset requests, until the delivery timeout). Sweeping more
seeds found two more: the engine's producer drain, after a stop that gave up,
waited on for metadata the closed client never brings; and a client start
cancelled in aiokafka's bootstrap left the bootstrap connection open (its
reader ran on). In the sim driver it catches the ``assigned-while-stopping-taken`` mutant (pinned in
tests/test_planted_mutants.py).
"""

from __future__ import annotations

import pytest

from sim.checks import started_by_the_runtime, stop_left_nothing_running
from sim.runner import SimOptions, run
from tests.pinned_run import run_pinned


def test_the_runtimes_tasks_are_judged_by_their_first_frame_outside_asyncio_and_mode() -> None:
    import asyncio

    import mode

    import detstream

    plumbing = asyncio.tasks.__file__
    assert started_by_the_runtime([mode.services.__file__, plumbing, detstream.app.__file__])
    assert not started_by_the_runtime([plumbing, "/srv/proj/agents.py", detstream.app.__file__])
    assert not started_by_the_runtime([plumbing])


def test_a_violation_names_the_worker_and_cites_the_tasks() -> None:
    import detstream

    left = [("Task 'w1-standby' StandbyReader._run()", [detstream.__file__]),
            ("Task 'mine' _remember()", ["/srv/proj/app.py"])]
    violation = stop_left_nothing_running("w1", left, 12.5)
    assert violation is not None and violation.check == "stopped-app-idle"
    assert "w1's graceful stop returned at t=12.500s with 1 of the runtime's tasks" in violation.message
    assert violation.evidence == ["Task 'w1-standby' StandbyReader._run()"]
    assert stop_left_nothing_running("w1", left[1:], 12.5) is None


def test_the_programs_own_tasks_die_with_the_process_unjudged() -> None:
    report = run("tests/apps/lingering_task.py", SimOptions(seed=1, workers=1, duration=5.0, faults="none"))
    assert report.ok, report.violations
    killed = [e for e in report.trace.events if e.kind == "exit-killed"]
    assert [(e.actor, len(e.fields["tasks"])) for e in killed] == [("w1", 3)]


@pytest.mark.parametrize("name,faults,seed", [
    ("word_count", "default", 1),  # each start made two admin clients; one was never closed
    ("take_batches", "chaos", 1),  # w1 leaves cut off: its forced stop left produce requests retrying
    ("windowed_lists", "chaos", 1),  # ... and a transaction commit waiting for them
    ("take_batches", "default", 14),  # the engine's drain waited for a closed client's metadata
    ("proj", "default", 15),  # a start cancelled in aiokafka's bootstrap left its connection open
])
def test_the_production_driver_leaves_nothing_running_after_a_stop(name: str, faults: str, seed: int) -> None:
    outcome = run_pinned(name, faults, seed)
    assert outcome["ok"], outcome["violations"]
    assert "exit-killed" not in outcome["kinds"]
