"""Guide: "@app.agent() -- Define a new stream processor" and "Agent Arguments"."""

import asyncio

import mode
import pytest

import detstream as faust
from detstream.cli.send import plan_send, send_records
from detstream.errors import TableWriteError
from detstream.loader import load_isolated

from .helpers import python as run_python
from .helpers import run_app, write_module

AGENT_PY = """
    # examples/agent.py
    import detstream as faust

    app = faust.App('stream-example', broker='sim://'{extra})

    @app.agent()
    async def myagent(stream):
        \"\"\"Example agent.\"\"\"
        async for value in stream:
            print(f'MYAGENT RECEIVED -- {{value!r}}')
            yield value

    if __name__ == '__main__':
        app.main()
"""


@pytest.fixture
def agent_py(tmp_path):
    write_module(tmp_path, "examples/agent.py", AGENT_PY.format(extra=""))
    return tmp_path


def test_faust_agents_lists_the_generated_topic(agent_py):
    out = run_python("examples/agent.py", "agents", cwd=agent_py)
    assert out.returncode == 0, out.stderr
    rows = [line.split() for line in out.stdout.splitlines()]
    assert ["@myagent", "stream-example-examples.agent.myagent", "Example", "agent."] in rows


def test_the_topic_name_comes_from_id_version_and_the_agents_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_module(tmp_path, "examples/agent.py", AGENT_PY.format(extra=", version=2"))
    _, app = load_isolated("examples/agent.py")
    (agent,) = app.agents.values()
    assert agent.name == "examples.agent.myagent"
    assert agent.channel.get_topic_name() == "stream-example-v2-examples.agent.myagent"


def test_send_at_myagent_hello_reaches_the_agent(agent_py, monkeypatch, capsys):
    monkeypatch.chdir(agent_py)
    _, app = load_isolated("examples/agent.py")

    async def body(cluster):
        await asyncio.sleep(1)
        await send_records(app, plan_send(app, "@myagent", "hello"))
        await asyncio.sleep(3)

    run_app(app, body)
    # the guide shows b'hello' (a raw topic); Faust's default json value serializer gives 'hello'
    assert capsys.readouterr().out.splitlines() in (["MYAGENT RECEIVED -- b'hello'"],
                                                    ["MYAGENT RECEIVED -- 'hello'"])


def test_name_can_be_given():
    app = faust.App("names", broker="sim://")

    @app.agent(name="proj.agents.add")
    async def add(stream):
        async for _ in stream:
            pass

    assert add.name == "proj.agents.add" and "proj.agents.add" in app.agents
    assert add.channel.get_topic_name() == "names-proj.agents.add"


def test_channel_is_what_the_agent_consumes():
    app = faust.App("channels", broker="sim://")
    orders = app.topic("orders", value_type=str, internal=True)  # internal: the app creates it
    seen = []

    @app.agent(orders)
    async def process(stream):
        async for value in stream:
            seen.append(value)

    async def body(cluster):
        await asyncio.sleep(1)
        await orders.send(value="o-1")
        await asyncio.sleep(2)

    run_app(app, body)
    assert process.channel is orders and seen == ["o-1"]


def test_concurrency_processes_events_at_the_same_time_and_out_of_order():
    app = faust.App("rss", broker="sim://")
    feeds = app.channel()
    done = []

    @app.agent(feeds, concurrency=3)
    async def fetch(stream):
        async for seconds in stream:
            await asyncio.sleep(seconds)  # a slow feed does not hold up the others
            done.append(seconds)

    async def body(cluster):
        await asyncio.sleep(1)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for seconds in (3, 1, 2):
            await feeds.send(value=seconds)
        await asyncio.sleep(5)
        return start

    run_app(app, body)
    assert done == [1, 2, 3]  # three at once: finished in order of duration, not of arrival


