"""Supervisors: an agent's strategy decides what a failing event restarts.

Hypothesis generates the agent's concurrency, its strategy and a run of
events, some of which make the agent raise. Events are sent one virtual second
apart, so each failure is handled before the next event arrives.

- ``OneForOneSupervisor`` (Faust's default) restarts the one actor that failed;
- ``OneForAllSupervisor`` restarts every actor of the agent;
- ``CrashingSupervisor`` crashes the app (a worker then exits with an error);
- in every case, each event is processed exactly once: a failing event is
  reported and acked, never redelivered, and none after it is lost.
"""

from __future__ import annotations

import asyncio

import mode
from hypothesis import given, settings
from hypothesis import strategies as st

import detstream
from sim.testing import run_app

events = st.lists(st.integers(-3, 20), min_size=1, max_size=25)


def run_agent(strategy: type, concurrency: int, values: list[int]) -> tuple[list, list, object]:
    """Run an agent that raises on negative values; returns (starts, processed, app)."""
    app = detstream.App("supervised", broker="sim://")
    starts: list[int] = []
    processed: list[int] = []

    @app.agent(concurrency=concurrency, supervisor_strategy=strategy)
    async def fragile(stream):
        starts.append(stream.concurrency_index)
        async for value in stream:
            processed.append(value)
            if value < 0:
                raise ValueError(f"negative value {value}")

    async def body(cluster):
        await asyncio.sleep(5.0)  # the group's first rebalance waits 3 virtual seconds
        for value in values:
            await fragile.send(value=value)
            await asyncio.sleep(1.0)

    run_app(app, body, seed=len(values))
    return starts, processed, app


@settings(max_examples=60)
@given(concurrency=st.integers(1, 4), values=events)
def test_one_for_one_restarts_only_the_failed_actor(concurrency, values):
    starts, processed, app = run_agent(mode.OneForOneSupervisor, concurrency, values)
    failures = sum(1 for v in values if v < 0)
    assert len(starts) == concurrency + failures
    assert sorted(starts[:concurrency]) == list(range(concurrency))
    assert processed == values
    assert not app.crashed


@settings(max_examples=60)
@given(concurrency=st.integers(1, 4), values=events)
def test_one_for_all_restarts_every_actor(concurrency, values):
    starts, processed, app = run_agent(mode.OneForAllSupervisor, concurrency, values)
    failures = sum(1 for v in values if v < 0)
    assert len(starts) == concurrency * (1 + failures)
    assert processed == values
    assert not app.crashed


@settings(max_examples=30)
@given(concurrency=st.integers(1, 4), values=events)
def test_crashing_supervisor_crashes_the_app_on_the_first_failure(concurrency, values):
    _, processed, app = run_agent(mode.CrashingSupervisor, concurrency, values)
    first_failure = next((v for v in values if v < 0), None)
    assert app.crashed == (first_failure is not None)
    if first_failure is not None:
        assert isinstance(app.crash_reason, ValueError)
        assert str(first_failure) in str(app.crash_reason)
        assert processed[: processed.index(first_failure) + 1] == values[: values.index(first_failure) + 1]
    else:
        assert processed == values
