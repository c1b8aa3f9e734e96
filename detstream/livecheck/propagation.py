"""How a test travels with the work it triggered: Kafka headers, HTTP headers, task context.

While a test is current (``current_test()``), every record an app sends gets
the ``LiveCheck-Test-*`` headers (``attach_test_headers``, on the app's
``on_produce_message``), and so does every HTTP request of ``app.http_client``
and, once a LiveCheck app was made, of any aiohttp session
(``current_test_headers``; see ``patches``). Where they arrive the test becomes current
again: for an agent's event carrying them (``LiveCheckSensor``, for as long
as the agent holds the event) and for a web request carrying them
(``serve_in_test_context``, for the view). ``contribute`` installs the four
on the app under test; the LiveCheck app sends with them too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import Token
from typing import TYPE_CHECKING, Any

from detstream.sensors import Sensor

from .locals import current_test, current_test_stack
from .models import TEST_HEADERS, TestExecution

if TYPE_CHECKING:
    from detstream.app import App
    from detstream.web.views import Request, Response

__all__ = [
    "LiveCheckSensor", "attach_test_headers", "contribute", "current_test_headers",
    "serve_in_test_context",
]


class LiveCheckSensor(Sensor):
    """Makes an event's test current while its agent processes it."""

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        headers = event.headers
        test = TestExecution.from_headers(headers) if headers else None
        if test is None:
            return None
        return current_test_stack.push_without_automatic_cleanup(test)

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        if isinstance(state, Token):
            current_test_stack.pop(state)


def attach_test_headers(sender: Any, *, headers: list[tuple[str, bytes]], **kwargs: Any) -> None:
    """``on_produce_message`` handler: the current test's headers on the record (replacing any)."""
    test = current_test()
    if test is None:
        return
    headers[:] = [(name, value) for name, value in headers if name not in TEST_HEADERS]
    headers.extend((name, value.encode()) for name, value in test.as_headers().items())


def current_test_headers() -> dict[str, str]:
    """``app.web.client_headers`` source: the current test's headers for an HTTP request."""
    test = current_test()
    return test.as_headers() if test is not None else {}


async def serve_in_test_context(
    request: Request, handler: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Web middleware: a request carrying test headers is served as part of that test."""
    test = TestExecution.from_headers(request.headers)
    if test is None:
        return await handler(request)
    with current_test_stack.push(test):
        return await handler(request)


def contribute(app: App) -> None:
    """Make ``app`` carry tests on: its sends, its HTTP requests, its agents and its views."""
    app.sensors.add(LiveCheckSensor())
    app.on_produce_message.connect(attach_test_headers)
    app.web.client_headers.append(current_test_headers)
    app.web.middlewares.append(serve_in_test_context)
