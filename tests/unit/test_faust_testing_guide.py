"""Faust's testing guide (docs/userguide/testing.rst of faust-streaming 0.15.3), as written there.

Its patterns, in copies of our own: ``agent.test_context()`` over an agent
that repartitions with ``group_by`` and writes a table, the pytest fixture
``app.loop = loop; app.finalize(); app.conf.store = 'memory://';
app.flow_control.resume()``, mocking another agent with ``unittest.mock.patch``
and a topic with ``monkeypatch``, what ``agent.results`` holds for agents
that yield and that do not (decided by what runs), and sinks on an agent that
never yields. pytest-asyncio is not used: each test runs its coroutine with
``asyncio.run``, as the guide's first example does.
"""

import asyncio
from unittest.mock import AsyncMock, Mock, patch

import pytest

import detstream as faust
from detstream.errors import ImproperlyConfigured

# -- the guide's first example: group_by and a table ------------------------------------------


class Order(faust.Record, serializer="json"):
    account_id: str
    product_id: str
    amount: int
    price: float


def make_order_app():
    app = faust.App("test-example-guide")
    orders_topic = app.topic("orders", value_type=Order)
    orders_for_account = app.Table("order-count-by-account", default=int)

    @app.agent(orders_topic)
    async def order(orders):
        async for order in orders.group_by(Order.account_id):
            orders_for_account[order.account_id] += 1
            yield order

    return app, order, orders_for_account


def test_the_first_example_group_by_and_a_table_under_test_context():
    app, order_agent, orders_for_account = make_order_app()

    async def test_order():
        async with order_agent.test_context() as agent:
            order = Order(account_id="1", product_id="2", amount=1, price=300)
            await agent.put(order)
            # at this point the agent already updated the table
            assert orders_for_account[order.account_id] == 1
            await agent.put(order)
            assert orders_for_account[order.account_id] == 2
            return dict(agent.results)

    async def run_tests():
        app.conf.store = "memory://"  # tables must be in-memory
        return await test_order()

    results = asyncio.run(run_tests())
    order = Order(account_id="1", product_id="2", amount=1, price=300)
    assert results == {0: order, 1: order}


def test_group_by_under_test_context_keys_by_the_new_key():
    app = faust.App("test-example-keys")
    topic = app.topic("orders", value_type=Order)
    keys = []

    @app.agent(topic)
    async def by_account(orders):
        async for event in orders.group_by(lambda o: o.account_id.upper(), name="acct").events():
            keys.append(event.key)

    async def main():
        async with by_account.test_context() as agent:
            await agent.put(Order(account_id="a", product_id="p", amount=1, price=1.0), key=b"x")
        return keys

    assert asyncio.run(main()) == ["A"]


# -- "Testing with pytest": the fixture, a mocked agent -----------------------------------------

app = faust.App("example-test-agent-call")


@app.agent()
async def foo(stream):
    async for value in stream:
        await bar.send(value)
        yield value


@app.agent()
async def bar(stream):
    async for value in stream:
        yield value + "YOLO"


def fixture_app(loop):
    """The guide's ``test_app`` fixture, line by line."""
    app.loop = loop
    app.finalize()
    app.conf.store = "memory://"
    app.flow_control.resume()
    return app


def mock_coro(return_value=None, **kwargs):
    """Create mock coroutine function (the guide's)."""
    async def wrapped(*args, **kwargs):
        return return_value
    return Mock(wraps=wrapped, **kwargs)


def test_foo_with_bar_mocked():
    async def test_foo():
        test_app = fixture_app(asyncio.get_running_loop())
        assert test_app.flow_control.is_active() and test_app.finalized
        with patch(__name__ + ".bar") as mocked_bar:
            mocked_bar.send = mock_coro()
            async with foo.test_context() as agent:
                await agent.put("hey")
                mocked_bar.send.assert_called_with("hey")

    asyncio.run(test_foo())


def test_bar_results_by_offset():
    async def test_bar():
        fixture_app(asyncio.get_running_loop())
        async with bar.test_context() as agent:
            event = await agent.put("hey")
            assert agent.results[event.message.offset] == "heyYOLO"

    asyncio.run(test_bar())


# -- "Setting up a test suite": a pure consumer, its dependencies mocked -------------------------


class SmallOrder(faust.Record, serializer="json"):
    account_id: str
    amount: int


async def notify_warehouse(order):
    """Pretend this calls an external HTTP service."""
    raise AssertionError("the test must mock this")


orders_app = faust.App("orders-app-guide", broker="kafka://localhost:9092")
orders_topic = orders_app.topic("orders", value_type=SmallOrder)
shipped_topic = orders_app.topic("shipped", value_type=SmallOrder)
orders_for_account = orders_app.Table("order-count-by-account", default=int)


