"""A connection closed with requests in flight is aborted, so nothing it sent can land late.

TCP loses nothing: a request written to a socket while the host is cut off
from the broker waits in the kernel, which retransmits it until the cut
heals. Closing the socket does not take it back: an orphaned connection
keeps retransmitting for a minute or two under Linux's defaults, and a
process killed with ``kill -9`` leaves its sockets to the same fate. So a
produce request of a worker that gave up on it (aiokafka closes the
connection of a request that timed out), that stopped while cut off, or
that died, could reach the broker when the cut healed, after the
partition's new owner had written the same key: at-least-once cannot fence
such a write, and the changelog would end with the older value (Kafka's
Java clients and aiokafka leave the same hole). The simulator found it
running aiokafka on the wire (timer_producer, default seed 9: a count of
11 where 80 ticks were counted).

Here every aiokafka connection of the process is set, once connected, to
abort on close (``SO_LINGER`` on, 0 s: the kernel sends RST and discards
what the broker had not acknowledged), and a close with no response
awaited switches back to an ordinary close first, so a graceful stop, an
idle connection's close or an acks=0 send still reach the broker. What
aborts: a connection closed with requests in flight (a request timeout, a
stop that gave up) and every connection of a process that dies.

Only the Kafka driver's modules import this one.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from aiokafka.conn import AIOKafkaConnection

from detstream import compat

__all__ = ["ABORT", "GRACEFUL", "install"]

#: ``SO_LINGER`` values: on with a 0 s timeout (abort: RST, unsent data discarded), and off.
ABORT = struct.pack("ii", 1, 0)
GRACEFUL = struct.pack("ii", 0, 0)


def _set_linger(connection: Any, value: bytes) -> None:
    sock = compat.connection_socket(connection)
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, value)
    except OSError:  # the socket is gone already: nothing of it can land late
        pass


def aborts_when_closed(connection: Any) -> None:
    """From now on, closing ``connection`` (or the process dying) aborts it."""
    _set_linger(connection, ABORT)


def closing(connection: Any) -> None:
    """An ordinary close when no response is awaited; an abort otherwise."""
    if not compat.awaits_responses(connection):
        _set_linger(connection, GRACEFUL)


def install() -> None:
    """Every aiokafka connection of the process aborts when closed in flight (idempotent)."""
    compat.on_connection_events(AIOKafkaConnection, aborts_when_closed, closing)
