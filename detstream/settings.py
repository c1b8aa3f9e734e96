"""App settings: Faust's names and defaults, validated when the App is built.

Only settings listed here are accepted, so a typo fails loudly with a
suggestion instead of being silently ignored.
"""

from __future__ import annotations

import difflib
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any, cast

from . import faust_settings
from .auth import to_credentials
from .clock import new_uuid
from .errors import ImproperlyConfigured, InvalidArgument

_NUMBER = (int, float)
_OPTIONAL_STR = (str, type(None))
#: ``collections.abc.Callable`` is an ABC at run time (``isinstance`` works, ``__name__`` is
#: "Callable"); mypy only knows it as a special form, not a class.
_CALLABLE = cast(type, Callable)

#: name -> (default, accepted types)
SETTINGS: dict[str, tuple[Any, tuple[type, ...] | type]] = {
    "version": (1, int),
    #: ``conf.id`` when ``version > 1`` (``{id}`` = the App's id, ``{self}`` = the settings).
    "id_format": ("{id}-v{self.version}", str),
    #: prefix of the environment variables read for settings (``MYAPP_BROKER_URL``).
    "env_prefix": (None, _OPTIONAL_STR),
    "tabledir": ("tables", str),
    "blocking_timeout": (None, (int, float, type(None))),
    "broker": ("kafka://localhost:9092", (str, list, object)),
    "store": ("memory://", str),
    "origin": (None, _OPTIONAL_STR),
    #: True (the origin package), a list of modules, or a callable returning that list.
    "autodiscover": (False, (bool, list, tuple, _CALLABLE)),
    "datadir": (None, _OPTIONAL_STR),
    "processing_guarantee": ("at_least_once", str),
    "topic_partitions": (8, int),
    "topic_replication_factor": (1, int),
    "topic_allow_declare": (True, bool),
    "key_serializer": ("raw", (str, object)),
    "value_serializer": ("json", (str, object)),
    "stream_buffer_maxsize": (4096, int),
    "stream_wait_empty": (True, bool),
    "broker_client_id": ("detstream", str),
    "broker_commit_interval": (2.8, _NUMBER),
    "broker_commit_every": (10_000, int),
    "broker_session_timeout": (60.0, _NUMBER),
    "broker_heartbeat_interval": (3.0, _NUMBER),
    "broker_rebalance_timeout": (60.0, _NUMBER),
    "broker_request_timeout": (90.0, _NUMBER),
    #: most time (s) between two fetches before the group expels the member (KIP-62).
    "broker_max_poll_interval": (1000.0, _NUMBER),
    #: most records one fetch returns (None: the driver's default, 500).
    "broker_max_poll_records": (None, (int, type(None))),
    #: how the worker proves who it is to Kafka: an ssl.SSLContext or a detstream.auth object.
    "broker_credentials": (None, object),
    #: TLS to the broker without SASL (Faust's older form of ``broker_credentials=context``).
    "ssl_context": (None, object),
    "consumer_auto_offset_reset": ("earliest", str),
    #: static membership (KIP-345, Kafka's ``group.instance.id``): this worker's stable name in
    #: its group, its own (a restarted worker with it takes its old place without a rebalance).
    "consumer_group_instance_id": (None, _OPTIONAL_STR),
    "consumer_max_fetch_size": (1024**2, int),
    "producer_acks": (-1, (int, str)),
    "producer_linger": (0.0, _NUMBER),
    #: deprecated by Faust for ``producer_linger`` (seconds); when given, it sets that.
    "producer_linger_ms": (0, _NUMBER),
    "producer_compression_type": (None, _OPTIONAL_STR),
    "producer_max_batch_size": (16384, int),
    "producer_max_request_size": (1_000_000, int),
    #: also how long a record may wait in the producer before it expires (Faust: 20 minutes).
    "producer_request_timeout": (1200.0, _NUMBER),
    #: Kafka's idempotent producer (no duplicates from retries); needs producer_acks=-1.
    "producer_enable_idempotence": (False, bool),
    #: exactly-once: an open transaction idle this long (s) is aborted by the broker
    #: (Kafka's ``transaction.timeout.ms``; not a Faust setting).
    "producer_transaction_timeout": (60.0, _NUMBER),
    "table_standby_replicas": (1, int),
    "table_cleanup_interval": (30.0, _NUMBER),
    #: a table changelog record that does not decode: "raise" stops recovery (the worker
    #: crashes naming table, partition, offset and key), "skip" logs it and goes on.
    "table_changelog_decode_errors": ("raise", str),
    #: dirty keys a table caches before its changelog records go out without waiting for
    #: the next commit (one record per key per commit); 0: every write is sent at once.
    "table_changelog_cache_size": (10_000, int),
    "timezone": ("UTC", (str, object)),
    #: RPC (``agent.ask``): this instance's reply topic; None = ``{reply_to_prefix}{uuid}``,
    #: made on first read of ``conf.reply_to`` (seeded under the simulator).
    "reply_to": (None, _OPTIONAL_STR),
    "reply_to_prefix": ("f-reply-", str),
    #: start the reply consumer (and create the reply topic) with the app, not at the first ask.
    "reply_create_topic": (False, bool),
    #: retention of the reply topic (seconds or timedelta; Faust's default: one day).
    "reply_expires": (86400.0, (int, float, timedelta)),
    #: the supervisor of agents that name none (a mode SupervisorStrategy class, or its
    #: import path); None: mode.OneForOneSupervisor.
    "agent_supervisor": (None, (type, str, type(None))),
    "web_enabled": (True, bool),
    "web_port": (6066, int),
    "web_bind": ("0.0.0.0", str),
    "web_host": ("localhost", str),
    #: this worker's web URL as other workers reach it (``app.router``, ``app.table_route``);
    #: None: ``http://{web_host}:{web_port}``.
    "canonical_url": (None, _OPTIONAL_STR),
    #: ``app.cache``, where cached view answers are kept (``Blueprint.cache``): memory://, or
    #: redis:// / rediscluster:// with redis-py installed (detstream.web.cache_backends).
    "cache": ("memory://", str),
    #: CORS rules of every page: {origin or "*": ResourceOptions or dict} (detstream.web.cors).
    "web_cors_options": (None, (Mapping, type(None))),
    #: logging handlers the worker adds to the root logger at start (Faust's).
    "loghandlers": (None, (list, tuple, type(None))),
    #: a ``logging.config.dictConfig`` dict the worker applies at start, after its own
    #: set-up (``--loglevel``, ``--logfile``), as Faust's.
    "logging_config": (None, (Mapping, type(None))),
    "debug": (False, bool),
    #: serve Faust's statistics (``app.monitor``, every sensor's ``asdict()``) at ``/``;
    #: None: when ``debug`` is on, as Faust.
    "web_stats_enabled": (None, (bool, type(None))),
}

