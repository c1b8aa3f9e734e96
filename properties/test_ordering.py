"""Ordering: whatever faults hit the workers, each key's events come out in input order.

The relay app copies keyed steps ``(key, seq)`` to an output topic. Hypothesis
generates the input (which keys, how interleaved) and the fault plan (kill -9s,
graceful restarts, zombie stalls, joins and leaves); each run is a full
simulation with the runner's built-in checks, then a final read of the output
topic (read_committed, as a downstream consumer sees it).
"""

from __future__ import annotations

import json
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from sim.runner import SimOptions, run
from sim.strategies import fault_plans, seeds

KINDS = ("crash", "restart", "stall", "join", "leave")
DURATION = 20.0
PLANS = fault_plans(duration=DURATION, kinds=KINDS, min_faults=1)

keys = st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=80)


def spread(count: int) -> float:
    """Space the input over most of the run, so faults land while it is processed."""
    return round(0.7 * DURATION / max(count, 1), 3)


def feed(key_order: list[str]):
    """A scenario: one client producing ``(key, {key, seq})`` with per-key sequence numbers."""
    counters: dict[str, int] = defaultdict(int)
    records = []
    for key in key_order:
        records.append((key, {"key": key, "seq": counters[key]}))
        counters[key] += 1

    final_read: dict[str, list[int]] = defaultdict(list)

    def scenario(sim):
        sim.topic("steps", partitions=4)
        sim.producer("steps", records, keyed=True, every=spread(len(records)))

        @sim.check
        def read_output(result):
            for record in result.records("relayed"):
                step = json.loads(record.value)
                final_read[step["key"]].append(step["seq"])

    return scenario, dict(counters), final_read


@settings(max_examples=40)
@given(key_order=keys, plan=PLANS, seed=seeds())
def test_exactly_once_output_has_each_step_once_in_order(key_order, plan, seed):
    scenario, counts, out = feed(key_order)
    options = SimOptions(seed=seed, duration=DURATION, plan=plan)
    report = run("properties/apps/relay_exactly_once.py", options, scenario=scenario)
    assert report.ok, report.violations
    assert out == {key: list(range(n)) for key, n in counts.items()}


@settings(max_examples=40)
@given(key_order=keys, plan=PLANS, seed=seeds())
def test_at_least_once_output_only_repeats_by_replaying_from_an_earlier_step(key_order, plan, seed):
    scenario, counts, out = feed(key_order)
    options = SimOptions(seed=seed, duration=DURATION, plan=plan)
    report = run("properties/apps/relay_at_least_once.py", options, scenario=scenario)
    assert report.ok, report.violations
    assert set(out) == set(counts)
    for key, seqs in out.items():
        assert seqs[0] == 0, (key, seqs)
        # each step follows its predecessor, or a crash made the relay resume
        # from an earlier (committed) step and replay from there
        assert all(b == a + 1 or b <= a for a, b in zip(seqs, seqs[1:], strict=False)), (key, seqs)
        assert max(seqs) == counts[key] - 1, (key, seqs)
