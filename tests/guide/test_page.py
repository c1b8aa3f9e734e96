"""Guide: "@app.page() -- Define a new Web View"."""

import asyncio

import detstream as faust

from .helpers import run_app


def test_a_view_gets_the_request_and_its_query(capsys):
    # examples/view.py
    app = faust.App("view-example", broker="sim://")

    @app.page("/path/to/view/")
    async def myview(web, request):
        print(f'FOO PARAM: {request.query["foo"]}')

    async def body(cluster):
        await asyncio.sleep(1)
        # `open http://localhost:6066/path/to/view/`: the in-process client, no sockets
        response = await app.web.client().get("/path/to/view/?foo=bar")
        return response.status

    status = run_app(app, body)
    assert capsys.readouterr().out == "FOO PARAM: bar\n"
    assert 200 <= status < 300  # the view returned nothing: an empty success
    assert app.conf.web_port == 6066  # where `detstream worker` serves it by default


def test_a_missing_query_parameter_is_an_error_response():
    app = faust.App("view-errors", broker="sim://")

    @app.page("/path/to/view/")
    async def myview(web, request):
        return web.json({"foo": request.query["foo"]})

    async def body(cluster):
        await asyncio.sleep(1)
        return (await app.web.client().get("/path/to/view/")).status

    assert run_app(app, body) >= 400
