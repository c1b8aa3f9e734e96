"""Plumbing shared by the integration tests that run ``detstream worker`` processes.

``now()`` (a monotonic clock for the harness), ``WorkerProcess`` (a subprocess with its
output in files), ``produce()`` (an aiokafka producer writing text as a Faust producer
does), ``fold_topic()`` (read a topic from the beginning, folding it, until a
condition holds, with a deadline) and ``click_counter()`` (an in-process app with a
short session, for the tests of a membership in doubt).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

REPO = Path(__file__).resolve().parents[2]
PYTHON = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable
PARTITIONS = 4
DEADLINE_S = 60.0


def now() -> float:
    return time.monotonic()  # noqa: TID251 - the test harness waits on real processes


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class WorkerProcess:
    """One subprocess (``PYTHON *args``, usually ``-m detstream worker ...``), output in files.

    stdout goes to ``<cwd>/<name>.out``, stderr to ``<cwd>/<name>.err``; ``timeout`` is the
    default bound of every wait.
    """

    def __init__(self, cwd: Path, env: dict[str, str], args: list[str], name: str,
                 *, timeout: float = DEADLINE_S) -> None:
        self.name = name
        self.timeout = timeout
        self.out_path, self.err_path = cwd / f"{name}.out", cwd / f"{name}.err"
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [PYTHON, *args], cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    def log(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait_for(self, text: str, *, in_log: bool = False, timeout: float | None = None) -> None:
        """Poll stdout (stderr with ``in_log``) until it contains ``text``; fail if it exits."""
        timeout = self.timeout if timeout is None else timeout
        deadline = now() + timeout
        while text not in (self.log() if in_log else self.output()):
            assert self.proc.poll() is None, f"{self.name} exited {self.proc.returncode}:\n{self.tail()}"
            assert now() < deadline, f"{self.name}: no {text!r} in {timeout}s\n{self.tail()}"
            time.sleep(0.05)

    def get(self, url: str, until: Callable[[int, Any], bool] = lambda status, body: True,
            timeout: float | None = None) -> tuple[int, dict[str, str], Any]:
        """GET ``url`` until it answers and ``until(status, json)`` holds (bounded)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = now() + timeout
        last: object = None
        while True:
            assert self.proc.poll() is None, f"{self.name} exited {self.proc.returncode}\n{self.tail()}"
            try:
                status, headers, body = http("GET", url)
                last = (status, body)
                if until(status, json.loads(body)):
                    return status, headers, json.loads(body)
            except (urllib.error.URLError, ConnectionError):
                pass  # not listening yet
            assert now() < deadline, f"GET {url}: last answer {last!r}\n{self.tail()}"
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code; the test fails if it does not exit within ``timeout``."""
        timeout = self.timeout if timeout is None else timeout
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{self.name} did not exit within {timeout}s\n{self.tail()}")

    def kill(self) -> None:
        """Teardown: SIGKILL it if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def tail(self, lines: int = 40) -> str:
        log = "\n".join(self.log().splitlines()[-lines:])
        return f"--- {self.name} stdout ---\n{self.output()}--- {self.name} stderr (tail) ---\n{log}"


async def committed_offset(bootstrap: str, group: str, topic: str) -> int | None:
    """The offset ``group`` committed for ``topic``'s partition 0 (None: nothing committed)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, values: list[str], *, keyed: bool = False,
                  value_serializer: str = "json") -> None:
    """Send ``values`` to ``topic``, acks=all; with ``keyed`` each value is its own key (utf-8).

    Values are written as a Faust producer writes text for a ``value_type=str``
    topic: JSON strings (``"text"``, the app's default ``value_serializer``).
    ``value_serializer="raw"`` writes them as plain utf-8 text instead, the
    upstream of a topic declared ``value_serializer="raw"``.
    """
    encoders = {"json": lambda v: json.dumps(v).encode(), "raw": str.encode}
    if value_serializer not in encoders:
        raise ValueError(f"produce(value_serializer={value_serializer!r}): expected json or raw")
    encode = encoders[value_serializer]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await asyncio.gather(*[
            await producer.send(topic, encode(v), key=v.encode() if keyed else None)
            for v in values
        ])
    finally:
        await producer.stop()


def apply_changelog(table: dict, record) -> None:
    """Fold one table changelog record (JSON key and value; None value deletes)."""
    key = json.loads(record.key)
    if record.value is None:
        table.pop(key, None)
    else:
        table[key] = json.loads(record.value)


async def fold_topic(
    bootstrap: str,
    topic: str,
    done: Callable[[Any], bool],
    what: str,
    *,
    state: Any = None,
    apply: Callable[[Any, Any], None] = apply_changelog,
    partitions: int = PARTITIONS,
    timeout: float = DEADLINE_S,
    at_end: bool = False,
    isolation_level: str = "read_uncommitted",
    poll_ms: int = 300,
) -> Any:
    """Read ``topic`` from the beginning, ``apply(state, record)`` each record, until ``done(state)``.

    ``state`` defaults to a new dict (a table changelog fold). With ``at_end`` it also waits
    until every partition is read to its end offset (the last stable offset when
    read_committed). Fails after ``timeout`` seconds naming ``what``; returns ``state``.
    """
    state = {} if state is None else state
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", isolation_level=isolation_level)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if done(state):
                if not at_end:
                    return state
                end = await consumer.end_offsets(tps)
                if all([await consumer.position(tp) >= end[tp] for tp in tps]):
                    return state
            assert loop.time() < deadline, (
                f"timed out after {timeout}s waiting for {what}; got: {state}"
            )
            for records in (await consumer.getmany(timeout_ms=poll_ms)).values():
                for r in records:
                    apply(state, r)
    finally:
        await consumer.stop()


@dataclass
class ClickCounter:
    """An in-process at-least-once app counting page clicks in a one-partition table."""

    app: Any
    clicks: Any
    #: the pages counted so far, in order
    seen: list[str] = field(default_factory=list)
    #: set once the expected number of clicks was counted
    counted: asyncio.Event = field(default_factory=asyncio.Event)

    async def start_with(self, bootstrap: str, pages: list[str]) -> None:
        """Create the clicks topic (one partition), write ``pages`` to it, start the app."""
        admin = self.app.transport.create_admin(client_id=f"{self.app.conf.id}-admin")
        await admin.create_topic(self.clicks.get_topic_name(), partitions=1)
        await admin.stop()
        await produce(bootstrap, self.clicks.get_topic_name(), pages)
        await self.app.start()


def click_counter(bootstrap: str, prefix: str, expected: int, *, commit_interval: float) -> ClickCounter:
    """A click counter with a 6 s session and a heartbeat every second: its membership goes in
    doubt 3 s after the last answered heartbeat, and the group expels it 6 s after."""
    import detstream

    app = detstream.App(
        f"{prefix}-app", broker=f"kafka://{bootstrap}", web_enabled=False,
        broker_session_timeout=6.0, broker_heartbeat_interval=1.0,
        broker_commit_interval=commit_interval, table_standby_replicas=0,
    )
    clicks = app.topic(f"{prefix}-clicks", value_type=str)
    counts = app.Table("counts", default=int, partitions=1)
    counter = ClickCounter(app, clicks)

    @app.agent(clicks)
    async def count(stream):
        async for page in stream:
            counts[page] += 1
            counter.seen.append(page)
            if len(counter.seen) == expected:
                counter.counted.set()

    return counter
