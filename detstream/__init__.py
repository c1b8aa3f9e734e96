"""detstream: the Faust App API on a deterministic simulator and on Kafka.

Port a Faust app with ``import detstream as faust``. This module is the whole
public surface; importing it has no side effects (no env, argv or loop access).
"""

from __future__ import annotations

from mode import Service

from ._types import TP, ConsumerRecord, RecordMetadata
from .agent import Agent, current_agent
from .app import App
from .channel import Channel
from .events import Event, current_event
from .models import FieldDescriptor, Model, Record
from .serializers import Schema
from .stream import Stream
from .table import Table
from .topic import Topic

__version__ = "0.1.0"

__all__ = [
    "TP",
    "Agent",
    "App",
    "Channel",
    "ConsumerRecord",
    "Event",
    "FieldDescriptor",
    "Model",
    "Record",
    "RecordMetadata",
    "Schema",
    "Service",
    "Stream",
    "Table",
    "Topic",
    "current_agent",
    "current_event",
]
