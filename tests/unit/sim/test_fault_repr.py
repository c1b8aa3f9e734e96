"""A printed fault plan is Python: pasted after its import, it rebuilds an equal plan."""

import re

import pytest
from hypothesis import given, settings

from sim.faults import REPR_IMPORT, Fault, FaultPlan, plan_faults
from sim.strategies import fault_plans


def evaluate(text: str) -> object:
    """``text`` run as the printed import says, as a user pasting it would."""
    namespace: dict = {}
    exec(REPR_IMPORT, namespace)
    return eval(text, namespace)


@pytest.mark.parametrize("profile", ["none", "default", "chaos"])
@pytest.mark.parametrize("seed", [1, 7, 42, 1234])
def test_the_repr_of_a_drawn_plan_rebuilds_it(profile, seed):
    plan = plan_faults(seed, profile, 3, 30.0)
    assert evaluate(repr(plan)) == plan


def test_a_fault_shows_only_what_differs_from_the_defaults():
    fault = Fault(6.733, "crash", "w3", 10.328, after_commit=0.117)
    assert repr(fault) == "Fault(at=6.733, kind='crash', worker='w3', downtime=10.328, after_commit=0.117)"
    unusual = Fault(1.0, "delay", "w1", 2.0, latency=0.5, loss=0.25, at_assignment=True, unreachable=True)
    assert evaluate(repr(unusual)) == unusual


def test_a_falsifying_plan_from_hypothesis_is_printed_pasteable():
    @settings(max_examples=50, database=None, print_blob=False)
    @given(plan=fault_plans(min_faults=2))
    def every_plan_is_empty(plan):
        assert not plan.faults

    with pytest.raises(AssertionError) as failure:
        every_plan_is_empty()
    report = "\n".join(getattr(failure.value, "__notes__", []))
    printed = re.search(r"plan=(FaultPlan\(.*\)),", report)
    assert printed, report
    plan = evaluate(printed.group(1))
    assert isinstance(plan, FaultPlan) and len(plan.faults) == 2
    assert "_plan(" not in report
