"""Guide: "Client-Only Mode" -- ``await app.start_client()`` for RPC without being a worker."""

import asyncio

import detstream as faust

from .helpers import simulate, start_worker


def make_app():
    """The project: every App made from it has the same agents."""
    app = faust.App("client-only", broker="sim://", topic_partitions=2)

    @app.agent()
    async def double(stream):
        async for value in stream:
            yield value * 2

    return app, double


def test_a_client_only_app_asks_agents_and_gets_replies():
    worker, _ = make_app()
    client, double = make_app()

    async def main(cluster):
        await start_worker(worker, cluster, "w1")
        await asyncio.sleep(5)
        await client.start_client()
        try:
            answers = [await double.ask(n, timeout=30) for n in (1, 2, 3)]
            members = len(cluster.group("client-only").members)
            return answers, client.client_only, members, client.conductor.assignment()
        finally:
            await client.stop()
            await worker.stop()

    answers, client_only, members, assignment = simulate(main)
    assert answers == [2, 4, 6]
    assert client_only and members == 1 and not assignment  # not a worker of the group
