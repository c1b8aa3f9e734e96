"""Kafka request and response frames, decoded and encoded with aiokafka's protocol structs.

A frame is a 4-byte big-endian size and a message. A request message is a
header (api key, api version, correlation id, client id; flexible versions
add tagged fields) and the body of that API version; a response message is
the correlation id (flexible: and tagged fields) and the body. aiokafka
defines a struct class per API and version; ``request_class`` finds the one
a header names, so the broker side decodes exactly what the client encoded.
"""

from __future__ import annotations

import importlib
import pkgutil
import struct
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import aiokafka.protocol
from aiokafka.protocol.api import RequestStruct, Response, ResponseHeader_v0
from aiokafka.protocol.types import Int16, Int32, String, TaggedFields

__all__ = ["Decoded", "decode_request", "encode_response", "request_class"]

_SIZE = struct.Struct(">i")


@dataclass(frozen=True)
class Decoded:
    """One request as the broker sees it."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str
    #: the body, an instance of aiokafka's request struct for that API and version.
    body: Any
    flexible: bool
    #: who sent it: the owner of the connection (``{actor}#{incarnation}``), if a worker's.
    owner: str | None = None


def _request_classes() -> dict[tuple[int, int], type[RequestStruct]]:
    """Every request struct aiokafka defines, by (api key, api version)."""
    for module in pkgutil.iter_modules(aiokafka.protocol.__path__):
        importlib.import_module(f"aiokafka.protocol.{module.name}")
    found: dict[tuple[int, int], type[RequestStruct]] = {}
    pending: list[type[RequestStruct]] = list(RequestStruct.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if hasattr(cls, "API_KEY") and hasattr(cls, "API_VERSION"):
            found.setdefault((cls.API_KEY, cls.API_VERSION), cls)
    return found


_CLASSES: dict[tuple[int, int], type[RequestStruct]] | None = None


def request_class(api_key: int, api_version: int) -> type[RequestStruct] | None:
    """aiokafka's request struct for an API key and version (None: aiokafka has none)."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _request_classes()
    found = _CLASSES.get((api_key, api_version))
    if found is None:  # maybe defined since (the Kafka driver's static membership structs)
        _CLASSES = _request_classes()
        found = _CLASSES.get((api_key, api_version))
    return found


def decode_request(message: bytes) -> Decoded:
    """A request message (without its size); ``ValueError`` for an API aiokafka has no struct for."""
    data = BytesIO(message)
    api_key = Int16.decode(data)
    api_version = Int16.decode(data)
    correlation_id = Int32.decode(data)
    client_id = String("utf-8").decode(data)
    cls = request_class(api_key, api_version)
    if cls is None:
        raise ValueError(f"no request struct for api key {api_key} version {api_version}")
    if cls.FLEXIBLE_VERSION:
        TaggedFields.decode(data)
    return Decoded(api_key, api_version, correlation_id, client_id, cls.decode(data), cls.FLEXIBLE_VERSION)


def encode_response(request: Decoded, response: Response) -> bytes:
    """The framed response to ``request``: size, header with its correlation id, body."""
    if request.flexible:
        header = Int32.encode(request.correlation_id) + TaggedFields.encode({})
    else:
        header = ResponseHeader_v0(request.correlation_id).encode()
    message = header + response.encode()
    return _SIZE.pack(len(message)) + message
