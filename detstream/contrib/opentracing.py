"""Faust's OpenTracing sensor (``faust.sensors.distributed_tracing.TracingSensor``).

Deprecated upstream, as OpenTracing itself is (OpenTelemetry replaced it: use
:mod:`detstream.contrib.opentelemetry`); provided for projects that still
register it. It needs the ``opentracing`` package (``pip install opentracing``)
and a tracer (``opentracing.tracer``, the global one, unless given); without
the package, making one fails naming it.

What it traces, as Faust's:

- a ``consume-from-{topic}`` span per record fetched, following from the trace
  context in its headers when there is one, finished when every stream acked it;
- a ``job-{topic}`` span, its child, per stream processing the record: it is the
  current span (:func:`current_span`) in the agent's task while the agent has the
  event;
- a ``produce-to-{topic}`` span, child of the current span, per record sent while
  there is one; its context is written into the record's headers (TEXT_MAP), so
  the consumer's ``consume-from`` span follows from it. It finishes when the broker
  acknowledged (or refused) the record.

Spans of a record are kept with the record (weakly): a record dropped without
being acked (its partition revoked) leaves its spans unfinished, not held.
"""

from __future__ import annotations

import contextvars
import logging
import traceback
import weakref
from typing import Any

from detstream.errors import ImproperlyConfigured
from detstream.sensors import Sensor

__all__ = ["TracingSensor", "current_span", "set_current_span"]

logger = logging.getLogger(__name__)

_current_span: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "detstream_opentracing_span", default=None,
)


def current_span() -> Any:
    """The OpenTracing span of the event the running agent processes (or one set), or None."""
    return _current_span.get()


def set_current_span(span: Any) -> contextvars.Token[Any]:
    """Make ``span`` current in this task; returns the token to reset it with."""
    return _current_span.set(span)


def _opentracing() -> Any:
    try:
        import opentracing
    except ImportError:
        raise ImproperlyConfigured(
            "TracingSensor (Faust's faust.sensors.distributed_tracing) needs the opentracing "
            "package: pip install opentracing. OpenTracing is deprecated; "
            "detstream.contrib.opentelemetry.setup_opentelemetry(app) is its replacement"
        ) from None
    return opentracing


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class TracingSensor(Sensor):
    """OpenTracing spans for records consumed, processed by agents and sent (see the module)."""

    def __init__(self, *, tracer: Any = None) -> None:
        self._opentracing = _opentracing()
        self._tracer = tracer
        #: a record's ``consume-from`` span, and its streams' ``job`` spans, until it is acked.
        self._message_spans: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    @property
    def app_tracer(self) -> Any:
        """The tracer spans are made with: the one given, else ``opentracing.tracer``."""
        return self._tracer if self._tracer is not None else self._opentracing.tracer

    #: Faust's second name of the same tracer.
    kafka_tracer = app_tracer

    # -- consuming -------------------------------------------------------------------------
    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        opentracing, tracer = self._opentracing, self.app_tracer
        carrier = {_text(k): _text(v) for k, v in (message.headers or ())}
        references = None
        if carrier:
            try:
                parent = tracer.extract(opentracing.Format.TEXT_MAP, carrier)
            except Exception:  # headers, but none of this tracer's: a trace of its own
                parent = None
            if parent is not None:
                references = [opentracing.follows_from(parent)]
        span = tracer.start_span(operation_name=f"consume-from-{tp.topic}", references=references)
        span.set_tag("kafka-topic", tp.topic)
        span.set_tag("kafka-partition", tp.partition)
        span.set_tag("kafka-key", message.key)
        self._message_spans[message] = span

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> Any:
        parent = self._message_spans.get(event.message)
        if parent is None:  # received before this sensor was registered
            return None
        span = self._opentracing.start_child_span(parent, f"job-{tp.topic}")
        span.set_tag("stream-concurrency-index", getattr(stream, "concurrency_index", 0))
        span.set_tag("stream-prefix", getattr(stream, "prefix", ""))
        return {"span": span, "token": set_current_span(span)}

    def on_stream_event_out(
        self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None
    ) -> None:
        if not state:
            return
        try:
            _current_span.reset(state["token"])
        except ValueError:  # the stream was closed from another context
            pass
        state["span"].finish()

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        span = self._message_spans.pop(message, None)
        if span is not None:
            span.finish()

    # -- sending ---------------------------------------------------------------------------
    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any:
        parent = current_span()
        if parent is None:
            return {"span": None}
        span = self._opentracing.start_child_span(parent, f"produce-to-{topic}")
        headers = tuple(message.get("headers") or ())
        span.set_tag("kafka-headers", {_text(k): _text(v) for k, v in headers})
        message["headers"] = headers + self._trace_headers(span)
        return {"span": span}

    def _trace_headers(self, span: Any) -> tuple[tuple[str, bytes], ...]:
        """The span's context as record headers (the tracer's TEXT_MAP carrier)."""
        carrier: dict[str, str] = {}
        try:
            self.app_tracer.inject(span.context, self._opentracing.Format.TEXT_MAP, carrier)
        except Exception as exc:  # tracing must never stop a send
            logger.warning("opentracing: trace context not written to the record: %r", exc)
            return ()
        return tuple((str(k), str(v).encode()) for k, v in carrier.items())

    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None:
        span = (state or {}).get("span")
        if span is not None:
            span.set_tag("kafka-topic", metadata.topic)
            span.set_tag("kafka-partition", metadata.partition)
            span.set_tag("kafka-offset", metadata.offset)
            span.finish()

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        span = (state or {}).get("span")
        if span is not None:
            span.set_tag(self._opentracing.tags.ERROR, True)
            span.log_kv({
                "event": "error",
                "error.kind": type(exc).__name__,
                "error.object": exc,
                "stack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
            })
            span.finish()
