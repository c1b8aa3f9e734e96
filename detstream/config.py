"""Where settings come from, with Faust's precedence (last wins).

1. the defaults (``settings.SETTINGS``);
2. keyword arguments to ``App(...)`` (validated at once, so typos fail early);
3. ``app.config_from_object(source)``: a dict, an object's attributes, a
   module's globals, or the dotted name of a module (``'proj.settings'``) or
   of an attribute (``'proj.settings:Config'`` / ``'proj.settings.Config'``);
4. environment variables (Faust's names: ``BROKER_URL``, ``APP_STORE``,
   ``WEB_PORT``, ...), optionally prefixed by the ``env_prefix`` setting.

Sources 3 and 4 are read when the App is configured (first ``app.conf``),
not at import, so a test can set the environment after importing a project.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Mapping
from datetime import timedelta
from types import ModuleType
from typing import Any

from .errors import ImproperlyConfigured
from .settings import SETTINGS, Settings, _validate, apply_aliases, canonical

#: setting -> environment variable (Faust's ``env_name``s).
ENV_NAMES: dict[str, str] = {
    "version": "APP_VERSION",
    "id_format": "APP_ID_FORMAT",
    "datadir": "APP_DATADIR",
    "tabledir": "APP_TABLEDIR",
    "debug": "APP_DEBUG",
    "env_prefix": "APP_ENV_PREFIX",
    "timezone": "TIMEZONE",
    "blocking_timeout": "BLOCKING_TIMEOUT",
    "broker": "BROKER_URL",
    "broker_client_id": "BROKER_CLIENT_ID",
    "broker_commit_every": "BROKER_COMMIT_EVERY",
    "broker_commit_interval": "BROKER_COMMIT_INTERVAL",
    "broker_heartbeat_interval": "BROKER_HEARTBEAT_INTERVAL",
    "broker_max_poll_interval": "BROKER_MAX_POLL_INTERVAL",
    "broker_max_poll_records": "BROKER_MAX_POLL_RECORDS",
    "broker_rebalance_timeout": "BROKER_REBALANCE_TIMEOUT",
    "broker_request_timeout": "BROKER_REQUEST_TIMEOUT",
    "broker_session_timeout": "BROKER_SESSION_TIMEOUT",
    "consumer_auto_offset_reset": "CONSUMER_AUTO_OFFSET_RESET",
    "consumer_group_instance_id": "CONSUMER_GROUP_INSTANCE_ID",
    "consumer_max_fetch_size": "CONSUMER_MAX_FETCH_SIZE",
    "producer_acks": "PRODUCER_ACKS",
    "producer_compression_type": "PRODUCER_COMPRESSION_TYPE",
    "producer_linger": "PRODUCER_LINGER",
    "producer_linger_ms": "PRODUCER_LINGER_MS",
    "producer_max_batch_size": "PRODUCER_MAX_BATCH_SIZE",
    "producer_max_request_size": "PRODUCER_MAX_REQUEST_SIZE",
    "producer_request_timeout": "PRODUCER_REQUEST_TIMEOUT",
    "processing_guarantee": "PROCESSING_GUARANTEE",
    "store": "APP_STORE",
    "key_serializer": "APP_KEY_SERIALIZER",
    "value_serializer": "APP_VALUE_SERIALIZER",
    "web_enabled": "APP_WEB_ENABLED",
    "web_bind": "WEB_BIND",
    "web_port": "WEB_PORT",
    "web_host": "WEB_HOST",
    "canonical_url": "NODE_CANONICAL_URL",
    "cache": "CACHE_URL",
}

_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def load_source(source: Any, *, silent: bool = False) -> dict[str, Any]:
    """The settings held by ``source`` (see the module doc), as a dict."""
    if isinstance(source, str):
        try:
            source = _import_dotted(source)
        except (ImportError, AttributeError) as exc:
            if silent:
                return {}
            raise ImproperlyConfigured(
                f"config_from_object({source!r}): cannot import it: {exc}"
            ) from exc
    if isinstance(source, Mapping):
        items = dict(source)
        origin = "dict"
    else:
        if isinstance(source, ModuleType):
            items = dict(vars(source))
            origin = f"module {source.__name__!r}"
        else:
            items = {k: getattr(source, k) for k in dir(source)}
            origin = f"object {source!r}"
        # a module or class also holds imports, helpers and dunders: keep
        # the public data attributes, and leave CONSTANTS to the user.
        items = {
            k: v for k, v in items.items()
            if not k.startswith("_") and not k.isupper()
            and not (inspect.ismodule(v) or inspect.isclass(v) or inspect.isroutine(v))
        }
    out: dict[str, Any] = {}
    for key, value in items.items():
        key = canonical(key)
        if key not in SETTINGS:
            close = difflib.get_close_matches(key, SETTINGS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ImproperlyConfigured(f"unknown setting {key!r} in config source {origin}{hint}")
        out[key] = value
    return out


def _import_dotted(name: str) -> Any:
    module_name, sep, attr = name.partition(":")
    if sep:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj
    try:
        return importlib.import_module(name)
    except ImportError:
        module_name, _, attr = name.rpartition(".")
        if not module_name:
            raise
        return getattr(importlib.import_module(module_name), attr)


def env_settings(prefix: str | None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Settings given by environment variables (``{prefix}{ENV_NAME}``), parsed and checked."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key, base in ENV_NAMES.items():
        var = f"{prefix or ''}{base}"
        if var not in env:
            continue
        out[key] = _parse_env(key, var, env[var])
    return out


def _parse_env(key: str, var: str, raw: str) -> Any:
    _, types = SETTINGS[key]
    accepted = types if isinstance(types, tuple) else (types,)
    text = raw.strip()

    def bad(expected: str) -> ImproperlyConfigured:
        return ImproperlyConfigured(
            f"environment variable {var}={raw!r} (setting {key!r}) must be {expected}"
        )

    if accepted == (bool,):
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise bad("a boolean (true/false/1/0/yes/no/on/off)")
    if str in accepted:
        value: Any = raw if text or type(None) not in accepted else None
    elif int in accepted and float not in accepted:
        try:
            value = int(text)
        except ValueError:
            raise bad("an integer") from None
    elif float in accepted or timedelta in accepted:
        try:
            value = float(text)
        except ValueError:
            raise bad("a number") from None
    elif type(None) in accepted and not text:
        value = None
    else:
        raise bad("set in code: it cannot be given as an environment variable")
    try:
        return _validate(key, value)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(f"environment variable {var}={raw!r}: {exc}") from None


def resolve(base: Settings, source: Any, *, silent: bool = False,
            environ: Mapping[str, str] | None = None) -> Settings:
    """The final settings: ``base`` (defaults + kwargs), then ``source``, then the environment."""
    values = dict(base.values)
    given: dict[str, Any] = {}
    if source is not None:
        for key, value in load_source(source, silent=silent).items():
            values[key] = given[key] = _validate(key, value)
    prefix = values.get("env_prefix")
    env = os.environ if environ is None else environ
    if prefix is None and "APP_ENV_PREFIX" in env:
        prefix = env["APP_ENV_PREFIX"] or None
    for key, value in env_settings(prefix, env).items():
        values[key] = given[key] = value
    apply_aliases(values, given)
    return Settings(base.name, values)
