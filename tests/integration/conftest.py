"""Integration tests against a real Kafka broker.

`kafka_bootstrap` ("host:port", session scope) is, in order of preference:
  1. DETSTREAM_TEST_BROKER=host:port -- an external broker you run yourself;
  2. a testcontainers Kafka container, when the package is installed and a Docker engine answers
     (image: DETSTREAM_TEST_KAFKA_IMAGE, default confluentinc/cp-kafka:8.0.0, i.e. Kafka 4.0);
  3. a local single-node KRaft broker from scripts/kafka-local (jars from Maven Central, cached
     outside the repo), started in a temp dir and stopped at session end.
Without Java 17 (and no 1./2.) every test here is SKIPPED, loudly.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KAFKA_LOCAL = REPO / "scripts" / "kafka-local"
NO_JAVA = "Java 17 not found: integration tests against a real Kafka broker were SKIPPED"

_skip_banner: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    for line in _skip_banner:
        terminalreporter.write_sep("!", line, red=True, bold=True)


def _skip_loudly(reason: str) -> None:
    _skip_banner.append(reason)
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


def _java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool((home and (Path(home) / "bin" / "java").is_file()) or shutil.which("java"))


def _try_testcontainers() -> tuple[str, Callable[[], object]] | None:
    try:
        import docker  # installed with testcontainers
        from testcontainers.kafka import KafkaContainer
    except ImportError:
        return None
    try:
        docker.from_env(timeout=5).ping()
    except Exception:
        return None  # no Docker engine reachable (client only, no socket, ...)
    image = os.environ.get("DETSTREAM_TEST_KAFKA_IMAGE", "confluentinc/cp-kafka:8.0.0")
    container = KafkaContainer(image).with_kraft()
    try:
        container.start(timeout=180)
    except Exception as exc:  # fall back to the local broker rather than fail the session
        warnings.warn(f"testcontainers Kafka ({image}) failed to start: {exc!r}", stacklevel=1)
        try:
            container.stop()
        except Exception:
            pass
        return None
    return container.get_bootstrap_server(), container.stop


def _kafka_local(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(KAFKA_LOCAL), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _check(proc: subprocess.CompletedProcess[str], what: str) -> str:
    if proc.returncode == 2:  # kafka-local: a needed tool (java >= 17, mvn) is missing
        detail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
        if "Java" in detail:
            _skip_loudly(f"{NO_JAVA} ({detail})")
        _skip_loudly(
            f"{detail or 'a needed tool is missing'}: integration tests against a real Kafka"
            " broker were SKIPPED"
        )
    if proc.returncode != 0:
        pytest.fail(f"scripts/kafka-local {what} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("DETSTREAM_TEST_BROKER")
    if external:
        yield external
        return

    container = _try_testcontainers()
    if container is not None:
        bootstrap, stop = container
        try:
            yield bootstrap
        finally:
            stop()
        return

    if not _java_available():
        _skip_loudly(NO_JAVA)
    _check(_kafka_local("fetch", timeout=900), "fetch")
    rundir = tmp_path_factory.mktemp("kafka")
    bootstrap = _check(
        _kafka_local(
            "start",
            "--dir",
            str(rundir),
            "--timeout",
            "120",
            "--watch-pid",
            str(os.getpid()),
            timeout=240,
        ),
        "start",
    )
    try:
        yield bootstrap
    finally:
        proc = _kafka_local("stop", "--dir", str(rundir), timeout=120)
        if proc.returncode != 0:
            warnings.warn(f"kafka-local stop failed: {proc.stderr}", stacklevel=1)
        shutil.rmtree(rundir / "data", ignore_errors=True)  # keep kafka.log for post-mortems


_topic_seq = itertools.count()


async def _create_topic(bootstrap: str, name: str, partitions: int, timeout_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        resp = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1)],
            timeout_ms=int(timeout_s * 1000),
        )
        errors = [e for e in resp.topic_errors if e[1] != 0]
        if errors:
            raise RuntimeError(f"create_topics({name}) failed: {errors}")
        # Creation is acknowledged by the controller; wait (bounded) until every partition has
        # a leader in the metadata the broker serves, so producers don't race it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            (desc,) = await admin.describe_topics([name])
            parts = desc.get("partitions") or []
            if (
                desc.get("error_code") == 0
                and len(parts) == partitions
                and all(p.get("leader", -1) >= 0 for p in parts)
            ):
                return
            if loop.time() > deadline:
                raise TimeoutError(f"topic {name} not ready after {timeout_s}s: {desc}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


@pytest.fixture
def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Factory: new_topic(partitions=1) creates a uniquely named topic and returns its name."""

    def make(partitions: int = 1, timeout_s: float = 30.0) -> str:
        base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
        name = f"it-{base}-{next(_topic_seq)}-{secrets.token_hex(4)}"
        asyncio.run(_create_topic(kafka_bootstrap, name, partitions, timeout_s))
        return name

    return make
