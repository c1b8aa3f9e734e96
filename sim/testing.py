"""Run your own code on the simulator from a test: virtual time, seeded, sandboxed.

Example (pytest)::

    from sim.testing import simulate

    def test_counts():
        async def main(cluster):
            app = make_app(broker="sim://")
            await app.start()
            ...
            await app.stop()
        simulate(main, seed=3)

Apps with ``broker='sim://'`` started inside ``main`` talk to ``cluster``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .cluster import ClusterConfig, SimCluster
from .driver import current_cluster
from .gc_policy import SimGcPolicy
from .loop import VirtualEventLoop
from .sandbox import Sandbox
from .seeds import SeedStreams
from .trace import Trace

T = TypeVar("T")


def run_sandboxed(main: Callable[[], Awaitable[T]], *, seed: int, shuffle: bool = False) -> T:
    """Create a virtual loop, enter a Sandbox for ``seed``, run ``main()`` to completion.

    ``main`` is a factory so that everything the run builds (including the
    coroutine itself) is made inside the sandbox. Leftover tasks are cancelled
    in creation order so cleanup is deterministic too. ``shuffle`` permutes
    each batch of ready callbacks with a Random of its own stream
    (``{seed}/schedule``), exploring interleavings asyncio allows. The
    garbage collector follows ``sim.gc_policy`` meanwhile: collections at
    loop iterations, not at allocation counts of the host process.
    """
    loop = VirtualEventLoop(shuffle=SeedStreams(seed).schedule() if shuffle else None)
    with SimGcPolicy() as gc_policy, Sandbox(loop, seed):
        gc_policy.attach(loop)
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(main())
        finally:
            leftovers = loop.pending_tasks()
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            asyncio.set_event_loop(None)
            loop.close()


def simulate(
    main: Callable[[SimCluster], Awaitable[T]],
    *,
    seed: int = 0,
    config: ClusterConfig | None = None,
) -> T:
    """Run ``main(cluster)`` against a fresh simulated cluster; returns its result."""

    async def with_cluster() -> Any:
        loop = asyncio.get_running_loop()
        cluster = SimCluster(Trace(loop.time), rng=SeedStreams(seed).network(), config=config)
        token = current_cluster.set(cluster)
        try:
            return await main(cluster)
        finally:
            current_cluster.reset(token)

    return run_sandboxed(with_cluster, seed=seed)


def run_app(
    app: Any,
    body: Callable[[SimCluster], Awaitable[T]],
    *,
    seed: int = 0,
    config: ClusterConfig | None = None,
) -> T:
    """Start ``app`` (``broker='sim://'``) on a fresh simulated cluster, run ``body(cluster)``, stop it.

    The app is stopped gracefully even when ``body`` fails, so a test sees its
    final commits and changelog writes in ``cluster``.
    """

    async def main(cluster: SimCluster) -> T:
        await app.start()
        try:
            return await body(cluster)
        finally:
            await app.stop()

    return simulate(main, seed=seed, config=config)
