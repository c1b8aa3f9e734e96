"""Hypothesis tools for simulations: fault plan strategies and strategy-fed clients."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detstream.errors import InvalidArgument
from sim.faults import KINDS
from sim.runner import SimOptions, run
from sim.strategies import SMALL_KEYS, draw, fault_plans, inputs

WORD_COUNT = "examples/word_count.py"
SENTENCES = st.lists(st.text("ab ", min_size=1, max_size=10), min_size=3, max_size=30)


def test_draw_is_a_function_of_the_seed():
    strategy = st.lists(st.integers(), min_size=1)
    assert draw(strategy, 7) == draw(strategy, 7)
    assert len({tuple(draw(strategy, seed)) for seed in range(10)}) > 5


def test_draw_refuses_what_is_not_a_strategy():
    with pytest.raises(TypeError, match="hypothesis strategy"):
        draw([1, 2], 1)


@given(records=inputs())
def test_inputs_are_small_integers_by_default(records):
    assert 1 <= len(records) <= 40 and all(0 <= value <= 5 for value in records)


@given(
    plain=inputs(keys=True, max_size=5),
    named=inputs(st.sampled_from("xy"), keys=("a", "b"), min_size=0),
    drawn=inputs(keys=st.integers(0, 1), max_size=3),
)
def test_inputs_with_keys_are_key_value_pairs(plain, named, drawn):
    assert all(key in SMALL_KEYS and 0 <= value <= 5 for key, value in plain)
    assert all(key in "ab" and value in "xy" for key, value in named)
    assert all(key in (0, 1) for key, _ in drawn)


@given(plan=fault_plans(workers=2, duration=10.0, kinds=("crash", "join", "stall"), max_faults=6))
def test_generated_plans_are_ordered_and_name_fresh_workers_for_joins(plan):
    times = [fault.at for fault in plan.faults]
    assert times == sorted(times) and all(1.0 <= t <= 8.0 for t in times)
    joined = [fault.worker for fault in plan.faults if fault.kind == "join"]
    assert joined == [f"w{3 + i}" for i in range(len(joined))]
    assert all(fault.kind in KINDS for fault in plan.faults)
    assert all(fault.downtime > 0 for fault in plan.faults if fault.kind in ("crash", "stall"))


def test_fault_plans_refuses_unknown_kinds():
    with pytest.raises(ValueError, match="subset of"):
        fault_plans(kinds=("meteor",))


def strategy_fed(sim):
    sim.topic("sentences", partitions=4)
    sim.producer("sentences", SENTENCES, every=0.1, name="drawn")


def test_a_client_fed_by_a_strategy_draws_from_the_run_seed():
    first = run(WORD_COUNT, SimOptions(seed=5, duration=10.0), scenario=strategy_fed)
    again = run(WORD_COUNT, SimOptions(seed=5, duration=10.0), scenario=strategy_fed)
    other = run(WORD_COUNT, SimOptions(seed=6, duration=10.0), scenario=strategy_fed)
    assert first.ok and other.ok
    assert first.sha256 == again.sha256
    assert first.sha256 != other.sha256
    assert any(line.startswith("client drawn: produced") for line in first.summary)


def test_a_strategy_of_single_records_is_refused_with_a_hint():
    def scenario(sim):
        sim.topic("sentences", partitions=1)
        sim.producer("sentences", st.text(), name="scalar")

    with pytest.raises(InvalidArgument, match=r"st.lists"):
        run(WORD_COUNT, SimOptions(seed=1, duration=5.0), scenario=scenario)
