"""Faust's settings that detstream has no use for, supports only at their default, or names otherwise.

A Faust project passes any of Faust's ~110 settings; detstream refuses
unknown names (a typo must not pass silently), so Faust's own names are
listed here, each with why:

- ``IGNORED``: tuning or plumbing of Faust's implementation that detstream
  does differently. Accepted with any value (``app.conf`` returns it), and a
  value other than Faust's default is logged once per process as having no
  effect.
- ``DEFAULT_ONLY``: settings whose other values change what a program does
  (a second broker, a custom partitioner, publishing on commit): accepted at
  Faust's default, refused otherwise with what to do instead, rather than
  run a program that relies on them differently.
- ``ALIASES``: Faust's deprecated names for settings detstream has.

A name detstream implements itself is its own setting, whatever these
lists say (``detstream.settings`` adds only the names it lacks); one of
``IGNORED`` that ``detstream.settings`` also lists (``broker_commit_every``,
``stream_wait_empty``: typed, read from the environment) keeps its type check
and is logged as having no effect too.
docs/faust-differences.md lists them for users.
"""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["ALIASES", "CLASSES", "DEFAULT_ONLY", "IGNORED", "check", "check_class", "resolve_class"]

logger = logging.getLogger(__name__)

#: name -> (Faust's default, why detstream does not need it).
IGNORED: dict[str, tuple[Any, str]] = {
    "broker_api_version": ("auto", "aiokafka negotiates API versions with the broker"),
    "consumer_api_version": ("auto", "aiokafka negotiates API versions with the broker"),
    "producer_api_version": ("auto", "aiokafka negotiates API versions with the broker"),
    "broker_check_crcs": (True, "the consumer always checks record CRCs"),
    "broker_commit_livelock_soft_timeout": (300.0, "stalled commits show in /metrics and /ready/"),
    "consumer_connections_max_idle_ms": (540_000, "aiokafka's default is used"),
    "consumer_metadata_max_age_ms": (300_000, "aiokafka's default is used"),
    "producer_connections_max_idle_ms": (540_000, "aiokafka's default is used"),
    "producer_metadata_max_age_ms": (300_000, "aiokafka's default is used"),
    "producer_threaded": (False, "the producer runs on the app's loop"),
    "cython_optimizations": (False, "detstream has no Cython paths"),
    "recovery_consistency_check": (True, "recovery always checks the store against the changelog"),
    "store_check_exists": (True, "stores answer membership themselves"),
    "stream_ack_cancelled_tasks": (True, "a no-op in Faust too"),
    "stream_ack_exceptions": (True, "a no-op in Faust too"),
    "stream_processing_timeout": (300.0, "a stuck event is bounded at rebalances and stops"),
    "stream_recovery_delay": (0.0, "recovery starts as soon as the assignment is taken"),
    "table_key_index_size": (1000, "the RocksDB store finds keys without an index cache"),
    "topic_disable_leader": (False, "the leader topic is always declared"),
    "web": ("aiohttp://", "the web server is aiohttp"),
    "web_transport": ("tcp://", "the web server listens on TCP (web_bind, web_port)"),
    "web_in_thread": (False, "the web server runs on the app's loop"),
    "web_application_options": (None, "the web server takes no aiohttp options"),
    "web_ssl_context": (None, "put a TLS proxy in front of the worker"),
    "web_graph_enabled": (False, "there is no /graph/ endpoint"),
    "web_metrics_enabled": (False, "/metrics is always served"),
    "web_router_enabled": (True, "the built-in endpoints are always served (see detstream.web)"),
    "web_tables_enabled": (True, "/table/ is always served"),
    "broker_commit_every": (10_000, "offsets are committed every broker_commit_interval "
                                    "seconds (and at rebalances and stops), not per count"),
    "stream_wait_empty": (True, "a rebalance or stop always waits for the events in hand "
                                "(at most 95% of broker_session_timeout)"),
    "worker_redirect_stdouts": (True, "stdout is left alone"),
    "worker_redirect_stdouts_level": ("WARN", "stdout is left alone"),
    "aerospike_retries_on_exception": (60, "there is no aerospike store"),
    "aerospike_sleep_seconds_between_retries_on_exception": (1, "there is no aerospike store"),
    "crash_app_on_aerospike_exception": (True, "there is no aerospike store"),
}

