"""OpenTelemetry tracing of agents, and of a co-hosted ASGI application (Faust's
``faust.contrib.opentelemetry``).

A record produced inside a traced request carries the trace in its ``traceparent``
header (written by ``opentelemetry-instrumentation-aiokafka``, or by your own
``app.on_produce_message`` handler). :func:`setup_opentelemetry` registers
:class:`OpenTelemetrySensor`, which reads that header back on the consuming side
and opens a ``{topic} process`` span (kind CONSUMER, OpenTelemetry's messaging
attributes) that is the current span for as long as the agent processes the
event, so what the agent does (a send, an HTTP call, a query) nests under it::

    setup_opentelemetry(app)

The span is current in the agent's own task (a context variable), opened when the
stream hands the event over and ended when the agent asks for the next one.
Trace context is only read here, never written: the producing side's
instrumentation writes it, and a second writer would put two ``traceparent``
headers on a record. Faust's opentracing sensor
(:class:`detstream.contrib.opentracing.TracingSensor`) does write them, so
:func:`setup_opentelemetry` warns when it finds one registered.

:func:`instrument_asgi_app` attaches ``FastAPIInstrumentor`` to an ASGI
application; ``faust_lifespan`` and ``serve_asgi`` call it
(:func:`maybe_instrument_asgi`): automatically when a real ``TracerProvider`` is
configured, always with ``opentelemetry=True``, never with ``False``.

Only ``opentelemetry-api`` is needed (``opentelemetry-instrumentation-fastapi``
for the ASGI part); nothing is imported from it until used, and a library never
configures the SDK, so nothing here calls ``set_tracer_provider()``.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any, cast

from detstream.errors import ImproperlyConfigured
from detstream.sensors import Sensor

__all__ = [
    "OpenTelemetrySensor", "instrument_asgi_app", "maybe_instrument_asgi",
    "opentelemetry_available", "sdk_is_configured", "setup_opentelemetry",
]

logger = logging.getLogger(__name__)

#: the instrumentation scope of the spans made here (Faust's).
INSTRUMENTATION_NAME = "faust"
#: the tracer providers of an application that configured no SDK.
_NOOP_PROVIDERS = frozenset({"ProxyTracerProvider", "NoOpTracerProvider", "DefaultTracerProvider"})
#: what to install for the ASGI instrumentation.
FASTAPI_INSTRUMENTATION = "opentelemetry-instrumentation-fastapi"


def opentelemetry_available() -> bool:
    """Whether the OpenTelemetry API can be imported."""
    try:
        import opentelemetry.trace  # noqa: F401
    except ImportError:
        return False
    return True


def sdk_is_configured() -> bool:
    """Whether the application set a real ``TracerProvider`` (the API's default is a no-op)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return False
    return type(trace.get_tracer_provider()).__name__ not in _NOOP_PROVIDERS


def _header_pairs(headers: Any) -> list[tuple[str, Any]]:
    """A record's headers (pairs, or a mapping) as a list of ``(name, value)``."""
    if not headers:
        return []
    if isinstance(headers, Mapping):
        return list(headers.items())
    return list(headers)


class _HeadersGetter:
    """OpenTelemetry's ``Getter`` over Kafka headers: pairs of ``(str, bytes)``, first wins."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        for name, value in _header_pairs(carrier):
            if name == key and value is not None:
                text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                return [text]
        return None

    def keys(self, carrier: Any) -> list[str]:
        return [name for name, _ in _header_pairs(carrier)]


class OpenTelemetrySensor(Sensor):
    """A ``{topic} process`` span around each event an agent processes, current meanwhile.

    Its parent is the trace context in the record's headers (``traceparent``), when
    there is one. ``tracer``: the tracer to make spans with (default: the global
    provider's, asked for at each event, so the SDK may be configured after the app
    is made).
    """

    def __init__(self, *, tracer: Any = None) -> None:
        try:
            from opentelemetry import context, propagate, trace
        except ImportError:
            raise ImproperlyConfigured(
                "OpenTelemetrySensor needs the OpenTelemetry API: pip install opentelemetry-api "
                '(or "detstream[opentelemetry]")'
            ) from None
        self._context, self._propagate, self._trace = context, propagate, trace
        self._tracer = tracer
        self._getter = _HeadersGetter()

    @property
    def tracer(self) -> Any:
        if self._tracer is not None:
            return self._tracer
        return self._trace.get_tracer(INSTRUMENTATION_NAME)

    def span_attributes(self, tp: Any, offset: int, stream: Any, event: Any) -> dict[str, Any]:
        """OpenTelemetry's messaging attributes of the event's span."""
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": tp.topic,
            "messaging.destination.partition.id": str(tp.partition),
            "messaging.kafka.message.offset": offset,
        }
        group = getattr(getattr(getattr(stream, "app", None), "conf", None), "id", None)
        if group:
            attributes["messaging.consumer.group.name"] = str(group)
        key = getattr(event.message, "key", None)
        if key is not None:  # the conventions: not set for a record without a key
            attributes["messaging.kafka.message.key"] = (
                key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
            )
        return attributes

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        trace = self._trace
        try:
            headers = getattr(event.message, "headers", None)
            # (a Getter by its methods: the API's class is not imported with this module)
            parent = self._propagate.extract(headers, getter=cast(Any, self._getter))
            span = self.tracer.start_span(
                f"{tp.topic} process", context=parent, kind=trace.SpanKind.CONSUMER,
                attributes=self.span_attributes(tp, offset, stream, event),
            )
            token = self._context.attach(trace.set_span_in_context(span))
        except Exception as exc:  # tracing must never stop an agent
            logger.warning("OpenTelemetry: no span for %s[%s]@%s: %r",
                           tp.topic, tp.partition, offset, exc)
            return None
        return {"span": span, "token": token}

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        if not state:
            return
        try:
            self._context.detach(state["token"])
        except Exception as exc:  # a generator closed from another context (the loop's finalizer)
            logger.debug("OpenTelemetry: span context not detached: %r", exc)
        state["span"].end()


def instrument_asgi_app(asgi_app: Any, *, tracer_provider: Any = None, force: bool = False) -> bool:
    """Attach ``FastAPIInstrumentor`` to ``asgi_app`` (FastAPI, Starlette); True if it did.

    It does not when the application is instrumented already (``opentelemetry-instrument``),
    when no real ``TracerProvider`` is configured (unless ``force``), or when the
    instrumentation package is not installed (logged; :func:`maybe_instrument_asgi`
    with ``opentelemetry=True`` refuses earlier, naming it).
    """
    if asgi_app is None or getattr(asgi_app, "_is_instrumented_by_opentelemetry", False):
        return False
    if not force and not sdk_is_configured():
        return False
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except Exception as exc:  # not installed, or its pinned siblings do not match
        logger.warning("OpenTelemetry: the ASGI application is not instrumented: %s is not "
                       "importable (%r)", FASTAPI_INSTRUMENTATION, exc)
        return False
    FastAPIInstrumentor.instrument_app(
        asgi_app, tracer_provider=tracer_provider, exclude_spans=["receive", "send"],
    )
    logger.info("OpenTelemetry: the ASGI application is instrumented")
    return True


def check_opentelemetry_option(caller: str, opentelemetry: bool | None) -> None:
    """``opentelemetry=True`` with the instrumentation missing fails when the caller is made."""
    if opentelemetry is not True:
        return
    try:
        importlib.import_module("opentelemetry.instrumentation.fastapi")
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{caller}(opentelemetry=True) instruments the ASGI application with "
            f"FastAPIInstrumentor, which is not importable ({exc}): pip install "
            f"{FASTAPI_INSTRUMENTATION}"
        ) from None


def maybe_instrument_asgi(asgi_app: Any, opentelemetry: bool | None) -> bool:
    """``opentelemetry=`` of ``faust_lifespan``/``serve_asgi``: None detects, True forces."""
    if opentelemetry is False:
        return False
    return instrument_asgi_app(asgi_app, force=bool(opentelemetry))


def setup_opentelemetry(app: Any, *, tracer: Any = None) -> OpenTelemetrySensor | None:
    """Register :class:`OpenTelemetrySensor` on ``app`` and return it.

    Returns None, with a warning naming the package, when the OpenTelemetry API
    is not installed (Faust's contract: the call is safe in any environment).
    """
    if not opentelemetry_available():
        logger.warning("OpenTelemetry: the API is not installed, so agents are not traced: "
                       "pip install opentelemetry-api")
        return None
    if _has_opentracing_sensor(app.sensors):
        logger.warning(
            "OpenTelemetry: a TracingSensor (opentracing) is registered too; it writes trace "
            "headers on the records it sends, so traces get two parents. Register only one."
        )
    sensor = OpenTelemetrySensor(tracer=tracer)
    app.sensors.add(sensor)
    return sensor


def _has_opentracing_sensor(sensors: Sequence[Any] | Any) -> bool:
    from .opentracing import TracingSensor

    return any(isinstance(sensor, TracingSensor) for sensor in sensors)
