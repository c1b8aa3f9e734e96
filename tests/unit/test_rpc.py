"""Agent RPC (rpc.py): ask, ask_nowait, map, join across apps in one simulated cluster.

Each test builds a worker App and one or more client Apps from the same
code (``make_app``), as separate processes of one project would; clients
only ``start_client()`` (or are started by their first ask).
"""

import asyncio
import json

import pytest

import detstream
from detstream.rpc.agent_rpc import (
    CORRELATION_ID_HEADER,
    REPLY_TO_HEADER,
    BarrierState,
    ReplyPromise,
    decode_reply,
    encode_reply,
)
from sim.cluster import ClusterConfig
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class Order(detstream.Record):
    id: int
    item: str


class Receipt(detstream.Record):
    order_id: int
    total: float


def make_app(**settings):
    """One project: the same agents in every App made from it."""
    app = detstream.App("rpc-shop", broker="sim://", topic_partitions=4, **settings)

    @app.agent()
    async def double(stream):
        async for value in stream:
            yield value * 2

    @app.agent()
    async def evens_only(stream):
        async for value in stream:
            if value % 2 == 0:
                yield value

    @app.agent(key_type=str, value_type=Order)
    async def checkout(stream):
        async for order in stream:
            yield Receipt(order_id=order.id, total=len(order.item) * 1.5)

    @app.agent()
    async def slow_echo(stream):
        async for value in stream:
            await asyncio.sleep(value)  # later questions may be answered first
            yield value

    @app.agent()
    async def quadruple(stream):
        async for value in stream:  # an agent asking another agent while it processes
            yield await double.ask(await double.ask(value, timeout=30), timeout=30)

    @app.agent()
    async def regroup(stream):
        async for value in stream.group_by(lambda v: str(v % 2), name="parity"):
            yield f"parity-{value % 2}:{value}"

    return app


def run(body, *, seed=0, workers=1, **settings):
    """Start ``workers`` worker apps, run ``body(cluster, workers, make_client)``, stop all."""

    async def main(cluster):
        started = []
        for _ in range(workers):
            app = make_app(**settings)
            await app.start()
            started.append(app)
        clients = []

        def make_client(**more):
            client = make_app(**{**settings, **more})
            clients.append(client)
            return client

        try:
            return await body(cluster, started, make_client)
        finally:
            for app in clients + started:
                await app.stop()

    return simulate(main, seed=seed, config=FAST)


def agent(app, short_name):
    (found,) = [a for name, a in app.agents.items() if name.endswith(f".{short_name}")]
    return found


# -- ask ---------------------------------------------------------------------------------------
def test_ask_from_a_client_only_app_returns_what_the_agent_yields():
    async def body(cluster, workers, make_client):
        client = make_client()
        await client.start_client()
        assert client.client_only and not client.conductor.assignment()
        answer = await agent(client, "double").ask(21, timeout=30)
        members = len(cluster.group("rpc-shop").members)
        return answer, client.conf.reply_to, client.conf.reply_to in cluster.topics, members

    answer, reply_to, created, members = run(body)
    assert answer == 42
    assert reply_to.startswith("f-reply-") and created
    # the client never joined the group: the worker is its only member
    assert members == 1


def test_ask_starts_the_client_by_itself_and_records_round_trip():
    async def body(cluster, workers, make_client):
        client = make_client()  # not started: ask() starts it as a client
        receipt = await agent(client, "checkout").ask(Order(id=7, item="book"), key="alice",
                                                      timeout=30)
        return receipt, client.client_only

    receipt, client_only = run(body)
    assert receipt == Receipt(order_id=7, total=6.0)
    assert isinstance(receipt, Receipt)
    assert client_only


def test_request_and_reply_records_carry_faust_headers_and_response():
    async def body(cluster, workers, make_client):
        client = make_client()
        double = agent(client, "double")
        promise = await double.ask_nowait(5, key=b"k", correlation_id="cid-5")
        assert isinstance(promise, ReplyPromise) and promise.correlation_id == "cid-5"
        assert await asyncio.wait_for(promise, 30) == 10
        requests = cluster.records(double.channel.get_topic_name())
        replies = cluster.records(client.conf.reply_to)
        return requests, replies, client.conf.reply_to

    requests, replies, reply_to = run(body)
    (request,) = requests
    headers = dict(request.headers)
    assert headers[REPLY_TO_HEADER] == reply_to.encode()
    assert headers[CORRELATION_ID_HEADER] == b"cid-5"
    (reply,) = replies
    assert json.loads(reply.value) == {
        "key": "k", "value": 10, "correlation_id": "cid-5",
        "__faust": {"ns": "@ReqRepResponse"},
    }


