"""``app.on_produce_message``: each record the app sends, shown to its handlers before it goes.

Faust's producer sends the signal from its ``send``, which every record
passes: topic sends, table changelogs, agent replies. Here the senders call
``hooked_headers`` themselves (topics, tables, agent replies, ``detstream
send``), after one ``has_receivers()`` check per send, or per changelog flush:
with no handler connected, no record costs a call.

Handlers are called as ``handler(app, key=, value=, partition=, timestamp=,
headers=)``, with the key and value as bytes and ``headers`` a list of
``(name, bytes)`` pairs the record goes out with, which they may change
(LiveCheck adds its test headers there).
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Headers", "ProduceSignal", "hooked_headers"]

#: a record's headers as the producer takes them.
Headers = tuple[tuple[str, bytes], ...]


class ProduceSignal(Protocol):
    """``app.on_produce_message`` as the senders see it (a bound ``SyncSignal``)."""

    def has_receivers(self) -> bool: ...

    def send(self, **kwargs: Any) -> None: ...


def hooked_headers(
    signal: ProduceSignal, key: bytes | None, value: bytes | None, partition: int | None,
    timestamp: float | None, headers: Headers = (),
) -> Headers:
    """Send ``signal`` for one record; the headers it goes out with, as the handlers left them."""
    header_list = list(headers)
    signal.send(key=key, value=value, partition=partition, timestamp=timestamp,
                headers=header_list)
    return tuple((str(name), bytes(data)) for name, data in header_list)
