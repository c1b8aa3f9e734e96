"""Sending from another thread: ``app.send_threadsafe(...)``.

The Faust guide says an app may be shared between threads. An App runs on
one asyncio event loop, and asyncio objects (queues, futures, the producer)
must only be touched from the loop's own thread. So a thread hands the send
over to the loop with ``asyncio.run_coroutine_threadsafe`` and gets a
``concurrent.futures.Future`` back, done once the broker acknowledged the
record (its ``RecordMetadata``; ``None`` for an in-memory channel)::

    # in a thread of a web framework, a scheduler, a legacy client ...
    metadata = app.send_threadsafe('orders', key=b'k', value=order).result(timeout=10)

``asyncio.run_coroutine_threadsafe(app.send(...), app.loop)`` works too: a
started App's ``loop`` is the loop it runs on. Calling either from the app's
own thread is refused, because waiting there for the result would block the
loop that has to produce it: use ``await app.send(...)``.

Under the simulator there are no threads: the sandbox refuses to start one
(``sim.errors.RealIOForbidden``), as any real thread would make a run depend
on the OS scheduler instead of the seed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TYPE_CHECKING, Any

from .errors import ImproperlyConfigured, InvalidArgument

if TYPE_CHECKING:
    from ._types import RecordMetadata
    from .app import App


def send_threadsafe(
    app: App, channel: Any, *, key: Any = None, value: Any = None, **kwargs: Any
) -> concurrent.futures.Future[RecordMetadata | None]:
    """Send on ``app``'s loop from another thread; a future of the broker's ack.

    ``channel`` is what ``app.send`` takes: a topic name, a Topic, a Channel,
    or an agent (``agent.send``). Errors of the send (an unknown serializer, a
    broker refusal) are raised by the future's ``result()``.
    """
    loop = running_loop(app)
    _refuse_own_thread(app, loop)
    return asyncio.run_coroutine_threadsafe(_send(app, channel, key, value, kwargs), loop)


def running_loop(app: App) -> asyncio.AbstractEventLoop:
    """The loop ``app`` runs on; ImproperlyConfigured when it is not running."""
    loop = app.__dict__.get("_loop")
    started = getattr(app, "_producer", None) is not None
    if not started or loop is None or loop.is_closed() or not loop.is_running() or app.should_stop:
        raise ImproperlyConfigured(
            f"app {app.conf.id!r} is not running: start it (a Worker, `detstream worker`, or "
            "`await app.start()` on its event loop) before sending from another thread"
        )
    return loop


def _refuse_own_thread(app: App, loop: asyncio.AbstractEventLoop) -> None:
    try:
        here = asyncio.get_running_loop()
    except RuntimeError:
        return
    if here is loop:
        raise InvalidArgument(
            f"send_threadsafe() was called on the event loop of app {app.conf.id!r}: waiting "
            "for its result here would block that loop; use `await app.send(...)` instead"
        )


async def _send(app: App, channel: Any, key: Any, value: Any, kwargs: dict[str, Any]) -> Any:
    """On the app's loop: send, then wait for the broker's ack (topics return a future)."""
    from .agent import Agent

    if isinstance(channel, Agent):
        sent = await channel.send(key=key, value=value, **kwargs)
    else:
        sent = await app.send(channel, key=key, value=value, **kwargs)
    if isinstance(sent, asyncio.Future):
        return await sent
    return sent