def test_interleaved_asks_from_two_clients_each_get_their_own_replies():
    async def body(cluster, workers, make_client):
        first, second = make_client(), make_client()
        await first.start_client()
        await second.start_client()

        async def ask_many(client, base):
            double = agent(client, "double")
            return await asyncio.gather(*[double.ask(base + i, key=str(i).encode(), timeout=30)
                                          for i in range(10)])

        got_first, got_second = await asyncio.gather(ask_many(first, 100), ask_many(second, 1000))
        waiting = first._reply_consumer.waiting + second._reply_consumer.waiting
        return got_first, got_second, first.conf.reply_to, second.conf.reply_to, waiting

    got_first, got_second, reply_first, reply_second, waiting = run(body)
    assert got_first == [2 * (100 + i) for i in range(10)]
    assert got_second == [2 * (1000 + i) for i in range(10)]
    assert reply_first != reply_second
    assert waiting == 0


def test_an_agent_can_ask_another_agent_while_processing():
    async def body(cluster, workers, make_client):
        (worker,) = workers
        client = make_client()
        answers = await agent(client, "quadruple").join([1, 2, 3], timeout=60)
        # the worker asked through a reply consumer of its own, next to its group consumer
        return answers, worker._reply_consumer.topics, worker.client_only

    answers, worker_topics, client_only = run(body)
    assert answers == [4, 8, 12]
    assert len(worker_topics) == 1 and not client_only


def test_ask_timeout_names_the_agent_and_correlation_id():
    async def body(cluster, workers, make_client):
        client = make_client()
        evens = agent(client, "evens_only")
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(asyncio.TimeoutError) as caught:
            await evens.ask(3, correlation_id="odd-one", timeout=5)
        waited = loop.time() - started
        still_answers = await evens.ask(4, timeout=30)
        return str(caught.value), waited, still_answers, client._reply_consumer.waiting

    message, waited, still_answers, waiting = run(body)
    assert "evens_only" in message and "odd-one" in message and "5s" in message
    assert 5 <= waited < 6
    assert still_answers == 4
    assert waiting == 0  # the timed-out request is forgotten


def test_send_with_reply_to_answers_to_that_topic():
    async def body(cluster, workers, make_client):
        client = make_client()
        await client.start_client()
        double = agent(client, "double")
        await client.admin.create_topic("my-replies", partitions=1)
        await double.send(value=4, reply_to="my-replies", correlation_id="manual")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not cluster.records("my-replies") and loop.time() < deadline:
            await asyncio.sleep(0.1)
        return [decode_reply(r.value) for r in cluster.records("my-replies")]

    assert run(body) == [("manual", 8)]


# -- map / join --------------------------------------------------------------------------------
def test_join_returns_replies_in_input_order_though_they_arrive_out_of_order():
    async def body(cluster, workers, make_client):
        client = make_client()
        slow = agent(client, "slow_echo")
        values = [5, 1, 3, 0, 2]
        keyed = [(str(v).encode(), v) for v in values]  # several partitions: answered in parallel
        arrived = [v async for v in slow.kvmap(keyed, timeout=30)]
        joined = await slow.kvjoin(keyed, timeout=30)
        return arrived, joined

    arrived, joined = run(body)
    assert joined == [5, 1, 3, 0, 2]
    assert sorted(arrived) == [0, 1, 2, 3, 5]
    assert arrived != [5, 1, 3, 0, 2]  # map yields as replies arrive


def test_map_and_join_with_one_key_and_async_input():
    async def body(cluster, workers, make_client):
        client = make_client()
        double = agent(client, "double")

        async def numbers():
            for i in range(6):
                yield i

        mapped = [v async for v in double.map(numbers(), key=b"same", timeout=30)]
        joined = await double.join(range(6), key=b"same", timeout=30)
        empty = await double.join([], timeout=30)
        return mapped, joined, empty

    mapped, joined, empty = run(body)
    assert mapped == [0, 2, 4, 6, 8, 10]  # one key, one partition: in order
    assert joined == [0, 2, 4, 6, 8, 10]
    assert empty == []


