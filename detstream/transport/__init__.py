"""Transport drivers, chosen by the scheme of the broker URL.

The mapping names modules lazily so that importing detstream never imports
the simulator or aiokafka; a dotted ``package.module:Class`` path may be given
instead of a URL for a custom driver, or ``package.module.Class://host`` as the
URL's scheme (Faust's form: the driver gets the whole URL).
"""

from __future__ import annotations

import importlib
from typing import Any

from detstream.errors import ImproperlyConfigured

DRIVERS: dict[str, str] = {
    "sim": "sim.driver:SimTransport",
    "kafka": "detstream.transport.kafka.driver:AIOKafkaTransport",
    "aiokafka": "detstream.transport.kafka.driver:AIOKafkaTransport",
    # Faust's confluent-kafka transport: the same Kafka protocol, served by the aiokafka
    # driver so that a Faust project's broker URL works as written (the driver says so).
    "confluent": "detstream.transport.kafka.driver:AIOKafkaTransport",
}


def driver_class(url: str) -> Any:
    """The transport class for ``url`` (``kafka://host``, ``sim://``, or a class path)."""
    scheme, sep, _ = url.partition("://")
    path = DRIVERS.get(scheme.lower()) if sep else None
    if path is None and ":" in url and not sep:
        path = url
    if path is None and sep and "." in scheme:  # Faust: the scheme may be a class's dotted path
        module_name, _, attr = scheme.rpartition(".")
        path = f"{module_name}:{attr}"
    if path is None:
        known = ", ".join(f"{s}://" for s in sorted(DRIVERS))
        raise ImproperlyConfigured(
            f"broker URL {url!r} has no known driver: use one of {known} "
            "or a class path like 'package.module:Transport'"
        )
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"broker driver {path!r} for {url!r} could not be imported: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImproperlyConfigured(f"broker driver module {module_name!r} has no {attr!r}") from None
