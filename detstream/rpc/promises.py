"""Agent RPC promises: :class:`ReplyPromise` for one request (``ask``) and
:class:`BarrierState` for many (``map``/``join``). See :mod:`detstream.rpc.agent_rpc`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

__all__ = ["BarrierState", "ReplyPromise"]

class ReplyPromise(asyncio.Future[Any]):
    """A future of the reply to one request; ``await`` it for the agent's answer."""

    def __init__(self, reply_to: str, correlation_id: str) -> None:
        super().__init__(loop=asyncio.get_running_loop())
        self.reply_to = reply_to
        self.correlation_id = correlation_id

    def fulfill(self, correlation_id: str, value: Any) -> None:
        if correlation_id != self.correlation_id:
            raise ValueError(f"reply {correlation_id!r} is not for {self.correlation_id!r}")
        if not self.done():
            self.set_result(value)

    def fail(self, exc: BaseException) -> None:
        """The request could not be sent, or the app stopped: no reply will come."""
        if not self.done():
            self.set_exception(exc)
            self.exception()  # a caller that gave up must not log "never retrieved"

    @property
    def correlation_ids(self) -> tuple[str, ...]:
        return (self.correlation_id,)


class BarrierState(ReplyPromise):
    """Replies to many requests (``map``/``join``): a queue, done once all arrived.

    ``add`` each correlation id before its request is sent, ``finalize`` once
    all are sent; the barrier is done when every reply is in.
    """

    def __init__(self, reply_to: str) -> None:
        super().__init__(reply_to, correlation_id="")
        self.pending: set[str] = set()
        self.total = 0
        self.size: int | None = None
        self._results: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._taken = 0
        self._error: BaseException | None = None

    @property
    def correlation_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.pending))

    def add(self, correlation_id: str) -> None:
        self.pending.add(correlation_id)
        self.total += 1

    def finalize(self) -> None:
        self.size = self.total
        self._maybe_done()

    def fulfill(self, correlation_id: str, value: Any) -> None:
        if correlation_id not in self.pending:
            return  # a second yield for the same request
        self.pending.discard(correlation_id)
        self._results.put_nowait((correlation_id, value))
        self._maybe_done()

    def fail(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
            self._results.put_nowait(("", _FAILED))
        super().fail(exc)

    def _maybe_done(self) -> None:
        if self.size is not None and not self.pending and not self.done():
            self.set_result(None)

    def get_nowait(self) -> tuple[str, Any] | None:
        """A reply that has arrived, or None."""
        try:
            item = self._results.get_nowait()
        except asyncio.QueueEmpty:
            return None
        return self._took(item)

    async def iterate(
        self, deadline: float | None = None, what: str = "the requests"
    ) -> AsyncIterator[tuple[str, Any]]:
        """``(correlation_id, value)`` as replies arrive, until all of them were taken."""
        loop = asyncio.get_running_loop()
        while self.size is None or self._taken < self.size:
            if deadline is None:
                item = await self._results.get()
            else:
                try:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        raise asyncio.TimeoutError
                    item = await asyncio.wait_for(self._results.get(), remaining)
                except asyncio.TimeoutError:
                    raise asyncio.TimeoutError(
                        f"{what}: {len(self.pending)} of {self.total} replies still missing "
                        f"(correlation ids {_few(self.pending)}, reply topic {self.reply_to!r})"
                    ) from None
            yield self._took(item)

    def _took(self, item: tuple[str, Any]) -> tuple[str, Any]:
        if item[1] is _FAILED:
            assert self._error is not None
            raise self._error
        self._taken += 1
        return item


#: queued by ``BarrierState.fail`` to end an iteration with the error.
_FAILED = object()

def _few(ids: Iterable[str], n: int = 3) -> str:
    ids = sorted(ids)
    shown = ", ".join(ids[:n])
    return shown + (f" and {len(ids) - n} more" if len(ids) > n else "")
