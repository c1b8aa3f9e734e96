"""Type names for annotations, as Faust's ``faust.types`` (``from faust.types import AppT, TP``).

Faust has abstract ``...T`` classes for its types; detstream has one class of
each, so the ``T`` names are aliases of the classes themselves and work with
``isinstance`` too. The generic ones take parameters as Faust's do:
``StreamT[Order]``, ``AgentT[Order]``, ``ChannelT[str]``, ``TopicT[Order]``,
``EventT[Order]``, ``TableT[str, int]``.

Faust spreads these over submodules (``faust.types.tuples``,
``faust.types.models``, ...); with the Faust alias (``detstream.faust_compat``)
every ``faust.types.<module>`` is this one namespace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from enum import Enum
from typing import Any

from mode import ServiceT

from ._types import TP, ConsumerRecord, RecordMetadata
from .agent import Agent
from .app import App
from .channel import Channel
from .codecs import Codec
from .events import Event, Message
from .fixups.base import Fixup
from .headers import merge_headers, prepare_headers
from .models import FieldDescriptor, Model, ModelOptions, Record
from .pending import PendingMessage
from .serializers import CodecArg, Schema
from .settings import Settings
from .stream import Stream
from .tables.table import Table
from .topic import Topic
from .web.cors import ResourceOptions
from .windows import Window, WindowRange

AppT = App
AgentT = Agent
ChannelT = Channel
CodecT = Codec
CollectionT = Table
EventT = Event
FieldDescriptorT = FieldDescriptor
FixupT = Fixup
ModelT = Model
RecordT = Record
SchemaT = Schema
StreamT = Stream
TableT = Table
TopicT = Topic
WindowT = Window

#: the message a consumer hands to a stream (Faust's ``ConsumerMessage`` is its ``Message``).
ConsumerMessage = Message
#: what a send's ``callback=`` is called with: the send's future, done; ``result()`` is the
#: broker's RecordMetadata (Faust's FutureMessage is such a future, with a ``message`` too).
FutureMessage = asyncio.Future
#: a key or a value as agents see them: anything the schema decodes to.
K = Any
V = Any
#: message headers as ``send`` takes them: a mapping or (name, bytes) pairs.
HeadersArg = Mapping[str, bytes] | list[tuple[str, bytes]] | None
#: what ``key_type``/``value_type`` take: a Record class, ``str`` or ``bytes``.
ModelArg = type[Model] | type[bytes] | type[str] | None
#: a value transform of ``stream.add_processor`` (sync or async).
Processor = Callable[[Any], Any]
#: what an agent's ``sink=`` takes: an agent, a channel or topic, or a callable.
SinkT = Agent | Channel | Callable[[Any], Any | Awaitable[Any]]


class ProcessingGuarantee(str, Enum):
    """The ``processing_guarantee`` setting's values (the strings work as well)."""

    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"

    def __str__(self) -> str:
        return self.value


__all__ = [
    "TP", "AgentT", "AppT", "ChannelT", "CodecArg", "CodecT", "CollectionT", "ConsumerMessage",
    "ConsumerRecord", "EventT", "FieldDescriptorT", "FixupT", "FutureMessage", "HeadersArg", "K", "Message",
    "ModelArg",
    "ModelOptions", "ModelT", "PendingMessage", "ProcessingGuarantee", "Processor",
    "RecordMetadata", "RecordT", "ResourceOptions", "merge_headers", "prepare_headers",
    "SchemaT", "ServiceT", "Settings", "SinkT", "StreamT", "TableT", "TopicT", "V", "WindowRange",
    "WindowT",
]
