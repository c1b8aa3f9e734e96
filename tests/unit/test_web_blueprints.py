"""Blueprints and static files (Faust's ``faust.web.Blueprint``), over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys
import textwrap

import pytest

import detstream
from detstream import web
from detstream.errors import InvalidArgument
from tests.unit.http_helpers import serving


def users_blueprint() -> web.Blueprint:
    users = web.Blueprint("users")

    @users.route("/", name="list")
    class UserList(web.View):
        async def get(self, request):
            return self.json({"users": ["ann", "bob"], "detail": self.url_for("users:detail",
                                                                               user_id="ann")})

    @users.route("/{user_id}/", name="detail")
    class UserDetail(web.View):
        async def get(self, request, user_id):
            return self.json({"id": user_id})

        async def post(self, request, user_id):
            return self.json({"id": user_id, "got": await request.json()}, status=201)

    @users.route("/{user_id}/shout/")
    async def shout(web, request, user_id):
        return web.text(user_id.upper())

    return users


def test_register_puts_the_routes_under_the_prefix_named_blueprint_colon_name():
    app = detstream.App("bp-register", broker="sim://")
    users = users_blueprint()
    users.register(app, url_prefix="/users/")

    async def main():
        async with serving(app) as http:
            listing = await http.get("/users/")
            detail = await http.get("/users/ann/")
            posted = await http.request("POST", "/users/bob/", json={"age": 3})
            shouted = await http.get("/users/ann/shout/")
            outside = await http.get("/ann/")
        return listing, detail, posted, shouted, outside

    listing, detail, posted, shouted, outside = asyncio.run(main())
    assert listing.json() == {"users": ["ann", "bob"], "detail": "/users/ann/"}
    assert (detail.status, detail.json()) == (200, {"id": "ann"})
    assert (posted.status, posted.json()) == (201, {"id": "bob", "got": {"age": 3}})
    assert shouted.body == b"ANN"
    assert outside.status == 404
    assert [r.name for r in app.web.routes] == ["users:list", "users:detail", "users:shout"]
    assert app.web.url_for("users:shout", user_id="a b") == "/users/a%20b/shout/"


def test_blueprints_add_registers_when_the_server_starts():
    app = detstream.App("bp-add", broker="sim://")
    users = users_blueprint()
    app.web.blueprints.add("/people", users)
    assert app.web.routes == []  # nothing yet: Faust registers at server start

    async def main():
        async with serving(app) as http:
            return await http.get("/people/ann/")

    assert asyncio.run(main()).json() == {"id": "ann"}
    assert app.web.blueprints.active == {"users": users}
    with pytest.raises(RuntimeError, match="web server has started.*register"):
        app.web.blueprints.add("/late", web.Blueprint("late"))


def test_a_blueprint_may_be_added_by_import_path_and_serve_several_apps(tmp_path, monkeypatch):
    (tmp_path / "bp_by_path_mod.py").write_text(textwrap.dedent('''
        from detstream import web

        pages = web.Blueprint("pages", url_prefix="/pages/")

        @pages.route("/hello/")
        async def hello(web, request):
            return web.json({"app": web.app.conf.id})
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    one = detstream.App("bp-one", broker="sim://")
    two = detstream.App("bp-two", broker="sim://")
    one.web.blueprints.add("", "bp_by_path_mod:pages")  # no prefix: the blueprint's own
    two.web.blueprints.add("/other/", "bp_by_path_mod.pages")

    async def main():
        async with serving(one) as first, serving(two) as second:
            return await first.get("/pages/hello/"), await second.get("/other/hello/")

    first, second = asyncio.run(main())
    assert first.json() == {"app": "bp-one"} and second.json() == {"app": "bp-two"}
    sys.modules.pop("bp_by_path_mod", None)


def test_static_serves_a_directory_and_a_file_and_nothing_outside(tmp_path):
    assets = tmp_path / "assets"
    (assets / "css").mkdir(parents=True)
    (assets / "app.js").write_text("console.log(1)")
    (assets / "css" / "site.css").write_text("body {}")
    (tmp_path / "secret.txt").write_text("no")
    (tmp_path / "robots.txt").write_text("User-agent: *")
    site = web.Blueprint("site")
    site.static("/static", assets)
    site.static("/robots.txt", tmp_path / "robots.txt", name="robots")
    app = detstream.App("bp-static", broker="sim://")
    site.register(app, url_prefix="/site/")

    async def main():
        async with serving(app) as http:
            paths = ["/site/static/app.js", "/site/static/css/site.css", "/site/robots.txt",
                     "/site/static/missing.js", "/site/static/css", "/site/static/../secret.txt",
                     "/site/static/%2e%2e/secret.txt", "/site/static/css/%2E%2E/%2E%2E/secret.txt"]
            answers = {path: await http.get(path) for path in paths}
            head = await http.request("HEAD", "/site/static/app.js")
            post = await http.request("POST", "/site/static/app.js")
        return answers, head, post

    answers, head, post = asyncio.run(main())
    js = answers["/site/static/app.js"]
    assert (js.status, js.body) == (200, b"console.log(1)")
    assert js.headers["Content-Type"].split(";")[0] in ("text/javascript", "application/javascript")
    assert answers["/site/static/css/site.css"].body == b"body {}"
    assert answers["/site/static/css/site.css"].headers["Content-Type"].startswith("text/css")
    assert answers["/site/robots.txt"].body == b"User-agent: *"
    for path in ("/site/static/missing.js", "/site/static/css", "/site/static/../secret.txt",
                 "/site/static/%2e%2e/secret.txt", "/site/static/css/%2E%2E/%2E%2E/secret.txt"):
        assert answers[path].status == 404, path
        assert b"no" != answers[path].body
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", "14")
    assert post.status == 405
    assert app.web.url_for("site.static", filename="css/site.css") == "/site/static/css%2Fsite.css"
    assert app.web.url_for("site.robots") == "/site/robots.txt"


def test_app_web_add_static_without_a_blueprint_keeps_to_its_directory(tmp_path):
    ui = tmp_path / "ui"
    ui.mkdir()
    (ui / "index.html").write_text("<h1>hi</h1>")
    (tmp_path / "secret.txt").write_text("no")
    (ui / "leak.txt").symlink_to(tmp_path / "secret.txt")
    app = detstream.App("static-direct", broker="sim://")
    app.web.add_static("/ui/", ui)

    async def main():
        client = app.web.client()
        return [await client.get(path) for path in (
            "/ui/index.html", "/ui/%2e%2e/secret.txt", "/ui/..%2Fsecret.txt", "/ui/leak.txt",
            f"/ui/{tmp_path}/secret.txt")]

    index, *outside = asyncio.run(main())
    assert (index.status, index.text, index.content_type) == (200, "<h1>hi</h1>", "text/html")
    assert [r.status for r in outside] == [404, 404, 404, 404]


def test_blueprint_mistakes_are_clear_errors(tmp_path):
    bp = web.Blueprint("bad")
    with pytest.raises(InvalidArgument, match="non-empty name"):
        web.Blueprint("")
    with pytest.raises(InvalidArgument, match="url_prefix must be a str"):
        web.Blueprint("x", url_prefix=3)
    with pytest.raises(InvalidArgument, match="async def"):
        bp.route("/sync/")(lambda web, request: None)
    with pytest.raises(InvalidArgument, match="cors_options of bad.route.*unknown option.*allow_orgin"):
        bp.route("/c/", cors_options={"*": {"allow_orgin": True}})
    bp.static("/files", tmp_path / "nowhere")
    with pytest.raises(InvalidArgument, match="no file or directory at .*nowhere"):
        bp.register(detstream.App("bp-missing", broker="sim://"))

    rel = web.Blueprint("rel")

    @rel.route("relative/")
    async def relative(web, request):
        return web.text("x")

    with pytest.raises(InvalidArgument, match="starting with '/'"):
        rel.register(detstream.App("bp-rel", broker="sim://"))  # no prefix: still relative
    app = detstream.App("bp-twice", broker="sim://")
    users_blueprint().register(app, url_prefix="/a/")
    with pytest.raises(InvalidArgument, match="page name 'users:list' is used twice"):
        users_blueprint().register(app, url_prefix="/b/")
    app.web.blueprints.add("/x/", "no_such_module_for_blueprints:bp")
    with pytest.raises(InvalidArgument, match="cannot be imported"):
        app.web.url_for("users:list")
    with pytest.raises(InvalidArgument, match="Blueprint or its import path"):
        detstream.App("bp-obj", broker="sim://").web.blueprints.add("/", object())


def test_faust_import_paths_give_the_blueprint():
    from detstream import faust_compat

    with faust_compat.faust_alias():
        from faust.web import Blueprint, ResourceOptions
        from faust.web.blueprints import Blueprint as FromModule
        from faust.web.cache import Cache

        assert Blueprint is FromModule is web.Blueprint
        assert Cache is web.Cache and ResourceOptions is web.ResourceOptions
