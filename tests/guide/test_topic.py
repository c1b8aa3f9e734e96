"""Guide: "app.topic() -- Create a topic-description" and its arguments."""

import asyncio
import json
from datetime import timedelta

import detstream as faust

from .helpers import feed, run_app


class MyValueModel(faust.Record):
    name: str
    value: float


def test_an_agent_reads_the_topic_it_is_given():
    app = faust.App("topics", broker="sim://")
    topic = app.topic("name_of_topic")
    seen = []

    @app.agent(topic)
    async def process(stream):
        async for event in stream:
            seen.append(event)

    async def body(cluster):
        cluster.create_topic("name_of_topic", 1, by="test")  # described, not created, by the app
        await asyncio.sleep(1)
        await feed(cluster, "name_of_topic", [(None, b'{"hello": "world"}')])
        await asyncio.sleep(3)

    run_app(app, body)
    assert seen == [{"hello": "world"}]  # the app's default value_serializer is json


def test_key_type_and_value_type_decode_keys_and_values():
    app = faust.App("types", broker="sim://")
    topic = app.topic("name_of_topic", key_type=bytes, value_type=MyValueModel, internal=True)
    seen = []

    @app.agent(topic)
    async def process(stream):
        async for key, value in stream.items():
            seen.append((key, value))

    async def body(cluster):
        await asyncio.sleep(1)
        await topic.send(key=b"k1", value=MyValueModel(name="x", value=1.5))
        await asyncio.sleep(3)

    run_app(app, body)
    assert seen == [(b"k1", MyValueModel(name="x", value=1.5))]
    assert faust.App("d").topic("t").schema.key_type is None  # the default: keys stay bytes


def test_serializers_per_topic_else_the_apps_settings():
    app = faust.App("codecs", broker="sim://", value_serializer="json")
    raw = app.topic("raw-topic", value_serializer="raw", internal=True, partitions=1)
    default = app.topic("json-topic", internal=True, partitions=1)

    async def body(cluster):
        await asyncio.sleep(1)
        await (await raw.send(value=b"bytes as is"))
        await (await default.send(value={"a": 1}))
        return cluster.records("raw-topic")[0].value, cluster.records("json-topic")[0].value

    raw_value, json_value = run_app(app, body)
    assert raw_value == b"bytes as is"
    assert json.loads(json_value) == {"a": 1}


def test_partitions_retention_and_compacting_configure_internal_topics():
    app = faust.App("config", broker="sim://", topic_partitions=5)
    app.topic("sized", partitions=3, internal=True)
    app.topic("defaulted", internal=True)
    app.topic("kept", retention=timedelta(hours=1), internal=True)
    app.topic("compacted", compacting=True, internal=True)
    app.topic("external-feed", partitions=None)  # externally managed: not created

    async def body(cluster):
        await asyncio.sleep(1)
        return {name: (state.partitions, state.config) for name, state in cluster.topics.items()}

    topics = run_app(app, body)
    assert topics["sized"][0] == 3 and topics["defaulted"][0] == 5
    assert topics["kept"][1]["retention.ms"] == "3600000"
    assert topics["compacted"][1]["cleanup.policy"] == "compact"
    assert "external-feed" not in topics


def test_acks_false_means_you_acknowledge_each_event_yourself():
    app = faust.App("acks", broker="sim://")
    manual = app.topic("manual", internal=True, partitions=1, acks=False, value_type=str)
    auto = app.topic("auto", internal=True, partitions=1, value_type=str)

    @app.agent(manual)
    async def acks_half(stream):
        async for event in stream.events():
            if event.value != "skip-ack":
                event.ack()

    @app.agent(auto)
    async def auto_acked(stream):
        async for _ in stream:
            pass

    async def body(cluster):
        await asyncio.sleep(1)
        for value in ["a", "b", "skip-ack", "c"]:
            await manual.send(value=value)
            await auto.send(value=value)
        await asyncio.sleep(10)
        committed = cluster.group("acks").committed
        return committed.get(faust.TP("manual", 0)), committed.get(faust.TP("auto", 0))

    # the commit point stops at the event never acked; the auto-acked topic commits all 4
    assert run_app(app, body) == (2, 4)


def test_internal_topics_are_the_ones_the_app_creates():
    app = faust.App("internal", broker="sim://")
    app.topic("ours", internal=True)
    app.topic("theirs")

    async def body(cluster):
        await asyncio.sleep(1)
        return sorted(n for n in cluster.topics if not n.startswith("internal-__assignor"))

    assert run_app(app, body) == ["ours"]


def test_maxsize_is_the_buffer_size_of_its_streams():
    app = faust.App("buffers", broker="sim://", stream_buffer_maxsize=100)
    assert app.topic("small", maxsize=7).subscribe().maxsize == 7
    assert app.topic("default").subscribe().maxsize == 100  # the stream_buffer_maxsize setting
