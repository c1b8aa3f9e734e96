"""A worker's web server on 127.0.0.1 for a test, and plain HTTP requests to it (aiohttp)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from detstream.web.server import WebServer


@dataclass
class Answer:
    """What came back over HTTP: status, headers (case-insensitive) and body."""

    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


class Http:
    """Requests to one server; each returns an :class:`Answer`."""

    def __init__(self, base: str, session: aiohttp.ClientSession) -> None:
        self.base, self.session = base, session

    async def request(self, method: str, path: str, **kwargs: Any) -> Answer:
        """``path`` is sent as written (percent-encoded, ``..`` kept)."""
        url = URL(self.base + path, encoded=True)
        async with self.session.request(method, url, **kwargs) as response:
            return Answer(response.status, response.headers, await response.read())

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Http]:
    """``app.web`` served on a free port of 127.0.0.1 for the block."""
    server = WebServer(app, bind="127.0.0.1", port=0)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            yield Http(f"http://127.0.0.1:{server.port}", session)
    finally:
        await server.stop()


class ManualClock:
    """A clock a test moves by hand (``clock.now += 10``) for cache expiry."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