#: name -> (Faust's default, what to do instead of another value).
DEFAULT_ONLY: dict[str, tuple[Any, str]] = {
    "broker_consumer": (None, "one broker setting serves consumer and producer"),
    "broker_producer": (None, "one broker setting serves consumer and producer"),
    "producer_partitioner": (None, "records are placed by Kafka's murmur2 partitioner (or partition=)"),
    "stream_publish_on_commit": (False, "use processing_guarantee='exactly_once' for output that "
                                        "appears with its input's commit"),
    "consumer_group_instance_id": (None, "static group membership is not supported"),
}

#: Faust's class settings -> the detstream class it names by default (an import path), or None
#: where detstream has no such class. Readable from ``app.conf``; set only to that class (or
#: its path), except ``Monitor``, which takes any subclass of ``detstream.Monitor``: the
#: class ``app.monitor`` is made from.
CLASSES: dict[str, str | None] = {
    "Agent": "detstream.agent:Agent",
    "Event": "detstream.events:Event",
    "Schema": "detstream.serializers:Schema",
    "Stream": "detstream.stream:Stream",
    "Table": "detstream.tables.table:Table",
    "SetTable": "detstream.tables.set_table:SetTable",
    "GlobalTable": "detstream.tables.global_table:GlobalTable",
    "SetGlobalTable": "detstream.tables.set_table:SetGlobalTable",
    "TableManager": "detstream.tables.recovery:TableManager",
    "Topic": "detstream.topic:Topic",
    "Router": "detstream.web.router:Router",
    "Worker": "detstream.worker:Worker",
    "Monitor": "detstream.monitor:Monitor",
    "Serializers": None,
    "ConsumerScheduler": None,
    "PartitionAssignor": None,
    "LeaderAssignor": None,
    "HttpClient": None,
}


def resolve_class(value: Any) -> Any:
    """A class setting's value as the class (an import path ``module:Name`` is imported)."""
    if isinstance(value, str):
        from mode.utils.imports import symbol_by_name

        return symbol_by_name(value)
    return value


def check_class(key: str, value: Any) -> None:
    """Refuse a class override detstream would not use (subclass in your code instead)."""
    from .errors import ImproperlyConfigured

    default = CLASSES[key]
    if value is None or value == default:
        return
    if default is not None:
        try:
            given = resolve_class(value)
        except Exception as exc:
            raise ImproperlyConfigured(
                f"setting {key!r}={value!r} cannot be imported: {exc!r}") from None
        cls = resolve_class(default)
        if given is cls or (key == "Monitor" and isinstance(given, type) and issubclass(given, cls)):
            return
    raise ImproperlyConfigured(
        f"setting {key!r}={value!r}: detstream does not take Faust's class overrides"
        + (f" (its {key} is {default})" if default else f" (it has no {key})")
        + "; subclass in your code instead (see docs/faust-differences.md)"
        + ("; a Monitor subclass is taken, or App(monitor=instance)" if key == "Monitor" else "")
    )


#: Faust's older name -> detstream's (and Faust's current) name.
ALIASES: dict[str, str] = {
    "client_id": "broker_client_id",
    "commit_interval": "broker_commit_interval",
    "create_reply_topic": "reply_create_topic",
    "num_standby_replicas": "table_standby_replicas",
    "default_partitions": "topic_partitions",
    "replication_factor": "topic_replication_factor",
    "url": "broker",
}

_warned: set[str] = set()


def check(key: str, value: Any) -> None:
    """Refuse a ``DEFAULT_ONLY`` setting off its default; log an ``IGNORED`` one once."""
    from .errors import ImproperlyConfigured

    if key in DEFAULT_ONLY:
        default, instead = DEFAULT_ONLY[key]
        if value != default:
            raise ImproperlyConfigured(
                f"setting {key!r}={value!r} is Faust's and detstream does not support it: "
                f"{instead} (see docs/faust-differences.md)"
            )
    elif key in IGNORED:
        default, why = IGNORED[key]
        if value != default and key not in _warned:
            _warned.add(key)
            logger.warning("setting %r=%r is Faust's and has no effect in detstream: %s",
                           key, value, why)
