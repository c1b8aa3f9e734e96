"""aiokafka's admin client against the simulated brokers: create, delete, describe configs."""

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from sim.cluster import ClusterConfig
from sim.testing import simulate
from sim.wire.broker import serve_cluster

BOOTSTRAP = [("localhost", 9092)]
TOPIC_DELETION_DISABLED, UNKNOWN_TOPIC_OR_PARTITION = 73, 3
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5


async def _admin(cluster) -> AIOKafkaAdminClient:
    serve_cluster(asyncio.get_running_loop(), cluster, BOOTSTRAP)
    admin = AIOKafkaAdminClient(bootstrap_servers="localhost:9092")
    await admin.start()
    return admin


def _entries(response) -> dict[str, tuple[str, int]]:
    (resource,) = response.resources
    return {name: (value, source) for name, value, _ro, source, _sensitive, _syn in resource[4]}


def test_a_topic_describes_its_own_configs_and_the_defaults_the_cluster_applies():
    async def main(cluster):
        admin = await _admin(cluster)
        try:
            await admin.create_topics([NewTopic("counts", 2, 1, topic_configs={"cleanup.policy": "compact"})])
            (everything,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "counts")])
            (some,) = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, "counts", {"max.message.bytes": None})]
            )
            (missing,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "nope")])
            return _entries(everything), _entries(some), missing.resources[0][:2]
        finally:
            await admin.close()

    everything, some, missing = simulate(main, seed=1)
    assert everything["cleanup.policy"] == ("compact", DYNAMIC_TOPIC_CONFIG)
    assert everything["max.message.bytes"] == ("1048588", DEFAULT_CONFIG)  # Kafka's default
    assert everything["delete.retention.ms"] == ("86400000", DEFAULT_CONFIG)
    assert some == {"max.message.bytes": ("1048588", DEFAULT_CONFIG)}
    assert missing[0] == UNKNOWN_TOPIC_OR_PARTITION


def test_a_broker_describes_the_settings_the_simulated_cluster_runs_with():
    async def main(cluster):
        admin = await _admin(cluster)
        try:
            (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "2")])
            return _entries(response)
        finally:
            await admin.close()

    entries = simulate(main, seed=1, config=ClusterConfig(default_partitions=4))
    assert entries["num.partitions"] == ("4", STATIC_BROKER_CONFIG)  # not Kafka's default of 1
    assert entries["auto.create.topics.enable"] == ("true", DEFAULT_CONFIG)


def test_deleting_a_topic_is_refused_as_by_a_broker_with_topic_deletion_disabled():
    async def main(cluster):
        cluster.create_topic("orders", 1, by="operator")
        admin = await _admin(cluster)
        try:
            response = await admin.delete_topics(["orders", "nope"])
            return dict(response.topic_error_codes), sorted(await admin.list_topics())
        finally:
            await admin.close()

    errors, topics = simulate(main, seed=1)
    assert errors == {"orders": TOPIC_DELETION_DISABLED, "nope": UNKNOWN_TOPIC_OR_PARTITION}
    assert "orders" in topics  # the topic and its records stay


def test_the_production_drivers_admin_rides_out_a_broker_that_is_down():
    """A worker starting while a broker restarts: aiokafka sends a metadata request to a random
    known broker and raises NodeNotReadyError when that one is down; detstream's admin asks
    another instead of failing the start (found on the wire: word_count, chaos seed 2)."""
    import detstream
    from sim.wire.cluster import WireCluster

    async def main(cluster):
        cluster.create_topic("orders", 3, by="operator")
        wire = WireCluster(cluster)
        app = detstream.App("admin-check", broker="kafka://localhost:9092")
        admin = wire.transport_for(app).create_admin(client_id="admin-check")
        try:
            assert await admin.partitions_for("orders") == 3  # every broker known, all up
            cluster.brokers.crash(2)  # still in the metadata until the controller notices
            return [await admin.partitions_for("orders") for _ in range(12)], await admin.list_topics()
        finally:
            await admin.stop()

    counts, topics = simulate(main, seed=1)
    assert counts == [3] * 12
    assert "orders" in topics
