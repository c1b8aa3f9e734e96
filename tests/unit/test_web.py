"""Web views (``@app.page``) through the in-process client; built-ins on the simulator."""

import asyncio
import logging
import subprocess
import sys
import textwrap

import pytest

import detstream
from detstream import web
from detstream.errors import InvalidArgument
from detstream.worker import Worker
from sim.cluster import ClusterConfig
from sim.testing import simulate

FAST = ClusterConfig(initial_rebalance_delay=0.1)


class Point(detstream.Record):
    x: int
    y: int = 0


def call(app, method, url, **kwargs):
    """One request through ``app.web.client()`` on a plain event loop (no app started)."""
    return asyncio.run(app.web.client().request(method, url, **kwargs))


# -- function views ----------------------------------------------------------------------------
def test_function_view_gets_query_params_as_a_multidict():
    app = detstream.App("web-fn", broker="sim://")

    @app.page("/path/to/view/")
    async def myview(web, request):
        return web.json({"foo": request.query["foo"], "tags": request.query.getall("tag", []),
                         "method": request.method})

    response = call(app, "GET", "/path/to/view/?foo=a%26b&tag=x&tag=y&tag=")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.json() == {"foo": "a&b", "tags": ["x", "y", ""], "method": "GET"}
    assert call(app, "POST", "/path/to/view/?foo=1").json()["method"] == "POST"


def test_path_params_come_as_match_info_and_keyword_arguments():
    app = detstream.App("web-params", broker="sim://")

    @app.page("/count/{word}/{n:\\d+}/")
    async def count(web, request, word, n):
        return web.json({"word": word, "n": n, "match_info": request.match_info})

    response = call(app, "GET", "/count/a%2Fb c/42/")
    assert response.json() == {"word": "a/b c", "n": "42", "match_info": {"word": "a/b c", "n": "42"}}
    assert call(app, "GET", "/count/w/notanumber/").status == 404
    assert app.web.url_for("count", word="a/b", n=7) == "/count/a%2Fb/7/"


def test_page_returns_the_function_unchanged_and_names_the_view():
    app = detstream.App("web-ret", broker="sim://")

    async def hello(web, request):
        return web.text("hi")

    assert app.page("/hello/")(hello) is hello
    assert app.web.url_for("hello") == "/hello/"
    response = call(app, "GET", "/hello/")
    assert (response.status, response.text, response.content_type) == (200, "hi", "text/plain")


def test_response_helpers():
    app = detstream.App("web-helpers", broker="sim://")

    @app.page("/h/{kind}/")
    async def helper(web, request, kind):
        if kind == "html":
            return web.html("<b>x</b>", status=201)
        if kind == "bytes":
            return web.bytes(b"\x00\x01", content_type="application/x-thing", headers={"X-A": "1"})
        if kind == "record":
            return web.json({"point": Point(x=1), "when": {3, 1, 2}})
        if kind == "error":
            return web.error(409, "conflict", id=7)
        if kind == "none":
            return None
        return web.notfound()

    html = call(app, "GET", "/h/html/")
    assert (html.status, html.content_type, html.text) == (201, "text/html", "<b>x</b>")
    raw = call(app, "GET", "/h/bytes/")
    assert (raw.body, raw.content_type, raw.headers["X-A"]) == (b"\x00\x01", "application/x-thing", "1")
    record = call(app, "GET", "/h/record/").json()
    assert record["point"]["x"] == 1 and record["when"] == [1, 2, 3]
    error = call(app, "GET", "/h/error/")
    assert (error.status, error.json()) == (409, {"error": "conflict", "id": 7})
    assert call(app, "GET", "/h/none/").status == 204
    missing = call(app, "GET", "/h/other/")
    assert (missing.status, missing.json()) == (404, {"error": "Not Found"})


# -- class views ---------------------------------------------------------------------------------
def test_class_view_get_and_post_with_json_body():
    app = detstream.App("web-class", broker="sim://")
    orders = {}

    @app.page("/orders/{id}/", name="order")
    class Order(web.View):
        async def get(self, request, id):
            if id not in orders:
                raise web.NotFound(f"no order {id}", id=id)
            return self.json({"id": id, **orders[id], "self": self.url_for("order", id=id)})

        async def post(self, request, id):
            orders[id] = await request.json()
            return self.json({"created": id}, status=201)

    assert call(app, "GET", "/orders/7/").status == 404
    assert call(app, "GET", "/orders/7/").json() == {"error": "no order 7", "id": "7"}
    created = call(app, "POST", "/orders/7/", json={"qty": 2})
    assert (created.status, created.json()) == (201, {"created": "7"})
    assert call(app, "GET", "/orders/7/").json() == {"id": "7", "qty": 2, "self": "/orders/7/"}
    bad = call(app, "POST", "/orders/8/", data="{not json")
    assert bad.status == 400 and "not valid JSON" in bad.json()["error"]
    head = call(app, "HEAD", "/orders/7/")
    assert (head.status, head.body) == (200, b"")
    delete = call(app, "DELETE", "/orders/7/")
    assert delete.status == 405
    assert delete.headers["Allow"] == "GET, POST, HEAD"


