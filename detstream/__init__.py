"""detstream: the Faust App API on a deterministic simulator and on Kafka.

Port a Faust app with ``import detstream as faust``: every name Faust exports
at its top level is here, the ``...T`` type names included (``faust.StreamT``;
the rest are in ``detstream.types``). Or run it unmodified with the Faust
alias (``detstream sim --faust-compat``, see ``detstream.faust_compat``).
This module is the whole public surface; importing it has no side effects
(no env, argv or loop access).
"""

from __future__ import annotations

from mode import Service, ServiceT

from ._types import TP, ConsumerRecord, RecordMetadata
from .agent import Agent, current_agent
from .app import App
from .auth import GSSAPICredentials, OAuthCredentials, SASLCredentials, SSLCredentials
from .channel import Channel
from .clock import uuid_str as uuid
from .codecs import Codec
from .events import Event, current_event
from .fields import (
    BooleanField,
    BytesField,
    CharField,
    DatetimeField,
    DecimalField,
    FloatField,
    IntegerField,
    NumberField,
    StringField,
)
from .models import FieldDescriptor, Model, ModelOptions, Record
from .monitor import Monitor
from .sensors import Sensor, SensorDelegate
from .serializers import Schema
from .settings import Settings
from .stream import Stream
from .tables.global_table import GlobalTable
from .tables.set_table import ChangeloggedSet, SetGlobalTable, SetTable
from .tables.table import Table
from .tables.windowed import WindowSet, WindowWrapper
from .topic import Topic
from .types import ChannelT, EventT, StreamT, TopicT
from .windows import HoppingWindow, SlidingWindow, TumblingWindow, Window
from .worker import Worker

__version__ = "0.1.0"

__all__ = [
    "BooleanField",
    "BytesField",
    "CharField",
    "DatetimeField",
    "DecimalField",
    "FloatField",
    "IntegerField",
    "NumberField",
    "StringField",
    "TP",
    "Agent",
    "App",
    "ChangeloggedSet",
    "Channel",
    "ChannelT",
    "Codec",
    "ConsumerRecord",
    "Event",
    "EventT",
    "FieldDescriptor",
    "GSSAPICredentials",
    "GlobalTable",
    "HoppingWindow",
    "Model",
    "ModelOptions",
    "Monitor",
    "OAuthCredentials",
    "Record",
    "RecordMetadata",
    "SASLCredentials",
    "SSLCredentials",
    "Schema",
    "Sensor",
    "SensorDelegate",
    "Service",
    "ServiceT",
    "SetGlobalTable",
    "SetTable",
    "Settings",
    "SlidingWindow",
    "Stream",
    "StreamT",
    "Table",
    "Topic",
    "TopicT",
    "TumblingWindow",
    "Window",
    "WindowSet",
    "WindowWrapper",
    "Worker",
    "current_agent",
    "current_event",
    "uuid",
]
