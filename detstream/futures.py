"""Chaining futures: one completes as another does; telling cancellations apart.

The producer hands a caller a future before the record reaches the client
(the client's ack future exists only later), and a table's store waits on a
future for a changelog record not sent yet. Both then complete their future
from the real one, whichever way it ends.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TypeVar

T = TypeVar("T")


def complete_as(source: asyncio.Future[T], target: asyncio.Future[T]) -> None:
    """Complete ``target`` as ``source`` completes: result, error or cancellation.

    A ``target`` already done (cancelled by its waiter, say) is left alone,
    and an error of ``source`` is then dropped as seen: its waiter gave up.
    """

    def copy(done: asyncio.Future[T]) -> None:
        if done.cancelled():
            if not target.done():
                target.cancel()
            return
        error = done.exception()  # read even if nobody waits any more: no "never retrieved"
        if target.done():
            return
        if error is not None:
            target.set_exception(error)
        else:
            target.set_result(done.result())

    if source.done():
        copy(source)
    else:
        source.add_done_callback(copy)


if sys.version_info >= (3, 11):

    def current_task_cancelling() -> bool:
        """True when the running task itself is being cancelled.

        After awaiting a task it cancelled, code swallows that task's CancelledError but
        must let a cancellation of its *own* task propagate; this tells the two apart.
        """
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

else:

    def current_task_cancelling() -> bool:
        """Python 3.10 has no ``Task.cancelling()``: the two cannot be told apart.

        Always False: a cancellation of the caller that arrives while it waits for the
        task it cancelled is absorbed, as with the usual ``suppress(CancelledError)``.
        """
        return False