def test_view_errors_answer_with_their_status():
    app = detstream.App("web-errors", broker="sim://")

    @app.page("/v/")
    class Validate(web.View):
        async def post(self, request):
            body = await request.json()
            if "name" not in body:
                raise web.ValidationError("name is required", field="name")
            raise web.WebError("teapot", code=418)

    invalid = call(app, "POST", "/v/", json={})
    assert (invalid.status, invalid.json()) == (400, {"error": "name is required", "field": "name"})
    assert call(app, "POST", "/v/", json={"name": "x"}).status == 418


# -- 404 and 500 -----------------------------------------------------------------------------------
def test_unknown_path_is_404_json_with_a_trailing_slash_hint():
    app = detstream.App("web-404", broker="sim://")

    @app.page("/things/")
    async def things(web, request):
        return web.json([])

    missing = call(app, "GET", "/nothing/here/")
    assert (missing.status, missing.json()) == (404, {"error": "no page at /nothing/here/"})
    assert "did you mean /things/ ?" in call(app, "GET", "/things").json()["error"]


def test_raising_view_is_500_json_with_the_type_and_is_logged(caplog):
    app = detstream.App("web-500", broker="sim://")

    @app.page("/boom/")
    async def boom(web, request):
        raise KeyError("secret-detail")

    @app.page("/wrong/")
    async def wrong(web, request):
        return {"not": "a response"}

    @app.page("/ok/")
    async def ok(web, request):
        return web.json("fine")

    with caplog.at_level(logging.ERROR, logger="detstream.web"):
        response = call(app, "GET", "/boom/")
    assert response.status == 500
    assert response.json() == {"error": "KeyError in view 'boom'", "type": "KeyError"}
    assert "secret-detail" not in response.text  # messages only in debug mode
    assert any("view 'boom' raised on GET /boom/" in r.getMessage() for r in caplog.records)
    wrong_type = call(app, "GET", "/wrong/")
    assert (wrong_type.status, wrong_type.json()["type"]) == (500, "TypeError")
    assert call(app, "GET", "/ok/").json() == "fine"  # the app keeps serving

    debug = detstream.App("web-500-debug", broker="sim://", debug=True)
    debug.page("/boom/")(boom)
    assert call(debug, "GET", "/boom/").json()["detail"] == "'secret-detail'"


# -- registration errors ---------------------------------------------------------------------------
def test_page_registration_errors_are_invalid_argument():
    app = detstream.App("web-reg", broker="sim://")

    async def view(web, request):
        return web.json(1)

    def sync_view(web, request):
        return web.json(1)

    class NotAView:
        async def get(self, request):
            return None

    class Empty(web.View):
        pass

    async def no_param(web, request):
        return web.json(1)

    bad = [
        (lambda: app.page("/x/")(42), "async def view(web, request)"),
        (lambda: app.page("/x/")("not callable"), "got 'not callable'"),
        (lambda: app.page("/x/")(NotAView), "subclass of detstream.web.View"),
        (lambda: app.page("/x/")(Empty), "implements none of"),
        (lambda: app.page("/x/")(sync_view), "needs an async def function"),
        (lambda: app.page("x/"), "starting with '/'"),
        (lambda: app.page("/x/{a/"), "unbalanced braces"),
        (lambda: app.page("/x/{a}/{a}/"), "names {a} twice"),
        (lambda: app.page("/x/{a:(}/"), "bad regex"),
        (lambda: app.page("/x/{item}/")(no_param), "cannot be called as (web, request, item)"),
        (lambda: app.page("/x/", base=int)(view), "must be a View subclass"),
    ]
    for register, message in bad:
        with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")
                           .replace("{", r"\{").replace("}", r"\}")):
            register()
    assert app.web.routes == []

    app.page("/x/")(view)
    with pytest.raises(InvalidArgument, match="defined twice"):
        app.page("/x/", name="other")(view)
    with pytest.raises(InvalidArgument, match="used twice.*give one a name="):
        app.page("/y/")(view)
    app.page("/y/", name="view-y")(view)
    with pytest.raises(InvalidArgument, match="no page named"):
        app.web.url_for("nope")
    with pytest.raises(InvalidArgument, match="takes"):
        app.web.url_for("view", extra=1)


def test_keyword_catch_all_views_accept_any_path_params():
    app = detstream.App("web-kwargs", broker="sim://")

    @app.page("/k/{a}/{b}/")
    async def kw(web, request, **params):
        return web.json(params)

    assert call(app, "GET", "/k/1/2/").json() == {"a": "1", "b": "2"}


