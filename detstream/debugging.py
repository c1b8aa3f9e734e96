"""Looking inside a running worker: the aiomonitor console of ``--debug``, and the stacks
``SIGUSR1`` logs (Faust's debugging guide and process signals).

- With ``--debug`` and the ``aiomonitor`` package installed, the worker starts
  aiomonitor's console on ``--console-port`` (50101, Faust's default): ``telnet
  localhost 50101`` lists the loop's tasks (``ps``), shows one's stack
  (``where``), cancels it. Without the package the worker says so and runs on.
- ``kill -USR1 <pid>`` logs the stack of every thread and of every task of the
  worker's loop, without stopping anything: where a worker that seems stuck is.

Production only: the simulator refuses threads and has no process signals.
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import threading
import traceback
from typing import Any

__all__ = ["CONSOLE_PORT", "dump_stacks", "start_console"]

log = logging.getLogger(__name__)

#: aiomonitor's console port when ``--console-port`` is not given (Faust's default).
CONSOLE_PORT = 50101


def start_console(loop: asyncio.AbstractEventLoop, port: int) -> Any:
    """Start aiomonitor's console for ``loop`` on ``port``; its monitor (``close()`` it), or
    None when aiomonitor is not installed or cannot start (said in the log)."""
    try:
        import aiomonitor  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        log.warning("--debug: no console on port %s, aiomonitor is not installed "
                    "(pip install aiomonitor)", port)
        return None
    try:
        monitor = aiomonitor.start_monitor(loop, port=port)
    except Exception as exc:  # a port in use, a loop that refuses threads
        log.warning("--debug: aiomonitor's console did not start on port %s: %r", port, exc)
        return None
    log.info("--debug: aiomonitor's console on 127.0.0.1:%s (telnet localhost %s)", port, port)
    return monitor


def dump_stacks(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """The stack of every thread, then of every pending task of ``loop``, as text."""
    out = io.StringIO()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    for ident, frame in sorted(sys._current_frames().items(), key=lambda item: item[0]):
        out.write(f"Thread {names.get(ident, '?')} ({ident}):\n")
        out.write("".join(traceback.format_stack(frame)))
    if loop is not None:
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        out.write(f"{len(tasks)} tasks of the event loop:\n")
        for task in sorted(tasks, key=lambda task: task.get_name()):
            out.write(f"Task {task.get_name()} {task.get_coro()!r}:\n")
            task.print_stack(file=out)
    return out.getvalue()