@orders_app.agent(orders_topic)
async def track_order(orders):
    async for order in orders:  # no yield: a pure consumer
        orders_for_account[order.account_id] += 1
        await notify_warehouse(order)
        await shipped_topic.send(value=order)


@pytest.fixture()
def shipped(monkeypatch):
    send = AsyncMock()
    monkeypatch.setattr(shipped_topic, "send", send)
    return send


@pytest.fixture()
def warehouse(monkeypatch):
    notify = AsyncMock()
    monkeypatch.setattr(__import__(__name__, fromlist=["x"]), "notify_warehouse", notify)
    return notify


def _with_app(test):
    async def run():
        orders_app.loop = asyncio.get_running_loop()
        orders_app.finalize()
        orders_app.conf.store = "memory://"
        orders_app.flow_control.resume()
        await test()

    asyncio.run(run())


def test_counts_notifies_forwards_and_results_hold_inputs(shipped, warehouse):
    async def test():
        async with track_order.test_context() as agent:
            first = SmallOrder(account_id="A", amount=1)
            await agent.put(first)
            assert orders_for_account["A"] == 1
            await agent.put(SmallOrder(account_id="A", amount=2))
            assert orders_for_account["A"] == 2
            warehouse.assert_awaited_with(SmallOrder(account_id="A", amount=2))
            shipped.assert_awaited_with(value=SmallOrder(account_id="A", amount=2))
            # for a sink-less agent ``results`` holds what went in
            assert agent.results[0] == first

    _with_app(test)


# -- what ``results`` holds is decided by what runs ---------------------------------------------


def test_results_hold_outputs_of_agents_that_yield_however_written():
    app = faust.App("results-by-shape")

    async def doubled(stream):
        async for value in stream:
            yield value * 2

    def returns_a_generator(stream):  # a plain function returning an async generator
        return doubled(stream)

    class Tripler:  # a callable object with an async-generator __call__
        async def __call__(self, stream):
            async for value in stream:
                yield value * 3

    plain = app.agent(name="plain")(returns_a_generator)
    obj = app.agent(name="obj")(Tripler())

    async def main():
        outputs = []
        for agent in (plain, obj):
            async with agent.test_context() as ctx:
                await ctx.put(5)
                outputs.append(dict(ctx.results))
        return outputs

    assert asyncio.run(main()) == [{0: 10}, {0: 15}]


def test_an_agent_that_never_yields_cannot_have_sinks():
    app = faust.App("sinkless")

    async def consumer(stream):
        async for _ in stream:
            pass

    with pytest.raises(ImproperlyConfigured, match="Agent must yield to use sinks"):
        app.agent(sink=[print])(consumer)

    def returns_a_coroutine(stream):  # judged when it runs
        return consumer(stream)

    agent = app.agent(sink=[print], name="late")(returns_a_coroutine)

    async def main():
        async with agent.test_context() as ctx:
            await ctx.put(1, wait=False)
            await asyncio.sleep(0.01)
            with pytest.raises(ImproperlyConfigured, match="Agent must yield"):
                await ctx.put(2)

    asyncio.run(main())


def test_a_function_that_returns_neither_fails_when_it_runs():
    app = faust.App("neither")
    agent = app.agent(name="none")(lambda stream: None)

    async def main():
        async with agent.test_context() as ctx:
            with pytest.raises(faust.errors.InvalidArgument, match="async def"):
                await ctx.put(1)

    asyncio.run(main())


def test_leaving_the_context_after_a_slow_agent_finished_its_work():
    app = faust.App("slow-agent")
    processed = []

    @app.agent()
    async def slow_agent(stream):
        async for value in stream:
            await asyncio.sleep(0.01)
            processed.append(value)

    async def main():
        async with slow_agent.test_context() as agent:
            await agent.put("a")
        return processed

    assert asyncio.run(main()) == ["a"]


# -- "Testing and windowed tables" ------------------------------------------------------------------


def test_a_windowed_table_read_relative_to_the_event_put():
    app = faust.App("test-example-windowed")
    orders_topic = app.topic("orders", value_type=Order)
    orders_for_account = app.Table("order-count-by-account", default=int).tumbling(
        3600).relative_to_stream()

    @app.agent(orders_topic)
    async def process_order(orders):
        async for order in orders.group_by(Order.account_id):
            orders_for_account[order.account_id] += 1
            yield order

    async def main():
        app.conf.store = "memory://"
        async with process_order.test_context() as agent:
            order = Order(account_id="1", product_id="2", amount=1, price=300)
            event = await agent.put(order, timestamp=1_700_003_600.0)
            assert orders_for_account["1"].current(event) == 1
            # in the window 3 hours ago there were no orders
            assert orders_for_account["1"].delta(3600 * 3, event) == 0

    asyncio.run(main())
