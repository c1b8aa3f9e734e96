"""``app.flow_control``: Faust's switch over the flow of messages into streams, kept for its API.

Faust suspends its streams' queues during a rebalance and resumes them after
(its streams skip what arrives while suspended), and a Faust app starts
suspended: its testing guide's pytest fixture calls
``app.flow_control.resume()`` before ``agent.test_context()``. detstream's
streams need no such switch: a rebalance is handled by the engine (records
fetched before it are dropped unprocessed, see ``detstream.stream``), and
``test_context()`` works without it. So the object keeps Faust's calls and
state (``resume()``, ``suspend()``, ``is_active()``, ``clear()``,
``wait_for_resume()``) for code written for Faust, starts active, and
``suspend()`` does not hold any stream: it logs once that it has no effect,
as settings without effect do.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


class FlowControl:
    """Faust's ``FlowControlEvent``: state only; detstream's streams do not wait on it."""

    def __init__(self) -> None:
        self._active = True
        self._told = False
        self._resumed: asyncio.Event | None = None  # made in a loop, when someone waits

    def __repr__(self) -> str:
        return f"<FlowControl: {'active' if self._active else 'suspended'}>"

    def is_active(self) -> bool:
        """True unless ``suspend()`` was called last (it holds nothing: see the module doc)."""
        return self._active

    def resume(self) -> None:
        """Mark the flow active (Faust's test fixtures call it; detstream's streams never wait)."""
        self._active = True
        if self._resumed is not None:
            self._resumed.set()

    def suspend(self) -> None:
        """Mark the flow suspended. detstream's streams go on: logged once as having no effect."""
        self._active = False
        if self._resumed is not None:
            self._resumed.clear()
        if not self._told:
            self._told = True
            logger.warning(
                "app.flow_control.suspend() has no effect on detstream: its streams do not "
                "wait on flow control (rebalances are handled by the engine). To stop an "
                "agent, stop it; see docs/faust-differences.md"
            )

    def clear(self) -> None:
        """Faust empties its stream queues here; detstream's buffers are the engine's: nothing."""

    async def wait_for_resume(self) -> None:
        """Return once the flow is active."""
        if self._active:
            return
        if self._resumed is None:
            self._resumed = asyncio.Event()
        await self._resumed.wait()
