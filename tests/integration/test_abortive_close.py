"""aiokafka's connections to a real broker abort when closed with requests in flight.

A request held by a network cut would otherwise be retransmitted by the kernel after its
client gave up, or after its process died, and land late (docs/production.md, Guarantees).
``detstream.transport.kafka.abortive_close`` sets ``SO_LINGER`` (on, 0 s) once connected and
switches it off for a close that awaits no response.
"""

from __future__ import annotations

import asyncio
import socket

from aiokafka import AIOKafkaClient
from aiokafka.protocol.metadata import MetadataRequest

from detstream import compat
from detstream.transport.kafka import abortive_close
from detstream.transport.kafka.abortive_close import ABORT, GRACEFUL


def _linger(connection) -> bytes:
    return compat.connection_socket(connection).getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)


def test_a_connection_aborts_on_close_while_it_awaits_a_response_and_closes_plainly_else(
    kafka_bootstrap: str,
) -> None:
    abortive_close.install()

    async def run() -> list[bytes]:
        client = AIOKafkaClient(bootstrap_servers=kafka_bootstrap, client_id="linger")
        await client.bootstrap()
        try:
            node = client.get_random_node()
            await client.send(node, MetadataRequest([]))
            connection = next(iter(client._conns.values()))
            seen = [_linger(connection)]  # connected: closing would abort
            abortive_close.closing(connection)  # nothing awaited: an ordinary close
            seen.append(_linger(connection))
            abortive_close.aborts_when_closed(connection)
            pending = connection.send(MetadataRequest([]))
            assert compat.awaits_responses(connection)  # written, its response awaited
            abortive_close.closing(connection)  # a response awaited: the close aborts
            seen.append(_linger(connection))
            await pending
            return seen
        finally:
            await client.close()

    assert asyncio.run(run()) == [ABORT, GRACEFUL, ABORT]
