"""Integration tests against a real Kafka broker.

`kafka_bootstrap` ("host:port", session scope) comes from the backend that
DETSTREAM_TEST_BACKEND names:
  local           a single-node KRaft broker from scripts/kafka-local (jars from Maven Central,
                  cached outside the repo), started in a temp dir and stopped at session end;
                  without Java 17 every test here is SKIPPED, loudly. The default.
  testcontainers  a container of the image scripts/kafka-image builds (detstream.testing_kafka):
                  DETSTREAM_TEST_KAFKA_IMAGE names it, else scripts/kafka-image is run to build
                  or reuse it (installing and starting a Docker engine if needed). Host
                  networking, no bridge: the broker is on 127.0.0.1, all traffic on
                  loopback. Chosen explicitly, so a failure FAILS the session: no
                  fallback, no skip.
  external        DETSTREAM_TEST_BROKER=host:port, a broker you run yourself. Also the default
                  when DETSTREAM_TEST_BROKER is set and no backend is named.
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
KAFKA_IMAGE = REPO / "scripts" / "kafka-image"
NO_JAVA = "Java 17 not found: integration tests against a real Kafka broker were SKIPPED"
BACKENDS = ("local", "testcontainers", "external")

_skip_banner: list[str] = []
_info_lines: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    for line in _info_lines:
        terminalreporter.write_line(line)
    for line in _skip_banner:
        terminalreporter.write_sep("!", line, red=True, bold=True)


def _skip_loudly(reason: str) -> None:
    _skip_banner.append(reason)
    warnings.warn(reason, stacklevel=2)
    pytest.skip(reason)


def _java_available() -> bool:
    home = os.environ.get("JAVA_HOME")
    return bool((home and (Path(home) / "bin" / "java").is_file()) or shutil.which("java"))


def chosen_backend() -> str:
    """DETSTREAM_TEST_BACKEND, else external if DETSTREAM_TEST_BROKER is set, else local."""
    backend = os.environ.get("DETSTREAM_TEST_BACKEND", "").strip().lower()
    if not backend:
        return "external" if os.environ.get("DETSTREAM_TEST_BROKER") else "local"
    if backend not in BACKENDS:
        pytest.fail(f"DETSTREAM_TEST_BACKEND={backend!r}: expected one of {', '.join(BACKENDS)}")
    return backend


# --------------------------------------------------------------------------- testcontainers


_image: list[str] = []


def _kafka_image_tag() -> str:
    """DETSTREAM_TEST_KAFKA_IMAGE, else what scripts/kafka-image builds (or finds built)."""
    if _image:
        return _image[0]
    image = os.environ.get("DETSTREAM_TEST_KAFKA_IMAGE") or _build_kafka_image()
    _image.append(image)
    return image


def _build_kafka_image() -> str:
    try:
        proc = subprocess.run(
            [sys.executable, str(KAFKA_IMAGE)],
            capture_output=True,
            text=True,
            timeout=1800,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"testcontainers backend: scripts/kafka-image timed out:\n{exc.stderr}")
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(
            f"testcontainers backend: scripts/kafka-image failed ({proc.returncode}):\n"
            f"{proc.stderr}"
        )
    return proc.stdout.strip().splitlines()[-1]


def _testcontainers_broker() -> Iterator[str]:
    try:
        from detstream.testing_kafka import (
            KafkaContainer,
            remove_leftover_containers,
            use_loopback_docker,
        )
    except ImportError as exc:
        pytest.fail(f"testcontainers backend: {exc} (pip install testcontainers)")
    image = _kafka_image_tag()
    use_loopback_docker()
    try:
        remove_leftover_containers()  # of sessions killed before their teardown
        container = KafkaContainer(image).start()
    except Exception as exc:
        pytest.fail(f"testcontainers backend: Kafka container ({image}) did not start: {exc!r}")
    bootstrap = container.get_bootstrap_server()
    _info_lines.append(
        f"Kafka broker: testcontainers, {image} at {bootstrap}, "
        f"ready {container.ready_seconds:.1f}s after the container was created"
    )
    try:
        yield bootstrap
    finally:
        container.stop()
        remove_leftover_containers(this_session=True)


# --------------------------------------------------------------------------- local


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


def _local_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
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
    _info_lines.append(f"Kafka broker: local (scripts/kafka-local) at {bootstrap}")
    try:
        yield bootstrap
    finally:
        proc = _kafka_local("stop", "--dir", str(rundir), timeout=120)
        if proc.returncode != 0:
            warnings.warn(f"kafka-local stop failed: {proc.stderr}", stacklevel=1)
        shutil.rmtree(rundir / "data", ignore_errors=True)  # keep kafka.log for post-mortems


@pytest.fixture(scope="session")
def kafka_image() -> str:
    """The Kafka image tag, for tests that start containers of their own (testcontainers only)."""
    if chosen_backend() != "testcontainers":
        pytest.skip("starts Kafka containers: runs with DETSTREAM_TEST_BACKEND=testcontainers")
    return _kafka_image_tag()


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backend = chosen_backend()
    if backend == "external":
        external = os.environ.get("DETSTREAM_TEST_BROKER")
        if not external:
            pytest.fail("DETSTREAM_TEST_BACKEND=external needs DETSTREAM_TEST_BROKER=host:port")
        _info_lines.append(f"Kafka broker: external, {external}")
        yield external
    elif backend == "testcontainers":
        yield from _testcontainers_broker()
    else:
        yield from _local_broker(tmp_path_factory)


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
