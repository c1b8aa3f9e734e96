"""A simulated worker process: an App built from the project, started, crashed, restarted.

Each incarnation imports the project afresh, so a crash really throws its
memory away; its tasks are found by owner (``sim.loop.task_owner``) and
cancelled, and its transport is severed first so no cleanup code of the dead
process reaches the cluster. Its data directory survives, as a disk would.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from detstream.loader import load_isolated

from .cluster import SimCluster
from .driver import SimTransport
from .loop import task_owner
from .trace import Trace


class SimWorker:
    """One worker slot (``w1``, ``w2``, ...) and its current incarnation."""

    def __init__(self, name: str, target: str, cluster: SimCluster, trace: Trace, datadir: Path):
        self.name = name
        self.target = target
        self.cluster = cluster
        self.trace = trace
        self.datadir = datadir
        self.incarnation = 0
        self.app: Any = None
        self.transport: SimTransport | None = None
        self.up = False

    @property
    def owner(self) -> str:
        return f"{self.name}#{self.incarnation}"

    async def start(self) -> None:
        """Start a fresh incarnation: new import, new App, same name and datadir."""
        self.incarnation += 1
        _, app = load_isolated(self.target)
        self.transport = SimTransport(cluster=self.cluster, name=self.name)
        app.transport = self.transport
        app.client_name = self.name
        app.trace_hook = self.trace.record
        app.conf.datadir = str(self.datadir)
        self.app = app
        if self.incarnation > 1:
            self.trace.record(self.name, "start", incarnation=self.incarnation)
        token = task_owner.set(self.owner)
        try:
            await app.start()
        finally:
            task_owner.reset(token)
        self.up = True

    async def stop(self) -> None:
        """Graceful stop: in-flight events finish, offsets are committed, the group is left."""
        self.up = False
        await self.app.stop()

    async def stall(self, duration: float) -> None:
        """Zombie: the group consumer stops heartbeating for ``duration``; agents keep running.

        Returns when the stall is over (the consumer then finds it was
        expelled, if the stall outlasted the session timeout, and rejoins).
        """
        assert self.transport is not None
        incarnation = self.incarnation
        self.trace.record(self.name, "stall", incarnation=incarnation, duration=duration)
        for consumer in self.transport.consumers:
            consumer.stall(duration)
        await asyncio.sleep(duration)
        if self.up and self.incarnation == incarnation:
            self.trace.record(self.name, "stall-end", incarnation=incarnation)

    async def crash(self) -> int:
        """kill -9: no graceful code reaches the cluster.

        Returns how many processed-or-in-flight messages were not yet committed:
        the work at-least-once will redo (and a lost-update bug would lose).
        """
        assert self.transport is not None
        uncommitted = self.app.conductor.uncommitted()
        self.trace.record(self.name, "crash", incarnation=self.incarnation, uncommitted=uncommitted)
        self.up = False
        self.transport.sever()
        loop = asyncio.get_running_loop()
        tasks = loop.tasks_owned_by(self.owner)  # type: ignore[attr-defined]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.app.tables.close()  # writes not yet on disk are lost, as in a real crash
        return uncommitted