# -- built-in endpoints on a running app (simulator) ------------------------------------------------
def test_builtin_endpoints_on_a_running_app_under_simulation():
    app = detstream.App("web-sim", broker="sim://", topic_partitions=4)
    words = app.topic("words", partitions=4, internal=True, value_type=str)
    counts = app.Table("counts", default=int)
    points = app.Table("points", key_type=int, value_type=Point)

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            counts[word] += 1
            points[len(word)] = Point(x=len(word))

    async def main(cluster):
        client = app.web.client()
        before = (await client.get("/")).json()
        await app.start()
        try:
            await asyncio.sleep(1)
            for word in ["a", "bb", "a", "ccc", "a"]:
                await words.send(key=word.encode(), value=word)
            await asyncio.sleep(5)
            responses = {url: await client.get(url) for url in (
                "/", "/assignment/", "/table/", "/table/counts/", "/table/counts/a/",
                "/table/counts/zzz/", "/table/nope/", "/table/points/", "/table/points/3/",
                "/table/points/4/")}
            return before, responses, sorted(app.conductor.assignment())
        finally:
            await app.stop()

    before, r, assignment = simulate(main, seed=1, config=FAST)
    assert before["status"] == "init"
    status = r["/"].json()
    assert status == {"app": "web-sim", "worker": "web-sim", "status": "running", "leader": True,
                      "partitions": len(assignment), "agents": [count.name],
                      "tables": ["counts", "points"]}
    actives = r["/assignment/"].json()["actives"]
    assert sorted((t, p) for t, ps in actives.items() for p in ps) == [
        (tp.topic, tp.partition) for tp in assignment]
    assert actives["words"] == [0, 1, 2, 3]
    assert r["/table/"].json()["counts"] == {"keys": 3, "changelog": "web-sim-counts-changelog",
                                             "help": ""}
    assert r["/table/counts/"].json() == {"a": 3, "bb": 1, "ccc": 1}
    assert r["/table/counts/a/"].json() == {"a": 3}
    assert r["/table/counts/zzz/"].status == 404  # a default=int table does not invent keys
    assert "no key 'zzz' in table 'counts'" in r["/table/counts/zzz/"].json()["error"]
    assert r["/table/nope/"].status == 404
    assert r["/table/nope/"].json()["error"] == "no table 'nope' (tables: counts, points)"
    points_json = r["/table/points/"].json()  # Records as in Faust: fields + __faust metadata
    assert {k: (v["x"], v["y"]) for k, v in points_json.items()} == {"1": (1, 0), "2": (2, 0),
                                                                     "3": (3, 0)}
    assert r["/table/points/3/"].json() == {"3": points_json["3"]}  # "3" finds the int key
    assert r["/table/points/4/"].status == 404


def test_app_pages_take_precedence_over_builtins():
    app = detstream.App("web-override", broker="sim://")

    @app.page("/")
    async def index(web, request):
        return web.text("my index")

    assert call(app, "GET", "/").text == "my index"
    assert call(app, "GET", "/assignment/").status == 200


def test_client_works_inside_a_simulation_with_views_that_await():
    app = detstream.App("web-sim-await", broker="sim://")

    @app.page("/slow/")
    async def slow(web, request):
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(30)  # virtual time: no real wait
        return web.json(loop.time() - start)

    async def main(cluster):
        return (await app.web.client().get("/slow/")).json()

    assert simulate(main, seed=0) == 30


# -- worker settings, banner, import boundaries ---------------------------------------------------
def test_worker_banner_shows_the_web_address_or_that_it_is_off():
    app = detstream.App("web-banner", broker="kafka://localhost:9092", web_host="example.org")
    banner = "\n".join(Worker(app).banner())
    assert "web        http://example.org:6066/ (listening on 0.0.0.0)" in banner
    off = detstream.App("web-off", broker="kafka://localhost:9092", web_enabled=False)
    assert "web        disabled (--without-web" in "\n".join(Worker(off).banner())


def test_import_detstream_does_not_load_aiohttp_but_exposes_web():
    code = textwrap.dedent("""
        import asyncio, sys, detstream
        app = detstream.App("x")

        @app.page("/v/")
        class V(detstream.web.View):
            async def get(self, request):
                return self.json(1)

        assert asyncio.run(app.web.client().get("/v/")).json() == 1
        print("aiohttp" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_class_view_is_made_once_so_its_attributes_last_between_requests():
    # tasks.rst "HTTP Verbs": the counter view keeps self.count between requests, as in Faust
    app = detstream.App("web-counter", broker="sim://")

    @app.page("/count/")
    class counter(web.View):  # noqa: N801 - the guide's name
        count: int = 0

        async def get(self, request):
            return self.json({"count": self.count})

        async def post(self, request):
            self.count += int(request.query["n"])
            return self.json({"count": self.count})

    async def main():
        client = app.web.client()
        await client.post("/count/?n=3")
        await client.post("/count/?n=2")
        return (await client.get("/count/")).json()

    assert asyncio.run(main()) == {"count": 5}
