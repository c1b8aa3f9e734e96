"""Broker credentials: the values of the ``broker_credentials`` setting (Faust's ``faust.auth``).

A credentials object says *how* a worker proves who it is to Kafka (TLS,
SASL with a password, Kerberos, OAuth) and whether the connection is
encrypted. It is plain data, checked when it is made, so that a wrong
mechanism or a missing password fails in the line that builds the App
instead of as an authentication error from the broker minutes later. The
Kafka driver turns it into aiokafka's ``security_protocol``/``sasl_*``/
``ssl_context`` options (``detstream.transport.kafka.auth``); the simulator
ignores it.

Nothing here imports aiokafka: ``import detstream`` stays free of it.
"""

from __future__ import annotations

import enum
import ssl
from typing import Any

from .errors import ImproperlyConfigured

__all__ = [
    "AuthProtocol",
    "Credentials",
    "GSSAPICredentials",
    "OAuthCredentials",
    "SASLCredentials",
    "SASLMechanism",
    "SSLCredentials",
    "to_credentials",
]


class AuthProtocol(str, enum.Enum):
    """Kafka's ``security.protocol``: encryption (SSL) and authentication (SASL) or not."""

    SSL = "SSL"
    PLAINTEXT = "PLAINTEXT"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SASLMechanism(str, enum.Enum):
    """Kafka's ``sasl.mechanism``."""

    PLAIN = "PLAIN"
    GSSAPI = "GSSAPI"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"
    OAUTHBEARER = "OAUTHBEARER"


class Credentials:
    """Base class of every credentials type; ``protocol`` is the security protocol it needs."""

    protocol: AuthProtocol = AuthProtocol.PLAINTEXT


def _mechanism(value: str | SASLMechanism, allowed: tuple[SASLMechanism, ...], who: str,
               ) -> SASLMechanism:
    """``value`` as a SASLMechanism of ``allowed``, or an error listing them."""
    try:
        mechanism = SASLMechanism(value.upper() if isinstance(value, str) else value)
    except ValueError:
        mechanism = None
    if mechanism not in allowed:
        names = ", ".join(repr(m.value) for m in allowed)
        raise ImproperlyConfigured(f"{who}: mechanism {value!r} is not one of {names}")
    return mechanism


def _check_context(context: Any, who: str) -> ssl.SSLContext | None:
    """Refuse an ``ssl_context`` that is not one: it would fail deep inside the TLS handshake."""
    if context is not None and not isinstance(context, ssl.SSLContext):
        raise ImproperlyConfigured(
            f"{who}: ssl_context must be an ssl.SSLContext (see ssl.create_default_context), "
            f"got {type(context).__name__} {context!r}"
        )
    return context


def _sasl_protocol(context: ssl.SSLContext | None) -> AuthProtocol:
    return AuthProtocol.SASL_SSL if context is not None else AuthProtocol.SASL_PLAINTEXT


class SASLCredentials(Credentials):
    """A user name and password (SASL ``PLAIN`` or ``SCRAM-SHA-256``/``-512``).

    With ``ssl_context`` the connection is also encrypted (``SASL_SSL``);
    without, the password crosses the network in the clear with ``PLAIN``
    (``SASL_PLAINTEXT``), which is only sane on a private network.
    """

    ALLOWED = (SASLMechanism.PLAIN, SASLMechanism.SCRAM_SHA_256, SASLMechanism.SCRAM_SHA_512,
               SASLMechanism.GSSAPI)

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        mechanism: str | SASLMechanism | None = None,
    ) -> None:
        who = "SASLCredentials"
        self.mechanism = _mechanism(mechanism or SASLMechanism.PLAIN, self.ALLOWED, who)
        if self.mechanism is not SASLMechanism.GSSAPI:
            for name, value in (("username", username), ("password", password)):
                if not isinstance(value, str) or not value:
                    raise ImproperlyConfigured(
                        f"{who}(mechanism={self.mechanism.value!r}) needs a non-empty str "
                        f"{name}, got {value!r}"
                    )
        self.username = username
        self.password = password
        self.ssl_context = _check_context(ssl_context, who)
        self.protocol = _sasl_protocol(self.ssl_context)

    def __repr__(self) -> str:  # never the password: reprs end up in logs and tracebacks
        return (f"<SASLCredentials: {self.protocol.value} {self.mechanism.value} "
                f"username={self.username!r}>")


