"""Agent RPC wire format: request headers and the ``ReqRepResponse`` reply record.

A request is an ordinary record on the agent's topic carrying two headers,
``Faust-Ag-ReplyTo`` (the caller's reply topic) and ``Faust-Ag-CorrelationId``;
the agent answers with a ``ReqRepResponse(key, value, correlation_id)`` on
that reply topic (same JSON as Faust). See :mod:`detstream.rpc.agent_rpc`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from detstream._types import RecordMetadata
from detstream.events import Event
from detstream.models import BLESSED_KEY, Record, registry
from detstream.produce_hook import Headers, hooked_headers

if TYPE_CHECKING:
    from detstream.app import App

__all__ = [
    "CORRELATION_ID_HEADER",
    "REPLY_TO_HEADER",
    "ReqRepResponse",
    "decode_reply",
    "encode_reply",
    "reply_address",
    "request_headers",
    "send_reply",
    "topic_name",
    "want_str",
]

#: Faust's header names (``use_reply_headers=True``, its default).
REPLY_TO_HEADER = "Faust-Ag-ReplyTo"
CORRELATION_ID_HEADER = "Faust-Ag-CorrelationId"


class ReqRepResponse(Record, serializer="json", namespace="@ReqRepResponse"):
    """What an agent sends to the reply topic (Faust's record, same JSON)."""

    key: Any
    value: Any
    correlation_id: str


def want_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode()
    return str(value)


def request_headers(
    reply_to: str, correlation_id: str, headers: Mapping[str, Any] | None = None
) -> dict[str, bytes]:
    """``headers`` plus the reply-to topic and correlation id of a request."""
    merged = {str(k): v if isinstance(v, bytes) else str(v).encode() for k, v in (headers or {}).items()}
    merged[REPLY_TO_HEADER] = reply_to.encode()
    merged[CORRELATION_ID_HEADER] = correlation_id.encode()
    return merged


def reply_address(event: Event | None) -> tuple[str, str] | None:
    """(reply topic, correlation id) of the request ``event`` is, or None."""
    if event is None or not event.headers:
        return None
    reply_to = want_str(event.headers.get(REPLY_TO_HEADER))
    if not reply_to:
        return None
    return reply_to, want_str(event.headers.get(CORRELATION_ID_HEADER)) or ""


def encode_reply(key: Any, value: Any, correlation_id: str) -> bytes:
    return ReqRepResponse(key=key, value=value, correlation_id=correlation_id).dumps()


def decode_reply(data: bytes | None) -> tuple[str, Any]:
    """(correlation id, value) of a reply record; ValueError if it is not one."""
    if data is None:
        raise ValueError("empty record")
    try:
        payload = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict) or "correlation_id" not in payload:
        raise ValueError("not a ReqRepResponse (no correlation_id)")
    return str(payload["correlation_id"]), _revive(payload.get("value"))


def _revive(value: Any) -> Any:
    """A Record the agent yielded comes back as that Record (by its ``__faust`` namespace)."""
    if isinstance(value, dict):
        meta = value.get(BLESSED_KEY)
        if isinstance(meta, dict) and meta.get("ns") in registry:
            return Record.from_data(value)
    return value


def send_reply(app: App, reply_to: str, correlation_id: str, key: Any, value: Any) -> asyncio.Future[RecordMetadata]:
    """Send an agent's answer to the caller (joins the transaction under exactly-once)."""
    app.tracer.record("reply-sent", topic=reply_to, correlation_id=correlation_id)
    value_bytes = encode_reply(key, value, correlation_id)
    headers: Headers = ((CORRELATION_ID_HEADER, correlation_id.encode()),)
    hook = app.on_produce_message
    if hook.has_receivers():
        headers = hooked_headers(hook, None, value_bytes, None, None, headers)
    return app.producer.send_soon(reply_to, key=None, value=value_bytes, headers=headers)


def topic_name(target: Any) -> str:
    """A reply topic given as a name, a Topic or an Agent (Faust's ``_get_strtopic``)."""
    if isinstance(target, str):
        return target
    channel = getattr(target, "channel", target)
    get_name = getattr(channel, "get_topic_name", None)
    if get_name is None:
        raise TypeError(f"reply_to must be a topic name, a Topic or an Agent, not {target!r}")
    return str(get_name())
