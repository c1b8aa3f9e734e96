"""Faust's public names: what ``import detstream as faust`` must answer for Faust code to import."""

from collections.abc import AsyncIterable

import pytest

import detstream
from detstream import errors, types

#: the names faust-streaming 0.15 exports at its top level (its ``__all__``), less two it
#: lists without defining (``AppCommand`` and ``Command`` live in ``faust.cli``).
FAUST_TOP_LEVEL = [
    "Agent", "App", "Channel", "ChannelT", "Event", "EventT", "Model", "ModelOptions", "Record",
    "Monitor", "Schema", "Sensor", "SetTable", "SetGlobalTable", "Codec", "Service", "ServiceT",
    "Stream", "StreamT", "current_event", "Table", "GlobalTable", "Topic", "TopicT",
    "GSSAPICredentials", "SASLCredentials", "OAuthCredentials", "SSLCredentials", "Settings",
    "HoppingWindow", "TumblingWindow", "SlidingWindow", "Window", "Worker", "uuid",
]

FAUST_EXCEPTIONS = [
    "FaustError", "FaustWarning", "SecurityError", "SecurityWarning", "NotReady", "Skip",
    "AlreadyConfiguredWarning", "ImproperlyConfigured", "ValidationError", "DecodeError",
    "KeyDecodeError", "ValueDecodeError", "SameNode", "ProducerSendError", "ConsumerNotStarted",
    "PartitionsMismatch", "ConsistencyError",
]


@pytest.mark.parametrize("name", FAUST_TOP_LEVEL)
def test_every_faust_top_level_name_is_exported(name):
    assert name in detstream.__all__
    assert getattr(detstream, name) is not None


@pytest.mark.parametrize("name", FAUST_EXCEPTIONS)
def test_every_faust_exception_name_exists(name):
    assert issubclass(getattr(errors, name), Exception)


def test_stream_agent_channel_topic_event_table_are_generic_as_faust_types():
    """``faust.Stream[Request]`` (task_queue.py) and friends subscript at run time."""

    async def process(tasks: detstream.Stream[int]) -> AsyncIterable[int]:
        async for task in tasks:
            yield task

    assert process.__annotations__["tasks"] == detstream.Stream[int]
    assert types.StreamT[float].__origin__ is detstream.Stream
    assert types.AgentT[str].__origin__ is detstream.Agent
    assert types.ChannelT[str].__origin__ is detstream.Channel
    assert types.TopicT[str].__origin__ is detstream.Topic
    assert types.EventT[str].__origin__ is detstream.Event
    assert types.TableT[str, int].__origin__ is detstream.Table
    assert issubclass(detstream.Topic, detstream.ChannelT)


def test_processing_guarantee_enum_is_a_valid_setting():
    app = detstream.App("pg", processing_guarantee=types.ProcessingGuarantee.EXACTLY_ONCE)
    assert app.exactly_once
    assert app.conf.processing_guarantee == "exactly_once"
    assert type(app.conf.processing_guarantee) is str


def test_uuid_is_text():
    first, second = detstream.uuid(), detstream.uuid()
    assert isinstance(first, str) and len(first) == 36 and first != second


def test_same_node_and_consumer_not_started_are_detstream_errors():
    assert issubclass(errors.SameNode, errors.FaustError)
    assert issubclass(errors.ConsumerNotStarted, errors.NotReady)
    assert issubclass(errors.SecurityWarning, UserWarning)