def test_concurrent_agents_may_read_tables_but_not_modify_them():
    app = faust.App("concurrent-tables", broker="sim://")
    counts = app.Table("counts", default=int)
    events = app.topic("events", value_type=str, internal=True)
    errors, reads = [], []

    @app.agent(events, concurrency=2)
    async def count(stream):
        async for value in stream:
            reads.append(counts[value])
            try:
                counts[value] += 1
            except TableWriteError as exc:
                errors.append(str(exc))

    async def body(cluster):
        await asyncio.sleep(1)
        await events.send(value="x")
        await asyncio.sleep(2)

    run_app(app, body)
    assert reads == [0]
    assert errors and "concurrency" in errors[0]


def test_sinks_get_every_yielded_value():
    app = faust.App("sinks", broker="sim://")
    source = app.channel()
    out_topic = app.topic("sink-out", value_type=int, internal=True)
    sync_seen, async_seen, agent_seen, topic_seen = [], [], [], []

    @app.agent()
    async def downstream(stream):
        async for value in stream:
            agent_seen.append(value)

    @app.agent(out_topic)
    async def topic_reader(stream):
        async for value in stream:
            topic_seen.append(value)

    async def async_sink(value):
        async_seen.append(value)

    @app.agent(source, sink=[downstream, out_topic, sync_seen.append, async_sink])
    async def doubler(stream):
        async for value in stream:
            yield value * 2

    async def body(cluster):
        await asyncio.sleep(1)
        for value in (1, 2, 3):
            await source.send(value=value)
        await asyncio.sleep(3)

    run_app(app, body)
    assert sync_seen == async_seen == [2, 4, 6]
    assert sorted(agent_seen) == sorted(topic_seen) == [2, 4, 6]


def test_on_error_is_called_with_the_agent_and_the_exception():
    app = faust.App("on-error", broker="sim://")
    source = app.channel()
    calls, seen = [], []

    def on_error(agent, exc):
        calls.append((agent.name, type(exc).__name__, str(exc)))

    @app.agent(source, on_error=on_error)
    async def fragile(stream):
        async for value in stream:
            seen.append(value)
            if value == "bad":
                raise KeyError(value)

    async def body(cluster):
        await asyncio.sleep(1)
        for value in ("ok", "bad", "after"):
            await source.send(value=value)
        await asyncio.sleep(3)

    run_app(app, body)
    assert calls == [(fragile.name, "KeyError", "'bad'")]
    assert seen == ["ok", "bad", "after"]  # restarted (OneForOneSupervisor) and went on


@pytest.mark.parametrize(("strategy", "starts", "crashed"), [
    (mode.OneForOneSupervisor, 2 + 1, False),   # only the actor that raised
    (mode.OneForAllSupervisor, 2 + 2, False),   # every actor of the agent
    (mode.CrashingSupervisor, 2, True),         # the worker's app crashes
])
def test_supervisor_strategies(strategy, starts, crashed):
    app = faust.App("supervisors", broker="sim://")
    source = app.channel()
    started = []

    @app.agent(source, concurrency=2, supervisor_strategy=strategy)
    async def fragile(stream):
        started.append(stream.concurrency_index)
        async for value in stream:
            if value == "bad":
                raise RuntimeError(value)

    async def body(cluster):
        await asyncio.sleep(1)
        await source.send(value="bad")
        await asyncio.sleep(3)

    run_app(app, body)
    assert len(started) == starts
    assert app.crashed is crashed


def test_extra_keyword_arguments_configure_the_automatic_topic():
    app = faust.App("agent-kwargs", broker="sim://")

    @app.agent(partitions=3, value_type=int, retention=3600.0)
    async def numbers(stream):
        async for _ in stream:
            pass

    topic = numbers.channel
    assert topic.partitions == 3
    assert topic.schema.value_type is int
    assert topic.retention == 3600.0
    assert topic.internal  # the agent's own topic is declared by the app


def test_internal_is_a_topic_argument_the_agent_passes_on():
    """"the same arguments as @topic": ``internal`` too (its default for an agent's own topic is True)."""
    app = faust.App("agent-internal", broker="sim://")

    @app.agent(internal=False)
    async def anonymous(stream):
        async for _ in stream:
            pass

    @app.agent("named", internal=False)
    async def named(stream):
        async for _ in stream:
            pass

    assert not anonymous.channel.internal and not named.channel.internal
