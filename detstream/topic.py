"""Topics: a description of a Kafka topic (names, types, codecs, config).

A Topic does no I/O when created; the App declares internal topics and the
topics its agents consume when it starts (unless ``topic_allow_declare`` is
off) and the consumer fills the topic's subscriber buffers with fetched
messages. ``send`` serialises and produces through the App's producer.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ._types import RecordMetadata
from .channel import Channel, Item, T
from .errors import InvalidArgument
from .pending import FutureMessage, PendingMessage
from .produce_hook import hooked_headers
from .serializers import Schema

if TYPE_CHECKING:
    from .app import App
    from .engine.buffer import SubscriberBuffer

logger = logging.getLogger(__name__)


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _as_sent(obj: Any, encode: Any, default: Any) -> bytes | None:
    """``obj`` as a topic sends it: bytes as they are (as Faust), None as None, else encoded."""
    if type(obj) is bytes or obj is None:  # (``encode(None)`` is None too: no call for it)
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj)
    return encode(obj, default_serializer=default)


def _header_items(headers: Any) -> tuple[tuple[str, bytes], ...]:
    """Headers as a dict or a list of pairs, as the (name, bytes) pairs a record carries."""
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((_text(k), _raw(v)) for k, v in pairs)


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


def _raw(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def _settle(fut: FutureMessage, sent: asyncio.Future[RecordMetadata]) -> None:
    """Resolve ``fut`` as the producer's future ``sent`` did; then its callback."""
    if fut.done():
        return
    if sent.cancelled():
        fut.cancel()
        return
    error = sent.exception()
    if error is not None:
        fut.set_exception(error)
        return
    fut.set_result(sent.result())
    callback = fut.message.callback
    if callback is not None:
        result = callback(fut)
        if asyncio.iscoroutine(result):
            asyncio.ensure_future(result)


