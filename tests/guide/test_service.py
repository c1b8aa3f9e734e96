"""Guide: "@app.service() -- Define a new service"."""

import asyncio

from mode import Service

import detstream as faust

from .helpers import run_app


def test_a_decorated_service_class_starts_and_stops_with_the_app(capsys):
    # examples/service.py
    app = faust.App("service-example", broker="sim://")

    @app.service
    class MyService(Service):

        async def on_start(self):
            print("MYSERVICE IS STARTING")

        async def on_stop(self):
            print("MYSERVICE IS STOPPING")

        @Service.task
        async def _background_task(self):
            while not self.should_stop:
                print("BACKGROUND TASK WAKE UP")
                await self.sleep(1.0)

    assert isinstance(MyService, type)  # the decorator returns the class
    run_app(app, lambda cluster: asyncio.sleep(3.5))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "MYSERVICE IS STARTING" and lines[-1] == "MYSERVICE IS STOPPING"
    assert 3 <= lines.count("BACKGROUND TASK WAKE UP") <= 5  # once a virtual second


def test_services_added_at_runtime_in_an_app_subclass():
    events = []

    class SomeService(Service):
        async def on_start(self):
            events.append("start")

        async def on_stop(self):
            events.append("stop")

    class MyApp(faust.App):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.some_service = self.service(SomeService())

    app = MyApp("subclass", broker="sim://")
    assert isinstance(app.some_service, SomeService)
    run_app(app, lambda cluster: asyncio.sleep(1))
    assert events == ["start", "stop"]


def test_the_app_is_itself_a_service():
    assert isinstance(faust.App("x"), Service)
