"""A real Kafka broker in a container for your tests, started with testcontainers.

The image is the one ``scripts/kafka-image`` builds (Kafka 4.x, KRaft, one node, on a jlink-ed
Java runtime, with an AppCDS archive). :class:`KafkaContainer` runs it with host networking
(``network_mode="host"``) on three free ports of 127.0.0.1 that it picks before the start (the
client listener, and the broker's own inter-broker and controller listeners), then waits for
the broker's "Kafka Server started" log line. testcontainers' own ``KafkaContainer`` knows only
Confluent's images, which is why this one exists.

All traffic stays on loopback: the broker listens on 127.0.0.1 of this machine and advertises
``127.0.0.1:<client port>``, so a client's connections go from 127.0.0.1 to 127.0.0.1. There is
no published port, hence no docker-proxy forwarding to a container address on a bridge (Docker's
default, 172.17.0.x); ``scripts/kafka-image`` starts its engine with ``--bridge=none``.

    from detstream.testing_kafka import KafkaContainer, use_loopback_docker

    use_loopback_docker()               # before the first container, on a machine like CI's
    with KafkaContainer("detstream/kafka:4.4.0-<hash>") as kafka:
        app = detstream.App("demo", broker=f"kafka://{kafka.get_bootstrap_server()}")

Needs the ``testcontainers`` package (``pip install testcontainers``, or detstream's ``dev``
extra), and an engine on this machine (host networking shares this machine's loopback with the
container). Nothing here is imported by ``import detstream``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
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
#: The broker's address on this machine (with host networking, the container's too).
LOOPBACK = "127.0.0.1"
#: Tries with new ports when one was taken between picking it and the broker's bind.
START_ATTEMPTS = 3

OWNER_PID_LABEL = "org.detstream.owner-pid"
OWNER_HOST_LABEL = "org.detstream.owner-host"
TESTCONTAINERS_LABEL = "org.testcontainers"
SESSION_LABEL = "org.testcontainers.session-id"

#: What :func:`use_loopback_docker` sets, unless the environment already says otherwise.
LOOPBACK_ENV = {
    # The reaper (Ryuk) is an image from a registry: none is reachable here.
    "TESTCONTAINERS_RYUK_DISABLED": "true",
    # KafkaContainer needs neither (its broker is on 127.0.0.1 with host networking), but for
    # other containers and get_container_host_ip(): the Docker host is this machine, over
    # loopback; inside a container (/.dockerenv) testcontainers would otherwise dial the
    # bridge gateway, a private address.
    "TESTCONTAINERS_CONNECTION_MODE": "docker_host",
    "TESTCONTAINERS_HOST_OVERRIDE": LOOPBACK,
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


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports of 127.0.0.1 that nothing listens on (the kernel's choice)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in socks]


class KafkaContainer(DockerContainer):
    """A one-node Kafka broker from a ``scripts/kafka-image`` image, on 127.0.0.1.

    The container runs with host networking; its broker listens on 127.0.0.1 only, on free
    ports picked at :meth:`start` (a port taken meanwhile by another process: a new start
    with new ports, up to :data:`START_ATTEMPTS` times). ``heap`` is the broker's ``-Xmx``;
    ``cds=False`` starts it without its AppCDS archive (slower; for comparing). With
    ``watchdog`` (the default), a small detached process removes the container if this
    process dies without stopping it, as Ryuk would. An image the engine does not have is an
    error (``LookupError``) unless ``pull`` is set. Extra keyword arguments go to
    testcontainers' ``DockerContainer`` (not ``network_mode``: it is ``"host"``).

    After :meth:`start`: :meth:`get_bootstrap_server` gives ``127.0.0.1:<port>``,
    :attr:`port` that port, and :attr:`ready_seconds` how long the container took from its
    creation to the ready line.
    """

    def __init__(
        self,
        image: str | None = None,
        *,
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
        super().__init__(image, labels=labels, network_mode="host", **kwargs)
        self.with_env("KAFKA_HEAP", heap)
        if not cds:
            self.with_env("KAFKA_CDS", "0")
        self.startup_timeout = startup_timeout
        self.pull = pull
        self.port: int | None = None
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
        for attempt in range(1, START_ATTEMPTS + 1):
            port, internal, controller = _free_ports(3)
            self.with_envs(
                KAFKA_PORT=str(port),
                KAFKA_INTERNAL_PORT=str(internal),
                KAFKA_CONTROLLER_PORT=str(controller),
            )
            t0 = _now()
            try:
                super().start()
                if self.watchdog:
                    _spawn_watchdog(os.getpid(), self.get_container_id())
                LogMessageWaitStrategy(READY_LINE).with_startup_timeout(
                    self.startup_timeout
                ).with_poll_interval(0.1).wait_until_ready(self)
            except RuntimeError:  # as when the container exited before the ready line
                taken = self._container is not None and any(
                    b"Address already in use" in out for out in self.get_logs()
                )
                self.stop()
                if taken and attempt < START_ATTEMPTS:
                    continue
                raise
            except BaseException:
                self.stop()
                raise
            self.port = port
            self.ready_seconds = _now() - t0
            break
        return self

    def stop(self, force: bool = True, delete_volume: bool = True) -> None:
        """Remove the container; a second call (or one after it is gone) does nothing."""
        with contextlib.suppress(docker.errors.NotFound):
            super().stop(force=force, delete_volume=delete_volume)
        self._container = None
        self.port = None

    def get_bootstrap_server(self) -> str:
        if self.port is None:
            raise RuntimeError("the container is not started")
        return f"{LOOPBACK}:{self.port}"


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
