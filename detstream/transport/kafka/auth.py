"""Credentials to aiokafka: the ``security_protocol``/``sasl_*``/``ssl_context`` client options.

Producer, consumers and admin client all get the same options, so a worker
either reaches the broker with all of them or fails at start naming the
setting. Kept apart from the driver (and free of aiokafka imports) so the
mapping can be tested, and explained, without a broker.
"""

from __future__ import annotations

import importlib.util
import ssl
from typing import Any

from detstream.auth import (
    Credentials,
    GSSAPICredentials,
    OAuthCredentials,
    SASLCredentials,
    SSLCredentials,
    to_credentials,
)
from detstream.errors import ImproperlyConfigured

__all__ = ["client_auth"]


def client_auth(credentials: Any = None, ssl_context: Any = None) -> dict[str, Any]:
    """aiokafka client options for ``broker_credentials`` (and Faust's ``ssl_context`` setting).

    ``ssl_context`` alone means TLS without SASL, as in Faust; with both,
    the credentials decide (give a SASL credentials object its own
    ``ssl_context`` for SASL over TLS).
    """
    creds = to_credentials(credentials)
    if creds is None and ssl_context is not None:
        creds = to_credentials(ssl_context, setting="ssl_context")
    if creds is None:
        return {"security_protocol": "PLAINTEXT"}
    return _options(creds)


def _options(creds: Credentials) -> dict[str, Any]:
    if isinstance(creds, SSLCredentials):
        return {"security_protocol": creds.protocol.value, "ssl_context": creds.context}
    if isinstance(creds, SASLCredentials):
        options = _sasl(creds)
        if creds.mechanism.value != "GSSAPI":
            options.update(sasl_plain_username=creds.username,
                           sasl_plain_password=creds.password)
        else:
            _require_gssapi()
        return options
    if isinstance(creds, GSSAPICredentials):
        _require_gssapi()
        return dict(_sasl(creds), sasl_kerberos_service_name=creds.kerberos_service_name,
                    sasl_kerberos_domain_name=creds.kerberos_domain_name)
    if isinstance(creds, OAuthCredentials):
        return dict(_sasl(creds), sasl_oauth_token_provider=creds.oauth_cb)
    raise ImproperlyConfigured(
        f"broker_credentials {creds!r}: the Kafka driver does not know this credentials type"
    )


def _sasl(creds: Any) -> dict[str, Any]:
    context: ssl.SSLContext | None = creds.ssl_context
    options: dict[str, Any] = {
        "security_protocol": creds.protocol.value,
        "sasl_mechanism": creds.mechanism.value,
    }
    if context is not None:
        options["ssl_context"] = context
    return options


def _require_gssapi() -> None:
    """aiokafka only asserts ``gssapi is not None`` when it connects: say so at start instead."""
    if importlib.util.find_spec("gssapi") is None:
        raise ImproperlyConfigured(
            "broker_credentials use Kerberos (GSSAPI), which needs the Python package 'gssapi': "
            "pip install gssapi (or aiokafka[gssapi])"
        )
