"""@app.service / app.service(instance): mode Services started and stopped with the app."""

import asyncio

import pytest
from mode import Service

import detstream
from detstream.errors import InvalidArgument
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)


def run_app(app, body, *, seed=0):
    return sim_testing.run_app(app, body, seed=seed, config=FAST)


def test_service_class_from_the_guide_runs_its_background_task():
    app = detstream.App("service-example", broker="sim://")
    log = []

    @app.service
    class MyService(Service):
        async def on_start(self):
            log.append(("start", asyncio.get_running_loop().time()))

        async def on_stop(self):
            log.append(("stop", None))

        @Service.task
        async def _background_task(self):
            while not self.should_stop:
                log.append(("wake", asyncio.get_running_loop().time()))
                await self.sleep(1.0)

    assert isinstance(MyService, type)  # the decorator returns the class

    async def body(cluster):
        await asyncio.sleep(5.5)
        return [kind for kind, _ in log]

    during = run_app(app, body)
    assert during[0] == "start" and "stop" not in during
    wakes = [t for kind, t in log if kind == "wake"]
    assert len(wakes) == 6
    assert [round(b - a, 6) for a, b in zip(wakes, wakes[1:], strict=False)] == [1.0] * 5
    assert log[-1] == ("stop", None)


def test_service_instance_in_subclass_init_and_at_runtime():
    events = []

    class Tracked(Service):
        def __init__(self, name):
            self.name_ = name
            super().__init__()

        async def on_start(self):
            events.append(("start", self.name_))

        async def on_stop(self):
            events.append(("stop", self.name_))

    class MyApp(detstream.App):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.some_service = self.service(Tracked("init"))

    app = MyApp("svc", broker="sim://")
    assert isinstance(app.some_service, Tracked)

    async def body(cluster):
        assert events == [("start", "init")]
        late = app.service(Tracked("late"))
        assert isinstance(late, Tracked)
        await asyncio.sleep(1)
        assert late.started
        assert events == [("start", "init"), ("start", "late")]

    run_app(app, body)
    assert sorted(events[2:]) == [("stop", "init"), ("stop", "late")]


def test_service_needs_a_mode_service():
    app = detstream.App("svc", broker="sim://")
    with pytest.raises(InvalidArgument, match="mode.Service subclass"):
        app.service(int)
    with pytest.raises(InvalidArgument, match="mode.Service class or instance"):
        app.service(object())
