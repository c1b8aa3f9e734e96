"""An in-memory connection between a client's protocol and a simulated broker, on the virtual loop.

``connect(loop, protocol, broker)`` hands ``protocol`` (aiokafka's
``AIOKafkaProtocol``, a ``StreamReaderProtocol``) a transport whose writes
go to the broker: each complete request frame is served in arrival order,
one at a time per connection as a Kafka broker does, and its response
reaches ``protocol.data_received`` after the network's latency (and what
the client host's network faults add: ``sim.wire.network``). A broker that
is down closes the connection at the next request. Closing either side
ends the connection for both.

``VirtualEventLoop.create_connection`` looks addresses up in the loop's
``simulated_endpoints`` (``install``); any other address is still refused as
real I/O.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import struct
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from sim.loop import task_owner

__all__ = ["Endpoint", "MemoryTransport", "frames", "install", "sever"]

_SIZE = struct.Struct(">i")


def frames(buffer: bytearray) -> list[bytes]:
    """Take every complete frame's message out of ``buffer`` (a partial one stays)."""
    found = []
    while len(buffer) >= 4:
        (size,) = _SIZE.unpack_from(buffer)
        if len(buffer) < 4 + size:
            break
        found.append(bytes(buffer[4:4 + size]))
        del buffer[:4 + size]
    return found


class Endpoint(Protocol):
    """A simulated broker as a connection sees it."""

    name: str

    def latency(self) -> float:
        """Seconds a request or a response spends on the wire."""

    def held(self, client: str | None, what: str, message: bytes = b"") -> float:
        """Seconds the client host's faults add to a message (a request: ``message``), or ``RESET`` (< 0)."""

    def in_flight(self, client: str | None) -> float:
        """Of the seconds ``held`` adds now, those a message spends travelling (a ``delay``
        fault's), not waiting in the sender's kernel for a cut to heal."""

    def discarded(self, client: str | None) -> None:
        """A request the network held was discarded with its aborted connection."""

    def alive(self) -> bool:
        """False while the broker is down: its connections close."""

    async def serve(self, message: bytes, client: str | None) -> bytes | None:
        """The framed response to one request message (None: the broker closes the connection).

        May wait (a fetch's long poll): the connection's next request waits for it, as on Kafka.
        ``client`` is the owner of the connection (its host's faults apply to it).
        """


class SimSocket:
    """The socket under a simulated connection: only the options a client sets on it.

    ``SO_LINGER`` on with 0 s makes a close an abort: the kernel discards
    what the peer has not received (the Kafka driver sets it, see
    ``detstream.transport.kafka.abortive_close``).
    """

    def __init__(self) -> None:
        self.linger = (0, 0)

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        if level == socket.SOL_SOCKET and option == socket.SO_LINGER:
            self.linger = struct.unpack("ii", value)

    def getsockopt(self, level: int, option: int, size: int = 0) -> Any:
        if level == socket.SOL_SOCKET and option == socket.SO_LINGER:
            return struct.pack("ii", *self.linger)
        return 0

    @property
    def aborts(self) -> bool:
        """Whether closing the connection now aborts it."""
        return bool(self.linger[0]) and self.linger[1] == 0


class MemoryTransport(asyncio.Transport):
    """The client's end of one connection to a simulated broker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: asyncio.Protocol, broker: Endpoint):
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._broker = broker
        self._buffer = bytearray()
        self._requests: deque[bytes] = deque()
        self._serving: asyncio.Task[None] | None = None
        self._closed = False
        self._socket = SimSocket()
        #: closed as an abort (``SO_LINGER`` 0): what the network still held is discarded.
        self.aborted = False
        #: when the last response scheduled reaches the client: responses keep their order.
        self._last_arrival = 0.0
        #: the worker process whose task opened it (``sim.loop.task_owner``): its crash closes it.
        self.owner = task_owner.get()
        connections = getattr(loop, "simulated_connections", None)
        if connections is not None:
            connections[self] = None

    # -- the client writes ---------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closed:
            return
        self._buffer += data
        self._requests.extend(frames(self._buffer))
        if self._requests and (self._serving is None or self._serving.done()):
            # owned by no worker: a request on the wire arrives even if its sender is killed
            self._serving = contextvars.Context().run(
                self._loop.create_task, self._serve(), name=f"wire-{self._broker.name}"
            )

    async def _serve(self) -> None:
        """Requests in arrival order, one at a time; each response after the way there and back.

        Responses come back in the order of their requests, as on a TCP
        connection: each one's latency is drawn, but it arrives no earlier
        than the one before it (aiokafka matches them by correlation id and
        fails the connection otherwise).

        A request written before the connection closed is still served (the
        kernel delivered it), its response goes nowhere; unless the network
        held it (a partition, a retransmission) and the connection was
        aborted meanwhile: the kernel discarded it with the abort.
        """
        broker = self._broker
        while self._requests:
            message = self._requests.popleft()
            held = broker.held(self.owner, "request", message)
            waits_in_kernel = held > broker.in_flight(self.owner)
            await asyncio.sleep(broker.latency() + max(held, 0.0))
            if waits_in_kernel and self.aborted:  # discarded with the abort, never sent again
                for _ in range(1 + len(self._requests)):
                    broker.discarded(self.owner)
                self._requests.clear()
                return
            if held < 0 or not broker.alive():  # reset on the way, or nobody to answer
                self.close()
                return
            response = await broker.serve(message, self.owner)
            back = broker.held(self.owner, "response") if response is not None else 0.0
            if response is None or back < 0 or not broker.alive():
                self.close()  # the request was applied; its answer is lost with the connection
                return
            if not self._closed:
                # a stream: a response may not overtake the one before it on the way back
                arrival = max(self._loop.time() + broker.latency() + back, self._last_arrival)
                self._last_arrival = arrival
                self._loop.call_at(arrival, self._deliver, response)

    def _deliver(self, response: bytes) -> None:
        if not self._closed:
            self._protocol.data_received(response)

    # -- the rest of the transport API asyncio's streams use --------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.aborted = self._socket.aborts
        connections = getattr(self._loop, "simulated_connections", None)
        if connections is not None:
            connections.pop(self, None)
        self._loop.call_soon(self._protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self._closed

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name in ("peername", "sockname"):
            return (self._broker.name, 0)
        if name == "socket":
            return self._socket
        return default

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self._protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return not self._closed


def install(loop: Any, address: tuple[str, int], broker: Callable[[], Endpoint]) -> None:
    """Make connections to ``address`` on ``loop`` reach ``broker()`` (looked up at connect time)."""
    loop.simulated_endpoints[address] = broker


def sever(loop: Any, owner: str) -> int:
    """Close every connection ``owner``'s tasks opened (its process was killed); how many."""
    connections = [c for c in getattr(loop, "simulated_connections", {}) if c.owner == owner]
    for connection in connections:
        connection.close()
    return len(connections)
