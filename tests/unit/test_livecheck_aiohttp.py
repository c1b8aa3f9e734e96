"""LiveCheck's aiohttp patch: any ``ClientSession`` request made under a current test carries it.

As Faust's ``faust.livecheck.patches.aiohttp``, applied when a LiveCheck app
is made; unlike Faust's, it also reaches sessions made from a name bound
before the patch (``from aiohttp import ClientSession`` at import). Real
sockets on 127.0.0.1: an aiohttp server echoing the headers it got.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
from aiohttp import ClientSession  # bound before any LiveCheck app patches the class
from aiohttp import web as aioweb
from aiohttp.test_utils import TestServer

import detstream
from detstream.livecheck import TestExecution
from detstream.livecheck.locals import current_test_stack
from detstream.livecheck.models import HEADER_TEST_ID, HEADER_TEST_NAME, now
from detstream.livecheck.patches import patch_all


async def _echo(request: aioweb.Request) -> aioweb.Response:
    return aioweb.json_response({name: request.headers.getall(name)
                                 for name in request.headers})


async def _headers_seen(session: Any, url: str) -> dict[str, list[str]]:
    async with session.get(url) as response:
        return dict(await response.json())


def _test(test_id: str) -> TestExecution:
    return TestExecution(id=test_id, case_name="shop.test_order", timestamp=now(),
                         test_args=[], test_kwargs={}, expires=now() + timedelta(hours=1))


def _livecheck(name: str) -> Any:
    return detstream.App(name, broker="sim://").LiveCheck()


def run_with_echo(body: Any) -> Any:
    async def main() -> Any:
        echo = aioweb.Application()
        echo.router.add_get("/", _echo)
        server = TestServer(echo, host="127.0.0.1")
        await server.start_server()
        try:
            return await body(str(server.make_url("/")))
        finally:
            await server.close()

    return asyncio.run(main())


def test_any_session_sends_the_current_tests_headers_once_a_livecheck_app_is_made() -> None:
    _livecheck("patched-shop")
    user_traces: list[str] = []

    async def on_start(session: Any, context: Any, params: Any) -> None:
        user_traces.append(str(params.url))

    async def body(url: str) -> Any:
        own = aiohttp.TraceConfig()
        own.on_request_start.append(on_start)
        own_configs = [own]
        async with ClientSession() as early, \
                aiohttp.ClientSession(trace_configs=own_configs) as traced:
            with current_test_stack.push(_test("t-1")):
                in_test = [await _headers_seen(early, url), await _headers_seen(traced, url)]
            outside = await _headers_seen(early, url)
            return in_test, outside, own_configs, traced.trace_configs

    in_test, outside, own_configs, traced_configs = run_with_echo(body)
    for seen in in_test:
        assert seen[HEADER_TEST_ID] == ["t-1"] and seen[HEADER_TEST_NAME] == ["shop.test_order"]
    assert HEADER_TEST_ID not in outside  # no test current: nothing added
    assert len(user_traces) == 1  # the session's own trace config still runs
    assert len(own_configs) == 1 and len(traced_configs) == 2  # the caller's list left alone


def test_the_patch_is_applied_once_however_many_livecheck_apps_are_made() -> None:
    _livecheck("patched-once-a")
    _livecheck("patched-once-b")
    patch_all()

    async def body(url: str) -> Any:
        async with aiohttp.ClientSession() as session:
            with current_test_stack.push(_test("t-2")):
                return await _headers_seen(session, url), len(session.trace_configs)

    seen, trace_configs = run_with_echo(body)
    assert seen[HEADER_TEST_ID] == ["t-2"]
    assert trace_configs == 1


def test_a_task_started_under_a_test_carries_it_to_its_requests() -> None:
    """The headers follow the context of the request's task, not where the session was made."""
    _livecheck("patched-tasks")

    async def body(url: str) -> Any:
        async with aiohttp.ClientSession() as session:
            with current_test_stack.push(_test("t-3")):
                task = asyncio.ensure_future(_headers_seen(session, url))
            plain = await _headers_seen(session, url)
            return await task, plain

    in_task, plain = run_with_echo(body)
    assert in_task[HEADER_TEST_ID] == ["t-3"] and HEADER_TEST_ID not in plain
