"""The simulated brokers on the wire answer as Kafka does: the same requests, both answers.

Each exchange sends aiokafka's own requests (negotiated versions, as the
driver sends them) to a fresh topic and an unused group, and keeps the parts
of the answers that carry meaning (error codes, offsets, counts): node ids,
host names and throttle times differ by design. Kafka's answer is the
expectation; the wire broker (``sim.wire``) must give the same one. A new
API served on the wire gets an exchange here.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.protocol.admin import CreateTopicsRequest
from aiokafka.protocol.commit import OffsetFetchRequest
from aiokafka.protocol.coordination import FindCoordinatorRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.offset import OffsetRequest
from aiokafka.protocol.transaction import InitProducerIdRequest

from sim.testing import simulate
from sim.wire.broker import serve_cluster

EARLIEST, LATEST = -2, -1


async def exchanges(bootstrap: str, topic: str, group: str) -> dict[str, Any]:
    """What a broker answers to a few of the requests the driver sends, normalised."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, client_id="wire-vs-broker")
    await client.bootstrap()
    try:
        node = client.get_random_node()
        seen: dict[str, Any] = {}
        metadata = await client.send(node, MetadataRequest([topic]))
        seen["metadata"] = [(error, name, len(partitions)) for error, name, _, partitions in metadata.topics]
        client.cluster.update_metadata(metadata)  # brokers and leaders, as aiokafka learns them
        leader = client.cluster.leader_for_partition(_tp(topic))
        for name, at in (("earliest", EARLIEST), ("latest", LATEST)):
            offsets = await client.send(leader, OffsetRequest(-1, 0, [(topic, [(0, at)])]))
            seen[name] = [(t, [(p[0], p[1], p[-1]) for p in parts]) for t, parts in offsets.topics]
        found = await client.send(node, FindCoordinatorRequest(group, 0))
        seen["find-coordinator"] = found.error_code
        fetched = await client.send(found.coordinator_id, OffsetFetchRequest(group, [(topic, [0])]))
        seen["offset-fetch"] = (
            getattr(fetched, "error_code", 0),
            [(t, [(p[0], p[1], p[3]) for p in parts]) for t, parts in fetched.topics],
        )
        producer = await client.send(node, InitProducerIdRequest(None, 60_000))
        seen["init-producer-id"] = (producer.error_code, producer.producer_epoch)
        controller = metadata.controller_id
        again = await client.send(controller, CreateTopicsRequest([(topic, 1, 1, [], [])], 30_000, False))
        seen["create-existing"] = [(name, error) for name, error, *_ in again.topic_errors]
        return seen
    finally:
        await client.close()


def _tp(topic: str) -> Any:
    from aiokafka.structs import TopicPartition

    return TopicPartition(topic, 0)


def test_the_wire_broker_answers_these_requests_as_kafka_does(kafka_bootstrap, new_topic):
    topic = new_topic(1)
    group = f"wire-vs-broker-{secrets.token_hex(4)}"
    kafka = asyncio.run(exchanges(kafka_bootstrap, topic, group))

    async def on_the_wire(cluster):
        cluster.create_topic(topic, 1, by="operator")
        serve_cluster(asyncio.get_running_loop(), cluster, [("localhost", 9092)])
        return await exchanges("localhost:9092", topic, group)

    assert simulate(on_the_wire, seed=1) == kafka
