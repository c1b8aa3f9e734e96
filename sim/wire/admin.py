"""Topic administration on the wire: CreateTopics, DeleteTopics, DescribeConfigs.

Creating and deleting topics is the controller's job (the first live
broker; any other answers NOT_CONTROLLER and aiokafka's admin client
refreshes its metadata and tries the controller). The simulated cluster
never deletes a topic (its logs, leaders and groups assume topics only
grow), so it answers DeleteTopics as a Kafka broker run with
``delete.topic.enable=false`` does: TOPIC_DELETION_DISABLED for a topic that
exists, UNKNOWN_TOPIC_OR_PARTITION for one that does not. DescribeConfigs
lists the configs the cluster applies: a topic's own (``DYNAMIC_TOPIC_CONFIG``)
and, for the ones it leaves unset, the default the cluster applies
(``DEFAULT_CONFIG``); a broker's group and topic creation settings. Configs
the simulated cluster does not model are not listed.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiokafka.protocol import admin as structs

from sim.cluster import TOPIC_DEFAULTS

from .codec import Decoded

__all__ = ["Administering", "create_topics", "delete_topics", "describe_configs"]

NO_ERROR, UNKNOWN_TOPIC_OR_PARTITION, INVALID_REQUEST = 0, 3, 42
TOPIC_ALREADY_EXISTS, INVALID_PARTITIONS, NOT_CONTROLLER = 36, 37, 41
TOPIC_DELETION_DISABLED = 73
#: ``ConfigResource`` types.
TOPIC, BROKER = 2, 4
#: ``config_source`` of a described config.
DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 1, 4, 5
#: Kafka's defaults of the broker settings DescribeConfigs lists, as the cluster names them.
_BROKER_DEFAULTS = {
    "num.partitions": "1",
    "auto.create.topics.enable": "true",
    "group.initial.rebalance.delay.ms": "3000",
    "log.cleaner.delete.retention.ms": "86400000",
}


class Administering(Protocol):
    """The broker an admin request reached."""

    cluster: Any
    number: int


def _controller(broker: Administering) -> int | None:
    brokers = broker.cluster.brokers
    return next((b for b in sorted(brokers.up) if brokers.registered(b)), None)


def create_topics(broker: Administering, request: Decoded) -> Any:
    """Create topics as the controller; the configs become the topic's."""
    body = request.body
    is_controller = _controller(broker) == broker.number
    errors: list[tuple[str, int, str | None]] = []
    for topic, partitions, _factor, _assignment, configs in body.create_topic_requests:
        if not is_controller:
            errors.append((topic, NOT_CONTROLLER, None))
        elif topic in broker.cluster.topics:
            errors.append((topic, TOPIC_ALREADY_EXISTS, f"Topic '{topic}' already exists."))
        elif partitions < 1:
            errors.append((topic, INVALID_PARTITIONS, "Number of partitions must be larger than 0."))
        else:
            if not body.validate_only:
                broker.cluster.create_topic(topic, partitions, dict(configs), by=request.client_id)
            errors.append((topic, NO_ERROR, None))
    return _response(request, "CreateTopicsResponse", 0, errors)


def delete_topics(broker: Administering, request: Decoded) -> Any:
    """Refuse to delete, as a broker with ``delete.topic.enable=false`` does."""
    is_controller = _controller(broker) == broker.number
    errors: list[tuple[str, int]] = []
    for topic in request.body.topics:
        if not is_controller:
            errors.append((topic, NOT_CONTROLLER))
        elif topic not in broker.cluster.topics:
            errors.append((topic, UNKNOWN_TOPIC_OR_PARTITION))
        else:
            errors.append((topic, TOPIC_DELETION_DISABLED))
    # v1 to v3 share one response layout (v2 and v3 only add error codes a client may see).
    return _response(request, "DeleteTopicsResponse", 0, errors)


def describe_configs(broker: Administering, request: Decoded) -> Any:
    """The configs the cluster applies to each topic or broker asked about."""
    resources = [
        _describe(broker, kind, name, names) for kind, name, names in request.body.resources
    ]
    return _response(request, "DescribeConfigsResponse", 0, resources)


def _response(request: Decoded, api: str, *fields: Any) -> Any:
    """aiokafka's response struct for the request's version (the versions served share a layout)."""
    return getattr(structs, f"{api}_v{request.api_version}")(*fields)


def _describe(broker: Administering, kind: int, name: str, names: list[str] | None) -> tuple[Any, ...]:
    if kind == TOPIC:
        topic = broker.cluster.topics.get(name)
        if topic is None:
            return (UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.", kind, name, [])
        entries = _topic_configs(broker, topic.config)
    elif kind == BROKER:
        if name not in ("", str(broker.number)):
            message = f"Unexpected broker id, expected {broker.number} or empty string, but received {name}"
            return (INVALID_REQUEST, message, kind, name, [])
        entries = _broker_configs(broker)
    else:
        return (INVALID_REQUEST, f"Unsupported resource type {kind}", kind, name, [])
    wanted = [(n, v, s) for n, v, s in entries if names is None or n in names]
    return (NO_ERROR, None, kind, name, [(n, v, False, s, False, []) for n, v, s in wanted])


def _topic_configs(broker: Administering, config: dict[str, str]) -> list[tuple[str, str, int]]:
    retention = str(int(broker.cluster.config.delete_retention * 1000))
    defaults = {**TOPIC_DEFAULTS, "delete.retention.ms": retention}
    entries = [(n, str(v), DYNAMIC_TOPIC_CONFIG) for n, v in config.items()]
    entries += [(n, v, DEFAULT_CONFIG) for n, v in defaults.items() if n not in config]
    return sorted(entries)


def _broker_configs(broker: Administering) -> list[tuple[str, str, int]]:
    config = broker.cluster.config
    values = {
        "num.partitions": str(config.default_partitions),
        "auto.create.topics.enable": str(config.auto_create_topics).lower(),
        "group.initial.rebalance.delay.ms": str(int(config.initial_rebalance_delay * 1000)),
        "log.cleaner.delete.retention.ms": str(int(config.delete_retention * 1000)),
    }
    return sorted(
        (n, v, DEFAULT_CONFIG if _BROKER_DEFAULTS[n] == v else STATIC_BROKER_CONFIG)
        for n, v in values.items()
    )
