"""Guide: "app.channel() -- Create a local channel" and its arguments."""

import asyncio

import pytest

import detstream as faust

from .helpers import run_app


class MyModel(faust.Record):
    x: int


class MyValueModel(faust.Record):
    name: str
    value: float


def test_a_timer_populates_a_channel_an_agent_reads(capsys):
    app = faust.App("channel", broker="sim://")
    channel = app.channel(value_type=MyModel)

    @app.agent(channel)
    async def process(stream):
        async for event in stream:
            print(f"Received: {event!r}")

    @app.timer(1.0)
    async def populate():
        # The guide writes channel.send(MyModel(303)); send takes keyword arguments
        # only, in Faust as here (see test_send_takes_keyword_arguments).
        await channel.send(value=MyModel(303))

    run_app(app, lambda cluster: asyncio.sleep(3.5))  # timers fire at 1, 2 and 3 s
    out = capsys.readouterr().out.splitlines()
    assert out == [f"Received: {MyModel(303)!r}"] * 3


def test_channel_arguments():
    app = faust.App("channel-args", broker="sim://", stream_buffer_maxsize=50)
    channel = app.channel(key_type=bytes, value_type=MyValueModel)
    assert (channel.key_type, channel.value_type) == (bytes, MyValueModel)
    assert channel.maxsize == 50  # the stream_buffer_maxsize setting
    assert app.channel(value_serializer="raw").schema.value_serializer == "raw"


def test_maxsize_makes_put_block_until_something_consumes():
    app = faust.App("channel-full", broker="sim://")
    channel = app.channel(maxsize=2)

    async def body(cluster):
        buffer = channel.subscribe()  # one consumer, not reading yet
        await channel.put(1)
        await channel.put(2)
        blocked = asyncio.ensure_future(channel.put(3))
        await asyncio.sleep(5)
        still_blocked = not blocked.done()
        await buffer.get()  # something consumes one message...
        await asyncio.wait_for(blocked, 1)  # ...and the put goes through
        return still_blocked, buffer.qsize()

    assert run_app(app, body) == (True, 2)


def test_send_takes_keyword_arguments():
    channel = faust.App("kw", broker="sim://").channel()
    with pytest.raises(TypeError, match="positional"):
        channel.send(MyModel(303))