class GSSAPICredentials(Credentials):
    """Kerberos (SASL ``GSSAPI``); needs the ``gssapi`` package and a ticket of the process."""

    def __init__(
        self,
        *,
        kerberos_service_name: str = "kafka",
        kerberos_domain_name: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        mechanism: str | SASLMechanism | None = None,
    ) -> None:
        who = "GSSAPICredentials"
        self.mechanism = _mechanism(mechanism or SASLMechanism.GSSAPI, (SASLMechanism.GSSAPI,), who)
        if not isinstance(kerberos_service_name, str) or not kerberos_service_name:
            raise ImproperlyConfigured(
                f"{who}: kerberos_service_name must be a non-empty str, got {kerberos_service_name!r}"
            )
        if kerberos_domain_name is not None and not isinstance(kerberos_domain_name, str):
            raise ImproperlyConfigured(
                f"{who}: kerberos_domain_name must be a str or None, got {kerberos_domain_name!r}"
            )
        self.kerberos_service_name = kerberos_service_name
        self.kerberos_domain_name = kerberos_domain_name
        self.ssl_context = _check_context(ssl_context, who)
        self.protocol = _sasl_protocol(self.ssl_context)

    def __repr__(self) -> str:
        return (f"<GSSAPICredentials: {self.protocol.value} service={self.kerberos_service_name!r} "
                f"domain={self.kerberos_domain_name!r}>")


class OAuthCredentials(Credentials):
    """SASL ``OAUTHBEARER``: ``oauth_cb`` is an aiokafka ``AbstractTokenProvider``.

    Its ``async token()`` is asked for a fresh token at each (re)connection.
    """

    def __init__(self, *, oauth_cb: Any, ssl_context: ssl.SSLContext | None = None) -> None:
        who = "OAuthCredentials"
        if not callable(getattr(oauth_cb, "token", None)):
            raise ImproperlyConfigured(
                f"{who}: oauth_cb must be a token provider (an aiokafka.abc.AbstractTokenProvider "
                f"with an async token() method), got {oauth_cb!r}"
            )
        self.oauth_cb = oauth_cb
        self.mechanism = SASLMechanism.OAUTHBEARER
        self.ssl_context = _check_context(ssl_context, who)
        self.protocol = _sasl_protocol(self.ssl_context)

    def __repr__(self) -> str:
        return f"<OAuthCredentials: {self.protocol.value} {self.oauth_cb!r}>"


class SSLCredentials(Credentials):
    """TLS to the broker: encryption, the broker's certificate checked, optionally a client cert.

    Give a ready ``context``, or let one be made here: ``cafile``/``capath``/
    ``cadata`` name the authority that signed the broker's certificate
    (default: the system's), and ``certfile``/``keyfile``/``password`` this
    client's own certificate when the broker authenticates clients by TLS
    (``ssl.client.auth=required``). Files are read now, so a wrong path fails
    when the App is defined.
    """

    protocol = AuthProtocol.SSL

    def __init__(
        self,
        context: ssl.SSLContext | None = None,
        *,
        purpose: Any = None,
        cafile: str | None = None,
        capath: str | None = None,
        cadata: str | bytes | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        password: str | bytes | None = None,
    ) -> None:
        who = "SSLCredentials"
        if context is not None:
            given = [n for n, v in (("purpose", purpose), ("cafile", cafile), ("capath", capath),
                                    ("cadata", cadata), ("certfile", certfile),
                                    ("keyfile", keyfile), ("password", password)) if v is not None]
            if given:
                raise ImproperlyConfigured(
                    f"{who}: give either a context or {', '.join(given)} to make one, not both"
                )
            self.context = _check_context(context, who)
            return
        if certfile is None and (keyfile is not None or password is not None):
            raise ImproperlyConfigured(f"{who}: keyfile/password need the certfile they belong to")
        try:
            context = ssl.create_default_context(
                purpose=purpose or ssl.Purpose.SERVER_AUTH, cafile=cafile, capath=capath,
                cadata=cadata,
            )
            if certfile is not None:
                context.load_cert_chain(certfile, keyfile=keyfile, password=password)
        except (OSError, ssl.SSLError, ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"{who}: cannot build a TLS context from cafile={cafile!r} capath={capath!r} "
                f"certfile={certfile!r} keyfile={keyfile!r}: {exc}"
            ) from exc
        self.context = context

    def __repr__(self) -> str:
        return f"<SSLCredentials: {self.context!r}>"


def to_credentials(value: Any, *, setting: str = "broker_credentials") -> Credentials | None:
    """The ``broker_credentials`` setting's value as Credentials (an SSLContext means TLS).

    Anything else is refused here, naming the accepted types, rather than
    reaching the Kafka client as a value it cannot use.
    """
    if value is None or isinstance(value, Credentials):
        return value
    if isinstance(value, ssl.SSLContext):
        return SSLCredentials(value)
    raise ImproperlyConfigured(
        f"setting {setting!r} must be an ssl.SSLContext or detstream.SSLCredentials, "
        f"SASLCredentials, GSSAPICredentials or OAuthCredentials, got {type(value).__name__} "
        f"{value!r}"
    )
