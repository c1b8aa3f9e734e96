"""detstream: the Faust App API on a deterministic simulator and on Kafka.

Port a Faust app with ``import detstream as faust``. This module is the whole
public surface; importing it has no side effects (no env, argv or loop access).
"""

from __future__ import annotations

from mode import Service

from ._types import TP, ConsumerRecord, RecordMetadata
from .agent import Agent, current_agent
from .app import App
from .auth import GSSAPICredentials, OAuthCredentials, SASLCredentials, SSLCredentials
from .channel import Channel
from .events import Event, current_event
from .models import FieldDescriptor, Model, Record
from .serializers import Schema
from .stream import Stream
from .tables.global_table import GlobalTable
from .tables.set_table import ChangeloggedSet, SetGlobalTable, SetTable
from .tables.table import Table
from .tables.windowed import WindowSet, WindowWrapper
from .topic import Topic
from .windows import HoppingWindow, SlidingWindow, TumblingWindow, Window
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "TP",
    "Agent",
    "App",
    "ChangeloggedSet",
    "Channel",
    "ConsumerRecord",
    "Event",
    "FieldDescriptor",
    "GSSAPICredentials",
    "GlobalTable",
    "HoppingWindow",
    "Model",
    "OAuthCredentials",
    "Record",
    "RecordMetadata",
    "SASLCredentials",
    "SSLCredentials",
    "Schema",
    "Service",
    "SetGlobalTable",
    "SetTable",
    "SlidingWindow",
    "Stream",
    "Table",
    "Topic",
    "TumblingWindow",
    "Window",
    "WindowSet",
    "WindowWrapper",
    "Worker",
    "current_agent",
    "current_event",
]
