"""Type names for annotations, as Faust's ``faust.types`` (``from faust.types import AppT, TP``).

Faust has abstract ``...T`` classes for its types; detstream has one class of
each, so the ``T`` names are aliases of the classes themselves and work with
``isinstance`` too.
"""

from __future__ import annotations

from ._types import TP, ConsumerRecord, RecordMetadata
from .agent import Agent
from .app import App
from .channel import Channel
from .events import Event, Message
from .models import Model, Record
from .serializers import Schema
from .settings import Settings
from .stream import Stream
from .tables.table import Table
from .topic import Topic

AppT = App
AgentT = Agent
ChannelT = Channel
EventT = Event
ModelT = Model
RecordT = Record
SchemaT = Schema
StreamT = Stream
TableT = Table
TopicT = Topic

__all__ = [
    "TP", "AgentT", "AppT", "ChannelT", "ConsumerRecord", "EventT", "Message", "ModelT",
    "RecordMetadata", "RecordT", "SchemaT", "Settings", "StreamT", "TableT", "TopicT",
]
