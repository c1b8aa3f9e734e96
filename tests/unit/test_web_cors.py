"""CORS (``cors_options`` on pages, the ``web_cors_options`` setting) over HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

import detstream
from detstream import web
from detstream.errors import ImproperlyConfigured, InvalidArgument
from tests.unit.http_helpers import serving

SITE = "https://site.example"
OTHER = "https://other.example"


def cors_app(name: str, **settings):
    app = detstream.App(name, broker="sim://", **settings)

    @app.page("/open/", cors_options={
        SITE: web.ResourceOptions(allow_credentials=True, allow_headers=["X-Token"],
                                  expose_headers=["X-Count"], max_age=600),
        "*": {"allow_headers": "*", "expose_headers": "*"},
    })
    class Open(web.View):
        async def get(self, request):
            return self.json({"ok": True}, headers={"X-Count": "3", "X-Other": "y"})

        async def put(self, request):
            return self.json({"put": True})

        async def options(self, request):  # not called: OPTIONS is the preflight here
            return self.text("view's own options")

    @app.page("/closed/")
    async def closed(web, request):
        return web.json({"closed": True})

    return app


def preflight_headers(origin=SITE, method="GET", headers=None):
    sent = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        sent["Access-Control-Request-Headers"] = headers
    return sent


def test_preflight_answers_what_the_origin_may_do():
    app = cors_app("cors-preflight")

    async def main():
        async with serving(app) as http:
            def options(path, **kw):
                return http.request("OPTIONS", path, headers=preflight_headers(**kw))

            return {
                "site": await options("/open/", headers="x-token"),
                "any": await options("/open/", origin=OTHER, method="PUT",
                                     headers="X-Anything, Content-Type"),
                "bad header": await options("/open/", headers="X-Token, X-Evil"),
                "bad method": await options("/open/", method="DELETE"),
                "no origin": await http.request("OPTIONS", "/open/",
                                                headers={"Access-Control-Request-Method": "GET"}),
                "no method": await http.request("OPTIONS", "/open/", headers={"Origin": SITE}),
                "closed": await options("/closed/"),
            }

    r = asyncio.run(main())
    site = r["site"]
    assert site.status == 200 and site.body == b""
    assert site.headers["Access-Control-Allow-Origin"] == SITE
    assert site.headers["Access-Control-Allow-Credentials"] == "true"
    assert site.headers["Access-Control-Max-Age"] == "600"
    assert site.headers["Access-Control-Allow-Methods"] == "GET"
    assert site.headers["Access-Control-Allow-Headers"] == "x-token"
    anyone = r["any"]
    assert anyone.status == 200 and anyone.headers["Access-Control-Allow-Origin"] == OTHER
    assert anyone.headers["Access-Control-Allow-Methods"] == "PUT"
    assert anyone.headers["Access-Control-Allow-Headers"] == "X-Anything,Content-Type"
    assert "Access-Control-Allow-Credentials" not in anyone.headers
    assert "Access-Control-Max-Age" not in anyone.headers
    refusals = {
        "bad header": "headers not allowed: X-EVIL",
        "bad method": "method 'DELETE' is not allowed here (allowed: GET, HEAD, PUT)",
        "no origin": "no Origin header",
        "no method": "no Access-Control-Request-Method header",
    }
    for case, why in refusals.items():
        assert r[case].status == 403, case
        assert why in r[case].json()["error"], case
        assert "Access-Control-Allow-Origin" not in r[case].headers
    assert r["closed"].status == 405  # no CORS on a page without rules: OPTIONS is just a method


def test_simple_requests_get_the_origin_s_headers_errors_included():
    app = cors_app("cors-simple")

    @app.page("/boom/", cors_options={"*": {}})
    async def boom(view, request):
        raise web.ValidationError("no")

    async def main():
        async with serving(app) as http:
            return {
                "site": await http.get("/open/", headers={"Origin": SITE}),
                "other": await http.get("/open/", headers={"Origin": OTHER}),
                "none": await http.get("/open/"),
                "closed": await http.get("/closed/", headers={"Origin": SITE}),
                "boom": await http.get("/boom/", headers={"Origin": SITE}),
                "405": await http.request("POST", "/open/", headers={"Origin": SITE}),
            }

    r = asyncio.run(main())
    site = r["site"]
    assert site.json() == {"ok": True}
    assert site.headers["Access-Control-Allow-Origin"] == SITE
    assert site.headers["Access-Control-Allow-Credentials"] == "true"
    assert site.headers["Access-Control-Expose-Headers"] == "X-Count"
    other = r["other"]
    assert other.headers["Access-Control-Allow-Origin"] == OTHER
    assert other.headers["Access-Control-Expose-Headers"] == "X-Count,X-Other"  # "*": all but simple
    assert "Access-Control-Allow-Credentials" not in other.headers
    assert not any(h.startswith("Access-Control") for h in r["none"].headers)
    assert not any(h.startswith("Access-Control") for h in r["closed"].headers)
    assert r["boom"].status == 400 and r["boom"].headers["Access-Control-Allow-Origin"] == SITE
    assert r["405"].status == 405 and r["405"].headers["Access-Control-Allow-Origin"] == SITE


def test_the_setting_covers_every_page_and_a_page_s_own_origin_rules_win():
    app = cors_app("cors-setting", web_cors_options={
        "*": {"allow_methods": ["DELETE"]},
        SITE: {"allow_headers": ["X-From-Setting"]},
    })

    async def main():
        async with serving(app) as http:
            def options(path, **kw):
                return http.request("OPTIONS", path, headers=preflight_headers(**kw))

            return {
                "closed simple": await http.get("/closed/", headers={"Origin": OTHER}),
                "builtin": await http.get("/health/", headers={"Origin": OTHER}),
                "closed preflight": await options("/closed/", origin=OTHER, method="POST"),
                "allow_methods": await options("/closed/", origin=OTHER, method="DELETE"),
                "setting's headers": await options("/closed/", headers="X-From-Setting"),
                "page's rules win": await options("/open/", headers="X-From-Setting"),
                "unknown origin": await options("/closed/", origin=OTHER, headers="X-From-Setting"),
            }

    r = asyncio.run(main())
    assert r["closed simple"].headers["Access-Control-Allow-Origin"] == OTHER
    assert r["builtin"].headers["Access-Control-Allow-Origin"] == OTHER
    assert r["closed preflight"].status == 200
    assert r["allow_methods"].status == 200  # the view has no DELETE, the setting allows it
    assert r["setting's headers"].status == 200
    assert r["page's rules win"].status == 403  # SITE's rules on /open/ replace the setting's
    assert r["unknown origin"].status == 403


def test_without_any_rules_there_is_no_cors_and_options_reaches_the_view():
    app = detstream.App("cors-none", broker="sim://")

    @app.page("/v/")
    class V(web.View):
        async def options(self, request):
            return self.text("mine")

    response = asyncio.run(app.web.client().options("/v/", headers=preflight_headers()))
    assert (response.status, response.text) == (200, "mine")
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("options, message", [
    (["*"], "must map an origin"),
    ({"": {}}, "origin must be a non-empty str"),
    ({"*": "yes"}, "must be ResourceOptions or a dict"),
    ({"*": {"allow_origin": True}}, "unknown option.*allow_origin"),
    ({"*": {"allow_credentials": "yes"}}, "allow_credentials must be True or False"),
    ({"*": {"max_age": -1}}, "max_age must be seconds"),
    ({"*": {"allow_headers": "X-Token"}}, "allow_headers must be '\\*' or a list of names"),
])
def test_bad_cors_options_are_clear_errors_where_they_are_given(options, message):
    with pytest.raises(ImproperlyConfigured, match=f"setting 'web_cors_options'.*{message}"):
        detstream.App("cors-bad-setting", web_cors_options=options)
    app = detstream.App("cors-bad-page", broker="sim://")
    with pytest.raises(InvalidArgument, match=f"cors_options of page '/p/'.*{message}"):
        app.page("/p/", cors_options=options)


def test_faust_s_and_aiohttp_cors_style_options_are_taken():
    from detstream import faust_compat

    class AiohttpCorsLike:  # aiohttp_cors.ResourceOptions is a namedtuple of these fields
        def _asdict(self):
            return {"allow_credentials": True, "expose_headers": "*", "allow_headers": "*",
                    "max_age": None, "allow_methods": None}

    with faust_compat.faust_alias():
        from faust.types.web import ResourceOptions

        app = detstream.App("cors-faust", web_cors_options={
            SITE: ResourceOptions(allow_methods="*"), OTHER: AiohttpCorsLike()})
    rules = app.conf.web_cors_options
    assert rules[SITE].allow_methods == "*" and rules[OTHER].allow_credentials is True
