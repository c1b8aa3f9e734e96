"""Coverage-guided search (sim/guided.py): deterministic, and its plans are valid plans."""

import random

from sim.faults import KINDS, FaultPlan, plan_faults
from sim.guided import guided_search, mutate_plan
from sim.runner import SimOptions

WORD_COUNT = "examples/word_count.py"


def test_mutated_plans_are_valid_and_stay_in_the_main_phase():
    options = SimOptions(seed=0, duration=20.0, faults="chaos")
    rng = random.Random(1)
    for seed in range(1, 30):
        plan = mutate_plan(rng, plan_faults(seed, "chaos", 3, 20.0), options)
        again = FaultPlan.from_dict(plan.to_dict())  # what --plan would read back
        assert again.faults == plan.faults
        assert all(f.kind in KINDS and 0.1 <= f.at <= 18.0 for f in plan.faults)
        assert [f.at for f in plan.faults] == sorted(f.at for f in plan.faults)


def test_the_same_search_runs_the_same_plans_and_keeps_rare_runs():
    options = SimOptions(seed=0, duration=8.0, faults="chaos")
    first = guided_search(WORD_COUNT, options, range(1, 3), 4)
    second = guided_search(WORD_COUNT, options, range(1, 3), 4)
    assert [(p.seed, p.plan, p.outcome.sha256) for p in first.probes] == [
        (p.seed, p.plan, p.outcome.sha256) for p in second.probes
    ]
    assert len(first.probes) == 6 and first.corpus  # the first runs reach everything first
    assert any(p.parent is not None for p in first.probes)
    assert any(p.parent is None and p.seed == 3 for p in first.probes)  # a fresh seed in between
