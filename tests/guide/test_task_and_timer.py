"""Guide: "@app.task() -- Define a new support task" and "@app.timer() -- Define a new
periodic task" with its ``on_leader`` argument."""

import asyncio

import detstream as faust

from .helpers import run_app, simulate, start_worker, wait_for


def test_a_task_runs_once_when_the_app_is_operational(capsys):
    app = faust.App("tasks", broker="sim://")
    state = {}

    @app.agent(app.topic("in", internal=True))
    async def agent(stream):
        async for _ in stream:
            pass

    @app.task()
    async def mytask():
        print("APP STARTED AND OPERATIONAL")
        state["consumer"] = app.conductor.consumer is not None  # consuming has started
        state["agents"] = all(a._supervisor is not None for a in app.agents.values())

    run_app(app, lambda cluster: asyncio.sleep(5))
    assert capsys.readouterr().out == "APP STARTED AND OPERATIONAL\n"
    assert state == {"consumer": True, "agents": True}


def test_a_timer_runs_every_interval_first_after_one_interval(capsys):
    app = faust.App("timers", broker="sim://")
    fired = []

    @app.timer(30.0)
    async def my_periodic_task():
        print("THIRTY SECONDS PASSED")
        fired.append(asyncio.get_running_loop().time())

    async def body(cluster):
        start = asyncio.get_running_loop().time()
        await asyncio.sleep(95)  # virtual seconds
        return start

    start = run_app(app, body)
    assert [round(t - start) for t in fired] == [30, 60, 90]
    assert capsys.readouterr().out.count("THIRTY SECONDS PASSED") == 3


def make_leader_app(name, ran):
    app = faust.App("leaders", broker="sim://")

    @app.timer(1.0, on_leader=True)
    async def once_in_the_cluster():
        ran.append((name, asyncio.get_running_loop().time()))

    return app


def test_on_leader_timers_run_on_one_worker_at_a_time():
    ran = []
    first, second = make_leader_app("w1", ran), make_leader_app("w2", ran)

    async def main(cluster):
        await start_worker(first, cluster, "w1")
        await start_worker(second, cluster, "w2")
        await asyncio.sleep(20)
        leader = {n for n, _ in ran[-5:]}
        assert len(leader) == 1
        (old,) = leader
        stopping = first if old == "w1" else second
        await stopping.stop()  # the leader leaves: the other one takes over
        mark = len(ran)
        await wait_for(lambda: any(n != old for n, _ in ran[mark:]))
        await asyncio.sleep(5)
        after = {n for n, _ in ran[mark:]}
        await (second if stopping is first else first).stop()
        return old, after

    old, after = simulate(main, seed=7)
    assert after == {"w2" if old == "w1" else "w1"}
    by_second = {}
    for name, at in ran:
        by_second.setdefault(int(at), set()).add(name)
    assert all(len(names) == 1 for names in by_second.values())  # never two at once


def test_faust_timer_and_task_arguments_are_taken():
    """Faust's signatures: ``timer(interval: Seconds, on_leader, traced, name,
    max_drift_correction)`` (a timedelta is Seconds too) and ``task(on_leader, traced)``."""
    from datetime import timedelta

    app = faust.App("faust-arguments", broker="sim://")
    fired, ran = [], []

    @app.timer(timedelta(seconds=10), traced=False, max_drift_correction=0.2)
    async def every_ten():
        fired.append(asyncio.get_running_loop().time())

    @app.task(traced=False)
    async def once():
        ran.append(True)

    run_app(app, lambda cluster: asyncio.sleep(35))
    assert len(fired) == 3 and ran == [True]
    assert [round(b - a, 6) for a, b in zip(fired, fired[1:], strict=False)] == [10.0, 10.0]


def test_an_on_leader_task_runs_on_the_leader_only():
    ran = []

    def make(name):
        app = faust.App("leader-task", broker="sim://")

        @app.task(on_leader=True)
        async def once_in_the_cluster():
            ran.append(name)

        return app

    first, second = make("w1"), make("w2")

    async def main(cluster):
        await start_worker(first, cluster, "w1")
        await start_worker(second, cluster, "w2")
        await asyncio.sleep(10)
        leaders = [app.conf.id for app in (first, second) if app.is_leader()]
        await second.stop()
        await first.stop()
        return leaders

    leaders = simulate(main, seed=3)
    assert len(ran) == 1 and len(leaders) == 1
