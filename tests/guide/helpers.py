"""Shared by the guide tests: run the guide's snippets on the simulator, in virtual time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from sim import testing
from sim.cluster import ClusterConfig
from sim.driver import SimTransport

ROOT = Path(__file__).resolve().parents[2]

#: one-worker tests need not wait Kafka's 3 s for more members to join.
FAST = ClusterConfig(initial_rebalance_delay=0.1)


def run_app(app: Any, body: Any, *, seed: int = 0) -> Any:
    """Start ``app`` on a fresh simulated cluster, ``await body(cluster)``, stop it."""
    return testing.run_app(app, body, seed=seed, config=FAST)


def simulate(main: Any, *, seed: int = 0) -> Any:
    return testing.simulate(main, seed=seed, config=FAST)


async def feed(cluster: Any, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    """An upstream client writing ``(key, value)`` bytes to ``topic``."""
    producer = SimTransport(cluster=cluster, name="feed").create_producer(client_id="feed")
    for key, value in items:
        await producer.send(topic, key=key, value=value)


async def start_worker(app: Any, cluster: Any, name: str) -> Any:
    """Start ``app`` as worker ``name`` of ``cluster`` (several apps in one test)."""
    app.transport = SimTransport(cluster=cluster, name=name)
    app.client_name = name
    await app.start()
    return app


async def wait_for(predicate: Any, *, timeout: float = 60.0, step: float = 0.1) -> None:
    """Poll ``predicate`` in virtual time (no real waiting under the simulator)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        await asyncio.sleep(step)


def write_module(directory: Path, relative: str, source: str) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    return path


def python(*args: str, cwd: Path, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the venv's python in ``cwd`` with this repository importable."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, check=False)
