"""Each simulated worker decodes payloads to its own Record classes, as its own process would."""

from dataclasses import replace

import pytest

from sim.runner import SimOptions, run

RECORD_TYPES = "tests/apps/record_types.py"
OPTIONS = SimOptions(seed=0, duration=15.0, workers=3)


@pytest.mark.parametrize("faults", ["default", "chaos"])
def test_isinstance_dispatch_holds_on_every_worker(faults):
    # With one registry shared by every incarnation, a payload decoded to the class of the
    # worker imported last: isinstance failed on the others (agent-error) and counts fell short.
    decoding = set()
    for seed in (1, 2, 3):
        report = run(RECORD_TYPES, replace(OPTIONS, seed=seed, faults=faults))
        assert report.ok, (seed, report.violations)
        errors = [e for e in report.trace.events if e.kind == "agent-error"]
        assert errors == [], (seed, errors[:3])
        decoding |= {(seed, e.actor) for e in report.trace.events if e.kind == "deliver"}
    assert len(decoding) > 3  # several workers decoded in some run