#: Faust's settings detstream accepts without acting on them, or only at their default. A
#: name detstream implements itself is its own setting above, never one of these.
_FAUST_DEFAULTS = {
    name: default
    for name, (default, _) in {**faust_settings.IGNORED, **faust_settings.DEFAULT_ONLY}.items()
    if name not in SETTINGS
}
_FAUST_ONLY = frozenset(_FAUST_DEFAULTS)
SETTINGS.update({name: (default, object) for name, default in _FAUST_DEFAULTS.items()})
SETTINGS.update({name: (default, object) for name, default in faust_settings.CLASSES.items()})

_CHOICES = {
    "processing_guarantee": ("at_least_once", "exactly_once"),
    "consumer_auto_offset_reset": ("earliest", "latest", "none"),
    "producer_acks": (0, 1, -1),
    "producer_compression_type": (None, "gzip", "snappy", "lz4", "zstd"),
    "table_changelog_decode_errors": ("raise", "skip"),
}

#: numbers that must be > 0 (a zero timeout or size makes a client that never works).
_POSITIVE = frozenset({
    "broker_commit_interval", "broker_session_timeout", "broker_heartbeat_interval",
    "broker_rebalance_timeout", "broker_request_timeout", "broker_max_poll_interval",
    "broker_max_poll_records", "consumer_max_fetch_size", "producer_max_batch_size",
    "producer_max_request_size", "producer_request_timeout", "producer_transaction_timeout",
    "blocking_timeout",
})
#: numbers that must be >= 0.
_NOT_NEGATIVE = frozenset({"producer_linger", "producer_linger_ms", "table_changelog_cache_size"})


