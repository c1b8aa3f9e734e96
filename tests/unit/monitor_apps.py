"""What the tests of the metric monitors (statsd, Datadog, Prometheus) share.

A counting app run on the simulator (8 words, each taking an agent 0.25 s of
virtual time), a UDP socket standing in for a statsd or DogStatsD server, and
read without sleeping: ``recv`` with a timeout until the lines expected came.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import detstream
from sim import testing as sim_testing
from sim.cluster import ClusterConfig

FAST = ClusterConfig(initial_rebalance_delay=0.1)
WORDS = 8


def counting_app(app_id: str, **settings: Any) -> tuple[detstream.App, Any]:
    """An app counting words of topic ``words`` (2 partitions) in table ``counts``."""
    app = detstream.App(app_id, broker="sim://", topic_partitions=2, **settings)
    topic = app.topic("words", partitions=2, internal=True, value_type=str)
    counts = app.Table("counts", default=int, partitions=2)

    @app.agent(topic)
    async def count(stream: Any) -> None:
        async for word in stream:
            counts[word] += 1
            await asyncio.sleep(0.25)

    return app, topic


def run_counting(app: detstream.App, topic: Any, *, body: Any = None, seed: int = 4) -> str:
    """Run ``app`` on the simulator, send it :data:`WORDS` words; the run's trace digest."""
    async def feed(cluster: Any) -> Any:
        await asyncio.sleep(1)
        for i in range(WORDS):
            await topic.send(key=f"k{i % 2}".encode(), value=f"w{i % 3}")
        await asyncio.sleep(8)
        if body is not None:
            await body(app)
        return cluster

    return str(sim_testing.run_app(app, feed, seed=seed, config=FAST).trace.sha256())


@contextmanager
def udp_server() -> Iterator[socket.socket]:
    """A UDP socket on 127.0.0.1 (``getsockname()[1]`` is its port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    try:
        yield sock
    finally:
        sock.close()


def receive_lines(sock: socket.socket, count: int, *, prefix: str = "") -> list[str]:
    """The next ``count`` lines starting with ``prefix`` (one packet may hold several).

    Each ``recv`` waits at most the socket's timeout: a line that never comes
    fails the test with ``socket.timeout``, nothing sleeps.
    """
    lines: list[str] = []
    while len(lines) < count:
        packet = sock.recv(65535).decode("utf-8")
        lines.extend(line for line in packet.splitlines() if line.startswith(prefix))
    return lines
