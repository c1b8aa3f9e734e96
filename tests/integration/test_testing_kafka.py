"""detstream.testing_kafka: the user's fixture of docs/testing.md, loopback only, the watchdog.

These start containers of their own, so they run only with
DETSTREAM_TEST_BACKEND=testcontainers (scripts/test-all's second pytest run); with another
backend they are skipped.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def docs_fixture_example() -> dict[str, str]:
    """The python blocks of "A fixture for your tests" whose first line names their path."""
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text[text.index("### A fixture for your tests") :]
    section = section[: section.index("\n### ", 1)]
    return dict(re.findall(r"```python\n# (\S+\.py)\n(.*?)```", section, re.S))


def test_the_docs_fixture_example_passes(kafka_image: str, tmp_path: Path) -> None:
    files = docs_fixture_example()
    assert sorted(files) == ["tests/conftest.py", "tests/test_orders.py"]
    for path, source in files.items():
        (tmp_path / path).parent.mkdir(exist_ok=True)
        (tmp_path / path).write_text(source)
    env = {**os.environ, "DETSTREAM_TEST_KAFKA_IMAGE": kafka_image}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


OWNER = """
import sys
from detstream.testing_kafka import KafkaContainer, use_loopback_docker
use_loopback_docker()
kafka = KafkaContainer(sys.argv[1]).start()
print(kafka.get_container_id(), flush=True)
sys.stdin.read()  # until killed
"""


def test_the_watchdog_removes_the_container_of_a_killed_process(kafka_image: str) -> None:
    import docker

    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, kafka_image],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    client = docker.from_env()
    try:
        assert owner.stdout is not None
        container_id = owner.stdout.readline().strip()
        assert container_id, "the owner process did not start its container"
        container = client.containers.get(container_id)
        assert container.status == "running"
    finally:
        owner.send_signal(signal.SIGKILL)  # no teardown: only the watchdog can remove it
        owner.wait(timeout=30)
    try:  # returns once the container is removed; raises if that takes longer
        container.wait(condition="removed", timeout=30)
    except docker.errors.NotFound:
        pass  # already removed
    except Exception as exc:  # requests' ReadTimeout, ConnectionError
        pytest.fail(f"container {container_id[:12]} not removed 30 s after its owner died: {exc!r}")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get(container_id)


def listening_addresses(ports: list[int]) -> dict[int, set[str]]:
    """The local addresses of this network namespace's listening TCP sockets on ``ports``.

    (IPv4-mapped IPv6 addresses as IPv4 ones: ``::ffff:127.0.0.1`` is ``127.0.0.1``.)
    """
    found: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as fh:
            for line in list(fh)[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, port = local.split(":")
                if state != "0A" or int(port, 16) not in ports:  # 0A: LISTEN
                    continue
                if len(addr) == 8:
                    ip = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1])
                else:  # four little-endian 32-bit words
                    raw = b"".join(bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, 32, 8))
                    ip = socket.inet_ntop(socket.AF_INET6, raw).removeprefix("::ffff:")
                found.setdefault(int(port, 16), set()).add(ip)
    return found


async def advertised_brokers(bootstrap: str) -> list[tuple[str, int]]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
    finally:
        await admin.close()
    return [(b["host"], b["port"]) for b in cluster["brokers"]]


def test_the_broker_is_on_loopback_only_and_a_taken_port_is_retried(
    kafka_image: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from detstream import testing_kafka
    from detstream.testing_kafka import KafkaContainer, use_loopback_docker

    use_loopback_docker()
    picked: list[list[int]] = []
    real_free_ports = testing_kafka._free_ports
    with socket.socket() as held:  # a client port taken between its pick and the broker's bind
        held.bind(("127.0.0.1", 0))
        held.listen()

        def free_ports(n: int) -> list[int]:
            ports = real_free_ports(n)
            if not picked:
                ports[0] = held.getsockname()[1]
            picked.append(ports)
            return ports

        monkeypatch.setattr(testing_kafka, "_free_ports", free_ports)
        with KafkaContainer(kafka_image, watchdog=False) as kafka:
            assert len(picked) == 2, "the start with a taken port was not retried"
            ports = picked[1]
            assert kafka.get_bootstrap_server() == f"127.0.0.1:{ports[0]}"
            host_config = kafka.get_wrapped_container().attrs["HostConfig"]
            assert host_config["NetworkMode"] == "host"
            assert not host_config["PortBindings"]  # nothing published: no docker-proxy
            # Host networking: the broker's sockets are this namespace's, all on 127.0.0.1.
            assert listening_addresses(ports) == {port: {"127.0.0.1"} for port in ports}
            brokers = asyncio.run(advertised_brokers(kafka.get_bootstrap_server()))
            assert brokers == [("127.0.0.1", ports[0])]
