"""``app.table_route`` / ``topic_route`` and ``app.router``: a view answered by the worker holding the key."""

import asyncio
import socket

import pytest

import detstream
from detstream.errors import InvalidArgument
from detstream.web import Request
from detstream.web.router import ROUTED_HEADER
from detstream.web.server import WebServer, forward_request
from sim.cluster import ClusterConfig
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]


def word_count(name):
    """Faust's word_count shape: words keyed by themselves, counted in a table, one routed page."""
    app = detstream.App("routes", broker="sim://", topic_partitions=4,
                        canonical_url=f"http://{name}:6066")
    app.client_name = name
    words = app.topic("words", key_type=str, value_type=str)
    counts = app.Table("counts", default=int)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1

    @app.page("/count/{word}/")
    @app.table_route(table=counts, match_info="word")
    async def get_count(web, request, word):
        return web.json({"word": word, "count": counts[word], "by": name})

    @app.page("/where/")
    @app.topic_route(topic=words, query_param="word")
    async def where(web, request):
        return web.json({"by": name})

    return app, words


def in_process(apps):
    """A forward that reaches the other app's views in-process (no sockets under the simulator)."""

    async def forward(url, request):
        headers = {**request.headers, ROUTED_HEADER: "1"}
        target = request.path + (f"?{request.query_string}" if request.query_string else "")
        return await apps[url].web.client().request(request.method, target, headers=headers)

    return forward


def test_each_key_is_answered_by_the_worker_holding_it_from_either_worker():
    async def main(cluster):
        one, words = word_count("w1")
        two, _ = word_count("w2")
        apps = {"http://w1:6066": one, "http://w2:6066": two}
        for app in apps.values():
            app.router.forward = in_process(apps)
            await app.start()
        await asyncio.sleep(5)
        for word in WORDS:
            await words.send(key=word, value=word)
        await asyncio.sleep(3)
        answers = {}
        for word in WORDS:
            via_one = (await one.web.client().get(f"/count/{word}/")).json()
            via_two = (await two.web.client().get(f"/count/{word}/")).json()
            answers[word] = via_one, via_two, one.router.key_store("counts", word)
        where = (await one.web.client().get("/where/?word=fox")).json()
        fox_url = one.router.external_topic_key_store(words, "fox")
        metadata = one.router.tables_metadata()
        for app in apps.values():
            await app.stop()
        return answers, where, fox_url, metadata

    answers, where, fox_url, metadata = simulate(main, seed=2, config=FAST)
    holders = set()
    for word, (via_one, via_two, url) in answers.items():
        assert via_one == via_two, word  # the same worker answered, whoever was asked
        assert via_one["count"] == 1 and url == f"http://{via_one['by']}:6066"
        holders.add(via_one["by"])
    assert holders == {"w1", "w2"}  # the words are spread: some requests were routed
    assert where == {"by": fox_url.removeprefix("http://").removesuffix(":6066")}
    assert sorted(metadata) == ["http://w1:6066", "http://w2:6066"]
    assert sorted(p for m in metadata.values() for p in m["routes-counts-changelog"]) == [0, 1, 2, 3]


def test_a_routed_request_is_answered_where_it_arrives():
    """The hop header stops a request two workers disagree about from bouncing."""

    async def main(cluster):
        one, words = word_count("w1")
        one.router.forward = None  # never called
        await one.start()
        await asyncio.sleep(3)
        response = await one.web.client().get("/count/fox/", headers={ROUTED_HEADER: "1"})
        await one.stop()
        return response.json()

    assert simulate(main, seed=1, config=FAST) == {"word": "fox", "count": 0, "by": "w1"}


def test_no_owner_known_is_503_and_a_missing_query_param_is_400():
    app, _ = word_count("w1")
    not_started = asyncio.run(app.web.client().get("/count/fox/"))
    assert not_started.status == 503 and "no worker is known" in not_started.json()["error"]
    assert asyncio.run(app.web.client().get("/where/")).status == 400


def test_a_route_needs_a_key_source():
    app, words = word_count("w1")
    with pytest.raises(InvalidArgument, match="needs one of match_info"):
        app.table_route(table=app.tables.tables["counts"])
    with pytest.raises(InvalidArgument, match="not both"):
        app.topic_route(words, "a", query_param="b")


def test_forward_request_proxies_over_http_with_the_hop_header():
    app = detstream.App("proxied", broker="sim://")

    @app.page("/echo/{word}/")
    async def echo(web, request, word):
        return web.json({"word": word, "q": request.query.get("q"), "routed": request.headers.get(ROUTED_HEADER),
                         "body": (await request.text())})

    async def main():
        server = WebServer(app, bind="127.0.0.1", port=0)
        await server.start()
        try:
            request = Request("POST", "/echo/fox/", query_string="q=1", body=b"hi",
                              headers={"Host": "elsewhere"})
            answer = await forward_request(f"http://127.0.0.1:{server.port}", request)
            with socket.socket() as sock:  # a port nobody listens on
                sock.bind(("127.0.0.1", 0))
                free = sock.getsockname()[1]
            from detstream.web import ServiceUnavailable

            with pytest.raises(ServiceUnavailable, match="did not answer"):
                await forward_request(f"http://127.0.0.1:{free}", request)
            return answer
        finally:
            await server.stop()

    answer = asyncio.run(main())
    assert answer.status == 200
    assert answer.json() == {"word": "fox", "q": "1", "routed": "1", "body": "hi"}