def test_join_timeout_says_how_many_replies_are_missing():
    async def body(cluster, workers, make_client):
        client = make_client()
        evens = agent(client, "evens_only")
        with pytest.raises(asyncio.TimeoutError) as caught:
            await evens.join([2, 3, 4, 5], timeout=5)
        return str(caught.value), client._reply_consumer.waiting

    message, waiting = run(body)
    assert "evens_only" in message and "join()" in message
    assert "2 of 4 replies still missing" in message
    assert waiting == 0


def test_replies_follow_the_event_through_group_by():
    async def body(cluster, workers, make_client):
        client = make_client()
        return await agent(client, "regroup").join([1, 2, 3], timeout=30)

    assert run(body) == ["parity-1:1", "parity-0:2", "parity-1:3"]


def test_asks_reach_agents_on_several_workers():
    async def body(cluster, workers, make_client):
        client = make_client()
        joined = await agent(client, "double").kvjoin(
            [(f"key-{i}".encode(), i) for i in range(12)], timeout=30
        )
        owners = [len(w.conductor.assignment()) for w in workers]
        return joined, owners

    joined, owners = run(body, workers=2)
    assert joined == [2 * i for i in range(12)]
    assert all(owners)  # both workers hold partitions, so both answered


# -- lifecycle and settings --------------------------------------------------------------------
def test_reply_create_topic_makes_the_reply_topic_when_the_client_starts():
    async def body(cluster, workers, make_client):
        client = make_client(reply_create_topic=True, reply_to="rpc-shop-replies",
                             reply_expires=3600)
        await client.start_client()
        return cluster.topics.get("rpc-shop-replies")

    topic = run(body)
    assert topic is not None and topic.partitions == 1
    assert topic.config["retention.ms"] == "3600000"


def test_stopping_the_client_fails_pending_asks():
    async def body(cluster, workers, make_client):
        client = make_client()
        evens = agent(client, "evens_only")
        pending = asyncio.ensure_future(evens.ask(1))
        await asyncio.sleep(2)
        await client.stop()
        with pytest.raises(RuntimeError, match="stopped before the reply"):
            await pending
        return True

    assert run(body)


def test_reply_topic_and_correlation_ids_are_seeded_by_the_simulation():
    def once(seed):
        async def body(cluster, workers, make_client):
            client = make_client()
            promise = await agent(client, "double").ask_nowait(1)
            await promise
            return client.conf.reply_to, promise.correlation_id

        return run(body, seed=seed)

    assert once(3) == once(3)
    assert once(3) != once(4)


# -- building blocks ---------------------------------------------------------------------------
def test_reply_wire_format_round_trips_records():
    data = encode_reply(b"k", Receipt(order_id=1, total=2.5), "c1")
    assert decode_reply(data) == ("c1", Receipt(order_id=1, total=2.5))
    assert decode_reply(encode_reply(None, [1, {"a": None}], "c2")) == ("c2", [1, {"a": None}])
    for bad in (None, b"not json", b"[1]", b'{"value": 1}'):
        with pytest.raises(ValueError):
            decode_reply(bad)


def test_barrier_is_done_once_finalized_and_every_reply_is_in():
    async def main():
        barrier = BarrierState("replies")
        barrier.add("a")
        barrier.add("b")
        barrier.fulfill("b", 2)
        assert barrier.get_nowait() == ("b", 2)
        barrier.fulfill("a", 1)
        barrier.fulfill("a", 99)  # a second yield for one request is ignored
        assert not barrier.done()  # not finalized: more requests may come
        barrier.finalize()
        assert barrier.done()
        return [item async for item in barrier.iterate()]

    assert asyncio.run(main()) == [("a", 1)]


def test_the_reply_reader_reads_again_after_a_refused_fetch():
    """A reply topic refused for a while (an ACL being changed) must not end the reading for
    good: every later ask of the process failed ("reading replies failed"), found on the wire
    (rpc_ask, chaos seed 125). The reader tries again, and the asks go on."""
    async def body(cluster, workers, make_client):
        client = make_client()
        await client.start_client()
        double = agent(client, "double")
        first = await double.ask(1, timeout=30)
        conditions = client.transport.link.conditions
        loop = asyncio.get_running_loop()
        conditions.deny_reads(until=loop.time() + 2.0)
        await asyncio.sleep(2.5)
        later = await double.ask(2, timeout=30)
        return first, later, cluster.stats["fetch-denied"]

    first, later, failed = run(body)
    assert (first, later) == (2, 4) and failed >= 1
