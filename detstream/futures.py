"""Chaining futures: one completes as another does.

The producer hands a caller a future before the record reaches the client
(the client's ack future exists only later), and a table's store waits on a
future for a changelog record not sent yet. Both then complete their future
from the real one, whichever way it ends.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


def complete_as(source: asyncio.Future[T], target: asyncio.Future[T]) -> None:
    """Complete ``target`` as ``source`` completes: result, error or cancellation.

    A ``target`` already done (cancelled by its waiter, say) is left alone.
    """

    def copy(done: asyncio.Future[T]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
        elif (error := done.exception()) is not None:
            target.set_exception(error)
        else:
            target.set_result(done.result())

    if source.done():
        copy(source)
    else:
        source.add_done_callback(copy)
