"""``agent.test_context()`` (detstream/agent_testing.py): unit-testing an agent without a broker.

Each test runs under a plain ``asyncio.run``; ``test_under_the_simulator`` shows
the same under ``sim.testing.run_sandboxed``.
"""

import asyncio

import mode
import pytest

import detstream
from detstream.errors import ImproperlyConfigured, TableWriteError
from sim.cluster import ClusterConfig
from sim.testing import run_app, run_sandboxed


class Order(detstream.Record):
    id: str
    amount: int


def make_app():
    app = detstream.App("ctx-app", broker="sim://")
    app.sunk = []
    app.totals = app.Table("totals", default=int)
    app.shipped = app.topic("shipped", value_type=Order)
    orders = app.topic("orders", value_type=Order)

    @app.agent(orders, sink=[app.sunk.append])
    async def process(stream):
        async for order in stream:
            if order.amount < 0:
                raise ValueError(f"negative amount in {order.id}")
            app.totals[order.id] += order.amount
            await app.shipped.send(key=order.id, value=order)
            yield order.amount * 2

    @app.agent()
    async def quiet(stream):
        async for _ in stream:
            pass

    app.process, app.quiet = process, quiet
    return app


def test_put_returns_the_processed_event_and_results_hold_what_was_yielded():
    app = make_app()

    async def main():
        async with app.process.test_context() as agent:
            event = await agent.put(Order(id="o1", amount=5), key=b"o1")
            await agent.put(Order(id="o1", amount=2))
            return event, dict(agent.results), agent.sent_offset, agent.processed_offset

    event, results, sent, processed = asyncio.run(main())
    assert event.value == Order(id="o1", amount=5) and event.key == b"o1"
    assert (event.message.topic, event.message.partition, event.message.offset) == ("orders", 0, 0)
    assert results == {0: 10, 1: 4}
    assert (sent, processed) == (2, 2)
    assert app.sunk == [10, 4]  # the agent's own sinks still get the values


def test_tables_and_sends_work_and_are_kept_in_sent():
    app = make_app()

    async def main():
        async with app.process.test_context() as agent:
            await agent.put(Order(id="o1", amount=5), partition=3)
            await agent.put(Order(id="o1", amount=2), partition=3)
            return app.totals.as_dict(), [(r.topic, r.partition, r.key, r.value) for r in agent.sent]

    table, sent = asyncio.run(main())
    assert table == {"o1": 7}
    # the changelog record goes out when the event is done (as at a commit), on its partition
    assert sent[1] == ("ctx-app-totals-changelog", 3, b'"o1"', b"5")
    assert [r[0] for r in sent] == ["shipped", "ctx-app-totals-changelog"] * 2
    assert sent[-2][3] == Order(id="o1", amount=2).dumps()
    assert app._producer is None  # the app is left as it was


def test_an_agent_that_does_not_yield_reports_its_inputs():
    app = make_app()

    async def main():
        async with app.quiet.test_context() as agent:
            await agent.put("a")
            await agent.put("b")
            return dict(agent.results)

    assert asyncio.run(main()) == {0: "a", 1: "b"}


def test_an_error_is_raised_from_put_and_from_every_later_put():
    app = make_app()
    seen = []

    async def main():
        async with app.process.test_context(on_error=lambda a, exc: seen.append(exc)) as agent:
            with pytest.raises(ValueError, match="negative amount in o2"):
                await agent.put(Order(id="o2", amount=-1))
            with pytest.raises(ValueError, match="negative amount in o2"):
                await agent.put(Order(id="o3", amount=1))
        return app.crashed

    assert asyncio.run(main()) is False  # the app does not crash
    assert [str(e) for e in seen] == ["negative amount in o2"]


def test_a_restarting_supervisor_keeps_the_agent_going():
    app = make_app()

    async def main():
        async with app.process.test_context(supervisor_strategy=mode.OneForOneSupervisor) as agent:
            with pytest.raises(ValueError):
                await agent.put(Order(id="bad", amount=-1))
            await agent.put(Order(id="ok", amount=1))
            return dict(agent.results)

    # mode's supervisor restarts within seconds: virtual ones under the simulator
    assert run_sandboxed(main, seed=0) == {0: 2}


def test_put_without_waiting_returns_at_once():
    app = make_app()

    async def main():
        async with app.process.test_context() as agent:
            event = await agent.put(Order(id="o1", amount=1), wait=False)
            before = dict(agent.results)
            await agent.put(Order(id="o2", amount=2))
            return event.value.id, before, dict(agent.results)

    assert asyncio.run(main()) == ("o1", {}, {0: 2, 1: 4})


def test_filtered_values_release_put_and_concurrency_is_kept():
    app = detstream.App("ctx-filter")

    @app.agent(concurrency=3)
    async def evens(stream):
        async for value in stream.filter(lambda v: v % 2 == 0):
            yield value

    async def main():
        async with evens.test_context() as agent:
            for value in range(6):
                await agent.put(value)
            return sorted(agent.results.values())

    assert asyncio.run(main()) == [0, 2, 4]


def test_concurrent_agents_still_may_not_write_tables():
    app = detstream.App("ctx-concurrent")
    table = app.Table("t", default=int)

    @app.agent(concurrency=2)
    async def writer(stream):
        async for value in stream:
            table[value] += 1

    async def main():
        async with writer.test_context() as agent:
            with pytest.raises(TableWriteError, match="concurrency=2"):
                await agent.put("x")

    asyncio.run(main())


def test_a_request_with_reply_to_is_answered():
    app = make_app()

    async def main():
        async with app.process.test_context() as agent:
            await agent.put(Order(id="o1", amount=4), reply_to="replies", correlation_id="c1")
            return [r for r in agent.sent if r.topic == "replies"]

    (reply,) = asyncio.run(main())
    assert b'"correlation_id":"c1"' in reply.value.replace(b" ", b"")


def test_under_the_simulator():
    app = make_app()

    async def main():
        async with app.process.test_context() as agent:
            event = await agent.put(Order(id="o1", amount=1))
            await asyncio.sleep(3600)  # an hour of virtual time
            return event.message.timestamp, asyncio.get_running_loop().time(), agent.results[0]

    assert run_sandboxed(main, seed=1) == (1_700_000_000.0, 3600.0, 2)


def test_on_a_started_app_the_real_producer_sends():
    app = make_app()

    async def body(cluster):
        async with app.process.test_context() as agent:
            await agent.put(Order(id="o9", amount=3))
            await asyncio.sleep(1)
            return agent.sent, [r.key for r in cluster.records("shipped")]

    sent, shipped = run_app(app, body, config=ClusterConfig(initial_rebalance_delay=0.1))
    assert sent == [] and shipped == [b"o9"]


def test_misuse_has_clear_errors():
    app = make_app()

    async def outside():
        context = app.process.test_context()
        with pytest.raises(ImproperlyConfigured, match="async with agent.test_context"):
            await context.put(1)

    asyncio.run(outside())
    with pytest.raises(TypeError, match="needs a channel"):
        app.process.test_context(channel="orders")
    with pytest.raises(TypeError, match="needs a mode supervisor class"):
        app.process.test_context(supervisor_strategy="crash")