class Topic(Channel[T]):
    """``app.topic(*names, ...)``: see the Faust guide for each argument."""

    def __init__(
        self,
        app: App,
        *topics: str,
        pattern: str | None = None,
        schema: Schema | None = None,
        key_type: Any = None,
        value_type: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        partitions: int | None = None,
        retention: float | timedelta | None = None,
        compacting: bool | None = None,
        deleting: bool | None = None,
        replicas: int | None = None,
        acks: bool = True,
        internal: bool = False,
        config: Mapping[str, Any] | None = None,
        maxsize: int | None = None,
        allow_empty: bool = False,
    ) -> None:
        if not topics and pattern is None:
            raise InvalidArgument("app.topic() needs at least one topic name or pattern=")
        for name in topics:
            if not isinstance(name, str) or not name:
                raise InvalidArgument(f"topic names must be non-empty str, got {name!r}")
        if partitions is not None and (not isinstance(partitions, int) or partitions < 1):
            raise InvalidArgument(f"topic partitions must be an int >= 1 or None, got {partitions!r}")
        super().__init__(
            app,
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer,
            value_serializer=value_serializer,
            schema=schema,
            maxsize=maxsize,
        )
        self.topics: Sequence[str] = tuple(topics)
        self.pattern = pattern
        try:
            self._pattern = re.compile(pattern) if pattern is not None else None
        except (re.error, TypeError) as exc:
            raise InvalidArgument(f"app.topic(pattern={pattern!r}) is not a regular expression: {exc}") from None
        self.partitions = partitions
        self.retention = _seconds(retention)
        self.compacting = compacting
        self.deleting = deleting
        self.replicas = replicas
        self.acks = acks
        self.internal = internal
        self.config = dict(config or {})
        self.allow_empty = allow_empty
        app._register_topic(self)

    def matches(self, name: str) -> bool:
        """Does this description cover topic ``name`` (one of its names, or its pattern)?

        A pattern matches from the start of the name, as aiokafka's and Kafka's
        pattern subscriptions do (``'events-.*'`` matches ``events-eu``).
        """
        if name in self.topics:
            return True
        return self._pattern is not None and self._pattern.match(name) is not None

    @property
    def label(self) -> str:
        return "|".join(self.topics) or f"pattern:{self.pattern}"

    def subscribe(self) -> SubscriberBuffer[Item]:
        """A new stream's buffer; the worker consumes this topic for it (``app.topics``).

        A stream made while the app runs over a topic nothing consumed yet
        (``topic.stream()`` in a task) subscribes the worker to it then.
        """
        buffer = super().subscribe()
        self.app.topics.add(self)
        return buffer

    def get_topic_name(self) -> str:
        if len(self.topics) != 1:
            raise InvalidArgument(f"topic {self.label!r} has {len(self.topics)} names: name one to send to")
        return self.topics[0]

    def kafka_config(self) -> dict[str, str]:
        """Topic config as Kafka names it (``cleanup.policy``, ``retention.ms``)."""
        config = {k: str(v) for k, v in self.config.items()}
        policies = [p for p, on in (("compact", self.compacting), ("delete", self.deleting)) if on]
        if policies:
            config["cleanup.policy"] = ",".join(policies)
        if self.retention is not None:
            config["retention.ms"] = str(int(self.retention * 1000))
        return config

    def derive(self, *, prefix: str = "", suffix: str = "", **kwargs: Any) -> Topic:
        """A new topic description inheriting this one's types and config."""
        options: dict[str, Any] = dict(
            schema=self.schema, partitions=self.partitions, retention=self.retention,
            compacting=self.compacting, deleting=self.deleting, replicas=self.replicas,
            acks=self.acks, internal=self.internal, config=self.config, maxsize=self.maxsize,
        )
        options.update(kwargs)
        names = [f"{prefix}{name}{suffix}" for name in self.topics]
        return Topic(self.app, *names, **options)

    # -- producing --------------------------------------------------------------
    async def send(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        force: bool = False,
    ) -> asyncio.Future[RecordMetadata]:
        """Serialise and hand to the producer; returns a future of the broker's ack.

        As in Faust, ``await topic.send(...)`` does not wait for the broker
        (``await`` the returned future for the RecordMetadata): the app flushes
        the producer before it commits offsets, so nothing is committed before
        the records its processing produced are stored.

        In an ``@app.command`` the first send starts the app as a client, as
        Faust starts its producer on demand (``App.client_on_demand``).
        """
        app = self.app
        if app.client_on_demand and app._producer is None:
            await app.start_client()
        return self.send_soon(
            key=key, value=value, partition=partition, timestamp=timestamp, headers=headers,
            key_serializer=key_serializer, value_serializer=value_serializer, callback=callback,
        )

    def send_soon(
        self,
        *,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
    ) -> asyncio.Future[RecordMetadata]:
        """Serialise now, produce in the background; the App flushes before commits."""
        name, key_bytes, value_bytes, header_items = self._encode(
            key, value, headers, key_serializer, value_serializer, partition, timestamp
        )
        future = self.app.producer.send_soon(
            name, key=key_bytes, value=value_bytes, partition=partition,
            timestamp=timestamp, headers=header_items,
        )
        if callback is not None:  # as Faust's: called with the send's future once it succeeded
            future.add_done_callback(lambda f: callback(f) if not f.exception() else None)
        return future

    async def send_encoded(
        self,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
        callback: Any = None,
    ) -> asyncio.Future[RecordMetadata]:
        """``send`` of a key and value already encoded: their bytes go out as they are.

        ``event.forward(topic)`` sends the record it came from this way (as
        Faust's, which does not serialise it again).
        """
        app = self.app
        if app.client_on_demand and app._producer is None:
            await app.start_client()
        header_items = tuple((str(k), bytes(v)) for k, v in headers.items()) if headers else ()
        hook = app.on_produce_message
        if hook.has_receivers():
            header_items = hooked_headers(hook, key, value, partition, timestamp, header_items)
        future = app.producer.send_soon(
            self.get_topic_name(), key=key, value=value, partition=partition,
            timestamp=timestamp, headers=header_items,
        )
        if callback is not None:
            future.add_done_callback(lambda f: callback(f) if not f.exception() else None)
        return future

    async def forward(
        self,
        *,
        key: Any = None,
        value: Any = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> None:
        """The engine's own send of an event onward (``group_by``, ``through``, sinks).

        As ``send``, without a result future: nobody reads it, and making
        one per event costs. A refused record still fails the event.
        """
        waiting = self.forward_or_wait(key=key, value=value, timestamp=timestamp, headers=headers)
        if waiting is not None:
            await waiting

    def forward_or_wait(
        self,
        *,
        key: Any = None,
        value: Any = None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> Awaitable[None] | None:
        """``forward`` without a coroutine when the producer takes the record at once: None then;
        else what the caller awaits to forward it once the outbox has room.

        A sink or ``group_by`` forwards once per event: the common case (room
        in the outbox) makes no coroutine for it.
        """
        name, key_bytes, value_bytes, header_items = self._encode(
            key, value, headers, None, None, None, timestamp
        )
        producer = self.app._producer  # ``app.producer`` without its property call (per forward)
        if producer is None:  # not started: the property raises
            producer = self.app.producer
        if producer.try_forward(name, key_bytes, value_bytes, timestamp, header_items):
            return None
        return producer.forward(
            name, key=key_bytes, value=value_bytes, timestamp=timestamp, headers=header_items,
        )

    def forward_value_bytes(
        self,
        *,
        key: Any,
        value: bytes | None,
        timestamp: float | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> Awaitable[None] | None:
        """``forward_or_wait`` of a value already encoded with this topic's schema: only the key
        is encoded. None if the producer took it, else what to await.

        ``group_by`` re-keys a message whose value it does not change; as
        Faust, it forwards the value's bytes as they came (fields a newer
        producer added survive the repartition, and the value is not
        decoded and encoded again).
        """
        app = self.app
        conf = app._conf  # ``app.conf`` without its property call (per forward)
        if conf is None:  # not configured yet: the property configures it
            conf = app.conf
        settings = conf.values  # (a dict: ``conf.key_serializer`` is a __getattr__)
        key_bytes = _as_sent(key, self.schema.encode_key, settings["key_serializer"])
        header_items = tuple((str(k), bytes(v)) for k, v in headers.items()) if headers else ()
        if value is not None and type(value) is not bytes:
            value = bytes(value)
        hook = app.on_produce_message
        if hook.has_receivers():
            header_items = hooked_headers(hook, key_bytes, value, None, timestamp, header_items)
        topics = self.topics
        name = topics[0] if len(topics) == 1 else self.get_topic_name()
        producer = app._producer  # ``app.producer`` without its property call (per forward)
        if producer is None:  # not started: the property raises
            producer = app.producer
        if producer.try_forward(name, key_bytes, value, timestamp, header_items):
            return None
        return producer.forward(
            name, key=key_bytes, value=value, timestamp=timestamp, headers=header_items,
        )

    def _encode(
        self, key: Any, value: Any, headers: Mapping[str, bytes] | None,
        key_serializer: Any, value_serializer: Any, partition: int | None,
        timestamp: float | None,
    ) -> tuple[str, bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
        """The topic to send to and the record's bytes (headers as ``on_produce_message`` left them).

        As Faust's: a ``bytes`` key or value is sent as it is, whatever the codec.
        """
        schema = self.schema
        if schema.faust_dumps:  # a Faust Schema subclass: its dumps and header hooks
            key_bytes, value_bytes, header_items = self._encode_faust(
                key, value, headers, key_serializer, value_serializer)
        else:
            conf = self.app._conf  # ``app.conf`` without its property call (per send)
            if conf is None:  # not configured yet: the property configures it
                conf = self.app.conf
            settings = conf.values  # (a dict: ``conf.key_serializer`` is a __getattr__)
            key_bytes = None if key is None else _as_sent(  # (a sink's records have no key)
                key, schema.encode_key, key_serializer or settings["key_serializer"])
            value_bytes = _as_sent(value, schema.encode_value,
                                   value_serializer or settings["value_serializer"])
            header_items = tuple((str(k), bytes(v)) for k, v in headers.items()) if headers else ()
        hook = self.app.on_produce_message
        if hook.has_receivers():
            header_items = hooked_headers(hook, key_bytes, value_bytes, partition, timestamp,
                                          header_items)
        topics = self.topics  # (``get_topic_name``, without its call for the usual one name)
        name = topics[0] if len(topics) == 1 else self.get_topic_name()
        return name, key_bytes, value_bytes, header_items

    def key_bytes(self, key: Any) -> bytes | None:
        """``key`` as this topic sends it (what decides its partition)."""
        if self.schema.faust_dumps:
            return self._encode_faust(key, None, None, None, None)[0]
        return _as_sent(key, self.schema.encode_key, self.app.conf.values["key_serializer"])

    def _encode_faust(
        self, key: Any, value: Any, headers: Any, key_serializer: Any, value_serializer: Any,
    ) -> tuple[bytes | None, bytes | None, tuple[tuple[str, bytes], ...]]:
        """Key, value and headers through the schema's Faust ``dumps_*`` and header hooks."""
        open_headers: Any = list(headers) if isinstance(headers, (list, tuple)) else dict(
            headers or {})
        key_bytes, value_bytes, open_headers = self.schema.encode_faust(
            self.app, key, value, open_headers, key_serializer, value_serializer)
        return key_bytes, value_bytes, _header_items(open_headers)

    def as_future_message(
        self,
        key: Any = None,
        value: Any = None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Any = None,
        schema: Any = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        callback: Any = None,
        eager_partitioning: bool = False,
    ) -> FutureMessage:
        """The record, encoded now, as a promise to send it (Faust's): ``publish_message``
        sends it. (``schema=`` other than the topic's own is not taken.)"""
        if schema is not None and schema is not self.schema:
            raise InvalidArgument(
                f"topic {self.label!r}: as_future_message(schema=...) takes only the topic's "
                "own schema; make a topic with that schema (app.topic(..., schema=...))"
            )
        name, key_bytes, value_bytes, header_items = self._encode(
            key, value, headers, key_serializer, value_serializer, partition, timestamp)
        return FutureMessage(PendingMessage(
            self, key_bytes, value_bytes, partition=partition, timestamp=timestamp,
            headers=header_items, key_serializer=key_serializer,
            value_serializer=value_serializer, callback=callback, topic=name,
        ))

    async def publish_message(self, fut: FutureMessage, wait: bool = True) -> FutureMessage:
        """Produce a record made by :meth:`as_future_message`; ``fut`` resolves with its
        RecordMetadata once the broker acknowledged it (then the callback is called)."""
        app = self.app
        if app.client_on_demand and app._producer is None:
            await app.start_client()
        message = fut.message
        assert message.topic is not None  # as_future_message named it
        sent = app.producer.send_soon(
            message.topic, key=message.key, value=message.value, partition=message.partition,
            timestamp=message.timestamp, headers=message.headers,
        )
        sent.add_done_callback(lambda done: _settle(fut, done))
        return fut

    async def maybe_declare(self) -> None:
        """``declare()`` once per topic description (Faust's name; later calls do nothing)."""
        if not getattr(self, "_declared", False):
            await self.declare()
            self._declared = True

    async def declare(self) -> None:
        """Create the topic on the broker if it is missing, unless ``topic_allow_declare`` is off.

        ``partitions=`` or else the app's ``topic_partitions``, ``replicas=`` or
        else ``topic_replication_factor``, and the topic's config. An existing
        topic is left as it is (Kafka cannot shrink one): a different count
        than ``partitions=`` asked for is logged. The app declares its internal
        topics (changelogs, repartition and agent topics) and every topic an
        agent consumes when it starts.
        """
        conf = self.app.conf
        if not conf.topic_allow_declare:
            return
        partitions = self.partitions or conf.topic_partitions
        replicas = self.replicas or conf.topic_replication_factor
        admin = self.app.admin
        for name in self.topics:
            if not self.internal:
                # Asked first: a topic made by someone else (the scenario, an operator)
                # is theirs; on Kafka this lookup never auto-creates it.
                existing = await admin.partitions_for(name)
                if existing is not None:
                    if self.partitions is not None and existing != self.partitions:
                        logger.warning(
                            "topic %r exists with %d partitions, but the app declares it with "
                            "partitions=%d: it is used as it is (Kafka topics cannot shrink; "
                            "add partitions with Kafka's tools, or fix partitions=)",
                            name, existing, self.partitions,
                        )
                    continue
            await admin.create_topic(
                name, partitions=partitions, replication_factor=replicas,
                config=self.kafka_config(),
            )
