"""Agent supervision limits (the strategies' behaviour is in properties/test_supervisors.py)."""

import asyncio

import mode

import detstream
from sim.testing import run_app


def test_an_agent_failing_faster_than_its_restart_limit_crashes_the_app():
    """Past 100 restarts in a second the supervisor gives up; the app must not go quiet."""
    app = detstream.App("restart-storm", broker="sim://")
    starts = []

    @app.agent(supervisor_strategy=mode.OneForOneSupervisor)
    async def always_fails(stream):
        starts.append(1)
        async for _ in stream:
            raise RuntimeError("bad event")

    async def body(cluster):
        await asyncio.sleep(5.0)
        for value in range(150):
            await always_fails.send(value=value)
        await asyncio.sleep(1.0)

    run_app(app, body, seed=1)
    assert app.crashed
    assert 100 <= len(starts) <= 102


def test_a_burst_of_failures_below_the_limit_is_survived():
    app = detstream.App("restart-burst", broker="sim://")
    processed = []

    @app.agent(concurrency=3, supervisor_strategy=mode.OneForAllSupervisor)
    async def sometimes_fails(stream):
        async for value in stream:
            processed.append(value)
            if value % 2:
                raise RuntimeError("odd")

    async def body(cluster):
        await asyncio.sleep(5.0)
        for value in range(20):  # 10 failures x 3 actors restarted: 30 restarts at once
            await sometimes_fails.send(value=value)
        await asyncio.sleep(1.0)

    run_app(app, body, seed=1)
    assert not app.crashed
    assert sorted(processed) == list(range(20))
