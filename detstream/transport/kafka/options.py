"""App settings to aiokafka client options: what each producer, consumer and admin client gets.

One place says which Faust setting becomes which aiokafka argument, so the
mapping can be read (and unit-tested) without a broker, and so a setting
that cannot work (a codec whose library is missing, idempotence with
``acks=1``, a heartbeat slower than the session timeout) fails when the
transport is made, naming the setting, instead of deep inside aiokafka or
as a silent misbehaviour on the cluster. No aiokafka import here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from detstream.errors import ImproperlyConfigured
from detstream.transport.kafka.auth import client_auth

__all__ = [
    "CODEC_PACKAGES", "DEFAULT_MAX_POLL_RECORDS", "admin_options", "check_settings",
    "consumer_options", "ms", "producer_options",
]

#: Python package aiokafka (0.14) needs for each codec; gzip is in the standard library.
CODEC_PACKAGES: dict[str, str | None] = {
    "gzip": None, "snappy": "cramjam", "lz4": "cramjam", "zstd": "cramjam",
}
#: records per fetch when ``broker_max_poll_records`` is None (aiokafka would return all it has).
DEFAULT_MAX_POLL_RECORDS = 500


def ms(seconds: float) -> int:
    """Seconds (the settings' unit, as in Faust) to aiokafka's milliseconds."""
    return int(round(float(seconds) * 1000))


def check_settings(conf: Mapping[str, Any]) -> None:
    """Refuse, at transport creation, settings that aiokafka or the broker would not honour."""
    _check_codec(conf["producer_compression_type"])
    client_auth(conf["broker_credentials"], conf["ssl_context"])  # e.g. GSSAPI without gssapi
    if conf["producer_enable_idempotence"] and conf["producer_acks"] not in (-1, "all"):
        raise ImproperlyConfigured(
            f"setting producer_enable_idempotence=True needs producer_acks=-1 ('all'), "
            f"got producer_acks={conf['producer_acks']!r}"
        )
    if conf["producer_acks"] not in (0, 1, -1, "all"):
        raise ImproperlyConfigured(
            f"setting producer_acks={conf['producer_acks']!r} is not supported by Kafka: "
            "use 0, 1 or -1 ('all')"
        )
    session, heartbeat = conf["broker_session_timeout"], conf["broker_heartbeat_interval"]
    if heartbeat >= session:
        raise ImproperlyConfigured(
            f"setting broker_heartbeat_interval={heartbeat!r} must be lower than "
            f"broker_session_timeout={session!r} (a third of it or less is usual): otherwise "
            "the group expels a healthy worker between two heartbeats"
        )


def _check_codec(codec: str | None) -> None:
    """aiokafka says only "Compression library for lz4 not found": name the package instead."""
    if codec is None:
        return
    if codec not in CODEC_PACKAGES:
        raise ImproperlyConfigured(
            f"setting producer_compression_type={codec!r} is not one of "
            f"{', '.join(CODEC_PACKAGES)} (or None)"
        )
    package = CODEC_PACKAGES[codec]
    if package is not None and importlib.util.find_spec(package) is None:
        raise ImproperlyConfigured(
            f"setting producer_compression_type={codec!r} needs the Python package {package!r}, "
            f"which is not installed: pip install {package} (or aiokafka[{codec}]), "
            "or use 'gzip', which needs nothing"
        )


def _common(conf: Mapping[str, Any], client_id: str, servers: list[str]) -> dict[str, Any]:
    return dict(
        bootstrap_servers=list(servers),
        client_id=client_id,
        request_timeout_ms=ms(conf["broker_request_timeout"]),
        **client_auth(conf["broker_credentials"], conf["ssl_context"]),
    )


def producer_options(conf: Mapping[str, Any], client_id: str, servers: list[str]) -> dict[str, Any]:
    """AIOKafkaProducer arguments of a (non-transactional) producer."""
    return dict(
        _common(conf, client_id, servers),
        # also how long a batch may wait for the broker before it expires (Faust does the same)
        request_timeout_ms=ms(conf["producer_request_timeout"]),
        acks=conf["producer_acks"],
        linger_ms=ms(conf["producer_linger"]),
        compression_type=conf["producer_compression_type"],
        max_batch_size=conf["producer_max_batch_size"],
        max_request_size=conf["producer_max_request_size"],
        enable_idempotence=conf["producer_enable_idempotence"],
    )


def consumer_options(conf: Mapping[str, Any], client_id: str, servers: list[str]) -> dict[str, Any]:
    """AIOKafkaConsumer arguments; the driver adds group, isolation and assignor."""
    return dict(
        _common(conf, client_id, servers),
        enable_auto_commit=False,
        auto_offset_reset=conf["consumer_auto_offset_reset"],
        max_partition_fetch_bytes=conf["consumer_max_fetch_size"],
        session_timeout_ms=ms(conf["broker_session_timeout"]),
        heartbeat_interval_ms=ms(conf["broker_heartbeat_interval"]),
        rebalance_timeout_ms=ms(conf["broker_rebalance_timeout"]),
        max_poll_interval_ms=ms(conf["broker_max_poll_interval"]),
        max_poll_records=conf["broker_max_poll_records"] or DEFAULT_MAX_POLL_RECORDS,
    )


def admin_options(conf: Mapping[str, Any], client_id: str, servers: list[str]) -> dict[str, Any]:
    """AIOKafkaAdminClient arguments."""
    return _common(conf, client_id, servers)
