"""detstream.testing_kafka: the user's fixture of docs/testing.md, and the container watchdog.

These start containers of their own, so they run only with
DETSTREAM_TEST_BACKEND=testcontainers (scripts/test-all's second pytest run); with another
backend they are skipped.
"""

from __future__ import annotations

import os
import re
import signal
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
