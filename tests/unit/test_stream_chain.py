"""Faust's Stream API reference: the chain of derived streams, ``info``/``clone`` and ``throw``."""

import pytest

import detstream
from detstream.errors import InvalidArgument
from sim.loop import run


class Withdrawal(detstream.Record):
    account_id: str
    amount: int


def _app():
    return detstream.App("chain", broker="kafka://localhost:9092")


def test_the_active_stream_is_the_last_derived_and_the_root_the_first():
    app = _app()
    a = app.topic("withdrawals", value_type=Withdrawal).stream()
    b = a.group_by(Withdrawal.account_id)
    c = b.through("backup_topic")
    assert a.get_active_stream() is c  # the example of Faust's docstring
    assert c.get_root_stream() is a and b.get_root_stream() is a
    assert c.get_active_stream() is c and a.get_root_stream() is a
    d = c.filter(lambda w: w.amount > 10).noack()
    assert a.get_active_stream() is d and d.get_root_stream() is a


def test_info_names_the_settings_and_clone_takes_them_with_changes():
    app = _app()
    stream = app.topic("t", value_type=str).stream()
    info = stream.info()
    assert info["app"] is app and info["channel"] is stream.channel and info["prev"] is None
    assert info["enable_acks"] is True
    clone = stream.clone(enable_acks=False, loop=None)  # Faust-only keys are taken and ignored
    assert clone.channel is stream.channel and clone.enable_acks is False
    assert clone._queue is not stream._queue  # a buffer of its own: it gets every message too
    with pytest.raises(InvalidArgument, match="unknown settings.*colour"):
        stream.clone(colour="red")


def test_throw_raises_in_the_streams_iteration_and_a_channel_throws_to_every_reader():
    async def main():
        app = _app()
        channel = app.channel(value_type=int)
        first, second = channel.stream(), channel.stream()
        await channel.send(value=1)
        await first.throw(KeyError("from throw"))
        seen = []
        with pytest.raises(KeyError, match="from throw"):
            async for value in first:
                seen.append(value)
        await channel.throw(ValueError("to all"))
        with pytest.raises(ValueError, match="to all"):
            async for value in second:
                seen.append(value)
        return seen

    assert run(main()) == [1, 1]


def test_streams_without_a_buffer_refuse_clone_and_throw():
    async def main():
        app = _app()
        merged = app.channel().stream() & app.channel().stream()
        with pytest.raises(InvalidArgument, match="throw"):
            await merged.throw(KeyError())
        with pytest.raises(InvalidArgument, match="clone"):
            merged.clone()

    run(main())