@dataclass
class Settings:
    """The resolved settings of one App; attribute access like ``app.conf.broker``."""

    name: str
    values: dict[str, Any]

    def __getattr__(self, key: str) -> Any:
        try:
            return self.__dict__["values"][key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key in ("name", "values"):
            object.__setattr__(self, key, value)
        else:
            key = canonical(key)
            self.values[key] = _validate(key, value)
            apply_aliases(self.values, {key: value})

    @property
    def id(self) -> str:
        """The group id and prefix of internal topics (``{id}-v{version}`` past v1)."""
        version = self.values["version"]
        if version <= 1:
            return self.name
        try:
            return str(self.values["id_format"].format(id=self.name, self=self))
        except (KeyError, AttributeError, IndexError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"setting 'id_format' {self.values['id_format']!r} cannot be formatted: {exc!r}"
            ) from None

    @property
    def appdir(self) -> Path:
        """This version's directory in the datadir (Faust's ``appdir``): ``{datadir}/v{version}``."""
        return Path(self.values["datadir"]) / f"v{self.values['version']}"

    @property
    def table_directory(self) -> Path:
        """Where RocksDB tables are kept: ``tabledir``, under ``appdir`` unless it is absolute."""
        return self.appdir / Path(self.values["tabledir"])  # an absolute tabledir replaces it

    @property
    def reply_to(self) -> str:
        """This instance's RPC reply topic (Faust's ``f-reply-{uuid}``), fixed on first read."""
        value = self.values.get("reply_to")
        if value is None:
            value = self.values["reply_to"] = f"{self.values['reply_to_prefix']}{new_uuid()}"
        return value

    @property
    def canonical_url(self) -> str:
        """This worker's web URL for other workers (default ``http://{web_host}:{web_port}``)."""
        value = self.values.get("canonical_url")
        if value:
            return str(value).rstrip("/")
        return f"http://{self.values['web_host']}:{self.values['web_port']}"

    @property
    def web_stats_enabled(self) -> bool:
        """``/`` serves the sensors' statistics (Faust's stats page): the setting, else ``debug``."""
        value = self.values.get("web_stats_enabled")
        return bool(self.values.get("debug")) if value is None else bool(value)

    @property
    def broker_url(self) -> str:
        broker = self.values["broker"]
        if isinstance(broker, (list, tuple)):
            return str(broker[0])
        return broker if isinstance(broker, str) else "object://"


def build_settings(app_id: str, given: Mapping[str, Any]) -> Settings:
    """Validate ``given`` against the known settings and fill in defaults."""
    if not isinstance(app_id, str) or not app_id:
        raise ImproperlyConfigured(f"App id must be a non-empty str, got {app_id!r}")
    values = {name: default for name, (default, _) in SETTINGS.items()}
    given = {canonical(key): value for key, value in given.items()}
    for key, value in given.items():
        values[key] = _validate(key, value)
    apply_aliases(values, given)
    if values["datadir"] is None:
        values["datadir"] = f"{app_id}-data"
    if values["loghandlers"] is None:  # a list of its own, for Faust's conf.loghandlers.append(h)
        values["loghandlers"] = []
    return Settings(app_id, values)


def apply_aliases(values: dict[str, Any], given: Mapping[str, Any]) -> None:
    """Faust's deprecated ``producer_linger_ms`` sets ``producer_linger``, unless that is given too."""
    if "producer_linger_ms" in given and "producer_linger" not in given:
        values["producer_linger"] = values["producer_linger_ms"] / 1000.0


def url_text(value: Any) -> Any:
    """A ``yarl.URL`` (or a list of them) as text; anything else as it is.

    Faust takes ``str`` or ``yarl.URL`` wherever it takes a URL (``broker``,
    ``store``, ``web``, ``cache``, a Table's ``store``); detstream's settings
    keep text. Compared by type name: yarl comes with aiohttp, and settings
    need not import it.
    """
    if _is_yarl_url(value):
        return _text_of(value)
    if isinstance(value, (list, tuple)) and value and all(_is_yarl_url(v) for v in value):
        return [_text_of(v) for v in value]
    return value


def _is_yarl_url(value: Any) -> bool:
    return type(value).__name__ == "URL" and type(value).__module__.startswith("yarl")


def _text_of(url: Any) -> str:
    """yarl writes ``URL("rocksdb://")`` as ``rocksdb:``: the ``//`` goes back in."""
    text, scheme = str(url), url.scheme
    if scheme and not text.startswith(f"{scheme}://"):
        text = f"{scheme}://{text[len(scheme) + 1:]}"
    return text


def _normalize(key: str, value: Any) -> Any:
    """The canonical form of a value Faust accepts in several spellings."""
    value = url_text(value)
    if key == "producer_acks" and isinstance(value, str):
        text = value.strip().lower()
        if text == "all":
            return -1
        if text.lstrip("-").isdigit():
            return int(text)
    if key == "processing_guarantee" and isinstance(value, Enum):  # types.ProcessingGuarantee
        return value.value
    if key == "broker_credentials":
        return to_credentials(value)
    if key == "consumer_group_instance_id" and isinstance(value, str) and not value.strip():
        raise ImproperlyConfigured(
            "setting 'consumer_group_instance_id' must be a non-empty name, unique per worker "
            "(or None for dynamic membership)"
        )
    if key == "cache":
        from .web.cache_backends import check_cache_url

        return check_cache_url(value)
    if key == "web_cors_options" and value is not None:
        from .web.cors import parse_cors_options

        try:
            return parse_cors_options(value, what="setting 'web_cors_options'")
        except InvalidArgument as exc:
            raise ImproperlyConfigured(str(exc)) from None
    if key == "loghandlers" and value is not None:
        bad = [h for h in value if not isinstance(h, logging.Handler)]
        if bad:
            raise ImproperlyConfigured(
                f"setting 'loghandlers' takes logging.Handler objects, got {bad[0]!r}")
        return list(value)
    if key == "ssl_context" and value is not None and not isinstance(value, ssl.SSLContext):
        raise ImproperlyConfigured(
            f"setting 'ssl_context' must be an ssl.SSLContext or None, got {type(value).__name__} "
            f"{value!r} (for SASL or client certificates use broker_credentials)"
        )
    return value


def _check_range(key: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if key in _POSITIVE and not value > 0:
        raise ImproperlyConfigured(f"setting {key!r} must be greater than 0, got {value!r}")
    if key in _NOT_NEGATIVE and value < 0:
        raise ImproperlyConfigured(f"setting {key!r} must not be negative, got {value!r}")


def canonical(key: str) -> str:
    """The setting's name, for one of Faust's older names (``url`` is ``broker``)."""
    return faust_settings.ALIASES.get(key, key)


def _validate(key: str, value: Any) -> Any:
    if key not in SETTINGS:
        close = difflib.get_close_matches(key, SETTINGS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ImproperlyConfigured(f"unknown setting {key!r}{hint}")
    default, types = SETTINGS[key]
    value = _normalize(key, value)
    if key in _FAUST_ONLY or key in faust_settings.IGNORED:
        faust_settings.check(key, value)
    elif key in faust_settings.CLASSES:
        faust_settings.check_class(key, value)
    if types is object or (isinstance(types, tuple) and object in types):
        return value
    accepted = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool) and bool not in accepted and int in accepted:
        raise ImproperlyConfigured(f"setting {key!r} must be a number, got {value!r}")
    if not isinstance(value, types):
        expected = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise ImproperlyConfigured(
            f"setting {key!r} must be {expected}, got {type(value).__name__} {value!r}"
        )
    choices = _CHOICES.get(key)
    if choices and value not in choices:
        raise ImproperlyConfigured(f"setting {key!r} must be one of {choices}, got {value!r}")
    _check_range(key, value)
    return value
