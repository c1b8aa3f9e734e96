"""A real Kafka broker in a container for your tests, started with testcontainers.

The image is the one ``scripts/kafka-image`` builds (Kafka 4.x, KRaft, one node, on a jlink-ed
Java runtime, with an AppCDS archive): its entrypoint waits for the address clients must be
given before it starts the broker, and :class:`KafkaContainer` writes that address (the host
port Docker published for the container's port 9092) into it once the container runs, then
waits for the broker's "Kafka Server started" log line. testcontainers' own ``KafkaContainer``
knows only Confluent's images, which is why this one exists.

    from detstream.testing_kafka import KafkaContainer, use_loopback_docker

    use_loopback_docker()               # before the first container, on a machine like CI's
    with KafkaContainer("detstream/kafka:4.4.0-<hash>") as kafka:
        app = detstream.App("demo", broker=f"kafka://{kafka.get_bootstrap_server()}")

Needs the ``testcontainers`` package (``pip install testcontainers``, or detstream's ``dev``
extra). Nothing here is imported by ``import detstream``.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import time
from typing import Any

import docker
import docker.errors
from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

__all__ = [
    "IMAGE_ENV",
    "READY_LINE",
    "KafkaContainer",
    "remove_leftover_containers",
    "use_loopback_docker",
]

#: The environment variable that names the image (as ``scripts/kafka-image`` prints it).
IMAGE_ENV = "DETSTREAM_TEST_KAFKA_IMAGE"
#: What the broker logs once it serves clients.
READY_LINE = "Kafka Server started"
#: Where the entrypoint looks for the advertised address (then for this path + ".done").
ADVERTISED_PATH = "/opt/kafka/advertised"
CLIENT_PORT = 9092

OWNER_PID_LABEL = "org.detstream.owner-pid"
OWNER_HOST_LABEL = "org.detstream.owner-host"
TESTCONTAINERS_LABEL = "org.testcontainers"
SESSION_LABEL = "org.testcontainers.session-id"

#: What :func:`use_loopback_docker` sets, unless the environment already says otherwise.
LOOPBACK_ENV = {
    # The reaper (Ryuk) is an image from a registry: none is reachable here.
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    # Reach containers through their published ports on the Docker host ...
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
    # ... which is this machine: inside a container (/.dockerenv) testcontainers would
    # otherwise dial the bridge gateway.
    "TESTCONTAINERS_HOST_OVERRIDE": "127.0.0.1",
}


def _now() -> float:
    return time.monotonic()  # noqa: TID251 - real time: a container starts in real time


def use_loopback_docker() -> None:
    """Use a Docker engine on this machine, over loopback, without the Ryuk reaper.

    Sets the variables of :data:`LOOPBACK_ENV` that are not set yet, and applies them to
    testcontainers' configuration even if testcontainers was imported before (it reads some
    of them at import time). Containers that outlive their test session without Ryuk are
    removed by :class:`KafkaContainer`'s watchdog or :func:`remove_leftover_containers`.
    """
    from testcontainers.core.config import ConnectionMode
    from testcontainers.core.config import testcontainers_config as config

    for name, value in LOOPBACK_ENV.items():
        os.environ.setdefault(name, value)
    config.ryuk_disabled = os.environ["TESTCONTAINERS_RYUK_DISABLED"].lower() in (
        "1", "true", "t", "y", "yes",
    )  # fmt: skip
    config.connection_mode_override = ConnectionMode(os.environ["TESTCONTAINERS_CONNECTION_MODE"])
    config.tc_host_override = (
        os.environ.get("TC_HOST") or os.environ["TESTCONTAINERS_HOST_OVERRIDE"]
    )


class KafkaContainer(DockerContainer):
    """A one-node Kafka broker from a ``scripts/kafka-image`` image.

    ``host_ip`` is the host interface the client port is published on (``None``: the
    daemon's default). ``heap`` is the broker's ``-Xmx``; ``cds=False`` starts it without its
    AppCDS archive (slower; for comparing). With ``watchdog`` (the default), a small detached
    process removes the container if this process dies without stopping it, as Ryuk would.
    An image the engine does not have is an error (``LookupError``) unless ``pull`` is set.
    Extra keyword arguments go to testcontainers' ``DockerContainer``.

    After :meth:`start`: :meth:`get_bootstrap_server` gives ``host:port``, and
    :attr:`ready_seconds` how long the container took from its creation to the ready line.
    """

    def __init__(
        self,
        image: str | None = None,
        *,
        host_ip: str | None = "127.0.0.1",
        heap: str = "512m",
        cds: bool = True,
        watchdog: bool = True,
        startup_timeout: int = 120,
        pull: bool = False,
        **kwargs: Any,
    ) -> None:
        image = image or os.environ.get(IMAGE_ENV)
        if not image:
            raise ValueError(f"no image: pass one or set {IMAGE_ENV} (scripts/kafka-image)")
        self.watchdog = watchdog
        labels = dict(kwargs.pop("labels", None) or {})
        labels[OWNER_PID_LABEL] = str(os.getpid())
        labels[OWNER_HOST_LABEL] = socket.gethostname()
        super().__init__(image, labels=labels, **kwargs)
        # docker-py takes (interface, None) as "this interface, any free port".
        binding: Any = (host_ip, None) if host_ip else None
        self.ports[f"{CLIENT_PORT}/tcp"] = binding
        self.with_env("KAFKA_HEAP", heap)
        if not cds:
            self.with_env("KAFKA_CDS", "0")
        self.startup_timeout = startup_timeout
        self.pull = pull
        self.bootstrap_server: str | None = None
        self.ready_seconds: float | None = None

    def start(self) -> KafkaContainer:
        if not self.pull:
            try:  # rather than let testcontainers pull it from a registry
                self.get_docker_client().client.images.get(self.image)
            except docker.errors.ImageNotFound:
                raise LookupError(
                    f"no image {self.image} in the Docker engine: build it with"
                    " scripts/kafka-image (or pass pull=True to pull it)"
                ) from None
        t0 = _now()
        try:
            super().start()
            host = self.get_container_host_ip()
            port = self.get_exposed_port(CLIENT_PORT)
            self.bootstrap_server = f"{host}:{port}"
            self._tell_advertised(self.bootstrap_server)
            if self.watchdog:
                _spawn_watchdog(os.getpid(), self.get_container_id())
            LogMessageWaitStrategy(READY_LINE).with_startup_timeout(
                self.startup_timeout
            ).with_poll_interval(0.1).wait_until_ready(self)
        except BaseException:
            self.stop()
            raise
        self.ready_seconds = _now() - t0
        return self

    def _tell_advertised(self, address: str) -> None:
        """Put ``address`` and then the ``.done`` marker into the container, in one archive."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (
                (ADVERTISED_PATH, f"{address}\n".encode()),
                (ADVERTISED_PATH + ".done", b""),
            ):
                info = tarfile.TarInfo(name.lstrip("/"))
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
        if not self.get_wrapped_container().put_archive("/", buf.getvalue()):
            raise OSError(f"could not write {ADVERTISED_PATH} into the container")

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """Remove the container; a second call (or one after it is gone) does nothing."""
        with contextlib.suppress(docker.errors.NotFound):
            super().stop(force=force, delete_volume=delete_volume)
        self._container = None

    def get_bootstrap_server(self) -> str:
        if self.bootstrap_server is None:
            raise RuntimeError("the container is not started")
        return self.bootstrap_server


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def remove_leftover_containers(client: Any = None, *, this_session: bool = False) -> list[str]:
    """Remove testcontainers containers (``org.testcontainers=true``) left behind.

    Those that :class:`KafkaContainer` created (they carry the owner's pid and host name)
    whose owner process on this host has died, and with ``this_session``, every container of
    this process's testcontainers session, whatever its class (call it at the end of a test
    session). Other processes' containers are left alone: a Docker engine may be shared.
    Returns the ids of the removed containers.
    """
    from testcontainers.core.labels import SESSION_ID

    client = client or docker.from_env()
    removed = []
    host = socket.gethostname()
    for container in client.containers.list(
        all=True, filters={"label": f"{TESTCONTAINERS_LABEL}=true"}
    ):
        labels = container.labels or {}
        mine = this_session and labels.get(SESSION_LABEL) == SESSION_ID
        try:
            owner = int(labels.get(OWNER_PID_LABEL, ""))
        except ValueError:
            owner = 0
        orphan = owner > 0 and labels.get(OWNER_HOST_LABEL) == host and not _owner_alive(owner)
        if mine or orphan:
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
                removed.append(container.id)
    return removed


def _spawn_watchdog(owner_pid: int, container_id: str) -> None:
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}
    subprocess.Popen(
        [sys.executable, "-m", __name__, "_watch", str(owner_pid), container_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        env=env,
    )


def _watch(owner_pid: int, container_id: str) -> None:
    """Remove the container when ``owner_pid`` dies; return when the container is gone."""
    client = docker.from_env()
    checked = _now()
    while _owner_alive(owner_pid):
        time.sleep(1.0)
        if _now() - checked > 10:
            checked = _now()
            try:
                client.containers.get(container_id)
            except docker.errors.NotFound:
                return
    with contextlib.suppress(docker.errors.NotFound):
        client.containers.get(container_id).remove(force=True)


if __name__ == "__main__" and sys.argv[1:2] == ["_watch"]:
    _watch(int(sys.argv[2]), sys.argv[3])
