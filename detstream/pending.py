"""A message on its way to a channel or topic, and the future of its sending (Faust's tuples).

``channel.as_future_message(...)`` makes a :class:`FutureMessage` holding a
:class:`PendingMessage`; ``channel.publish_message(fut)`` sends it and
resolves the future with the ``RecordMetadata`` (for an in-memory channel:
topic ``"<anon>"``, partition and offset -1, as Faust's). ``channel.send()``
is the two in one.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

__all__ = ["FutureMessage", "PendingMessage"]


@dataclasses.dataclass
class PendingMessage:
    """What to send (Faust's ``PendingMessage``); a topic's key and value are bytes by now."""

    channel: Any
    key: Any
    value: Any
    partition: int | None = None
    timestamp: float | None = None
    headers: Any = None
    key_serializer: Any = None
    value_serializer: Any = None
    callback: Any = None
    topic: str | None = None
    offset: int | None = None


class FutureMessage(asyncio.Future):
    """The future of a :class:`PendingMessage`'s sending (its ``message``): resolved with the
    ``RecordMetadata`` once sent."""

    def __init__(self, message: PendingMessage) -> None:
        super().__init__()
        self.message = message
