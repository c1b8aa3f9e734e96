"""Broker URLs of the Kafka driver: ``kafka://h1:9092;h2:9092`` to bootstrap servers.

Kept apart from the driver so that a bad URL can be explained (CLI banner,
unit tests) without importing aiokafka.
"""

from __future__ import annotations

from collections.abc import Sequence

from detstream.errors import ImproperlyConfigured

DEFAULT_PORT = 9092
#: ``confluent://`` is Faust's confluent-kafka transport: here the same driver serves it.
_SCHEMES = ("kafka", "aiokafka", "confluent")
_HOW = "write it like kafka://localhost:9092 (several brokers: kafka://h1:9092;h2:9092)"


def bootstrap_servers(broker: str | Sequence[str]) -> list[str]:
    """``host:port`` bootstrap servers of a broker URL (or list of URLs, as Faust allows).

    ``kafka://`` alone means ``localhost:9092``; a host without a port gets
    9092; hosts are separated by ``;`` (or ``,``). A malformed URL raises
    ImproperlyConfigured naming the URL and the fix, at App start rather than
    as an unreadable connection error later.
    """
    urls = [broker] if isinstance(broker, str) else list(broker)
    if not urls:
        raise ImproperlyConfigured(f"broker setting {broker!r} is an empty list: {_HOW}")
    servers: list[str] = []
    for url in urls:
        if not isinstance(url, str):
            raise ImproperlyConfigured(f"broker URL {url!r} is not a str: {_HOW}")
        scheme, sep, rest = url.strip().partition("://")
        if not sep or scheme.lower() not in _SCHEMES:
            raise ImproperlyConfigured(f"broker URL {url!r} is not a kafka:// URL: {_HOW}")
        rest = rest.rstrip("/")
        if "/" in rest or "?" in rest:
            raise ImproperlyConfigured(
                f"broker URL {url!r} has a path or query, which Kafka does not use: {_HOW}"
            )
        if not rest:
            servers.append(f"localhost:{DEFAULT_PORT}")
            continue
        hosts = [h.strip() for h in rest.replace(",", ";").split(";")]
        if not any(hosts):
            raise ImproperlyConfigured(f"broker URL {url!r} has an empty host list: {_HOW}")
        servers.extend(_host_port(url, entry) for entry in hosts if entry)
    return servers


def uses_confluent_scheme(broker: str | Sequence[str]) -> bool:
    """Whether a broker URL asks for Faust's ``confluent://`` transport."""
    urls = [broker] if isinstance(broker, str) else list(broker)
    return any(isinstance(url, str) and url.strip().lower().startswith("confluent://") for url in urls)


def _host_port(url: str, entry: str) -> str:
    """``host:port`` of one entry (``host``, ``host:port``, ``[v6addr]:port``)."""
    if entry.startswith("["):
        inside, _, tail = entry[1:].partition("]")
        host = f"[{inside}]" if inside else ""
        has_port, port = tail.startswith(":"), tail[1:]
        if tail and not has_port:
            host = ""
    else:
        host, has_port, port = entry, False, ""
        if ":" in entry:
            host, _, port = entry.rpartition(":")
            has_port = True
    if not host or any(c.isspace() for c in host):
        raise ImproperlyConfigured(f"broker URL {url!r}: {entry!r} has no valid host name: {_HOW}")
    if not has_port:
        return f"{host}:{DEFAULT_PORT}"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ImproperlyConfigured(
            f"broker URL {url!r}: port {port!r} of {entry!r} is not a number from 1 to 65535: {_HOW}"
        )
    return f"{host}:{int(port)}"
