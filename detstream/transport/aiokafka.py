"""The ``kafka://`` transport: the engine's clients on a real broker through aiokafka.

Only this module (and ``kafka_consumer``, which only it imports) imports
aiokafka; the driver lookup imports it lazily, so ``import detstream`` and the
simulator stay free of it. The clients mirror ``sim.driver`` so that what the
simulator proves holds here:

- group consumers never auto-commit; the engine commits what it acked;
- the group leader computes the assignment with detstream's co-partitioning
  assignor, so partition ``i`` of a source topic and of a table changelog land
  on the same worker, as they do in simulation;
- ``generation`` is the generation of the assignment in force (-1 while a
  rebalance is in progress), so records fetched under an older assignment are
  recognised as stale by the engine;
- connecting never hangs silently: an unreachable broker is reported and
  retried with a growing delay;
- exactly-once: a transactional producer (``kafka_transactions``) and
  read_committed consumers; see that module for what aiokafka does not send;
- which setting becomes which client option (compression, batching, timeouts,
  TLS/SASL credentials) is in ``kafka_options`` and ``kafka_auth``, checked
  when the transport is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.metadata import MetadataRequest

from detstream._types import RecordMetadata
from detstream.clock import wall_time
from detstream.errors import ImproperlyConfigured, ProducerSendError
from detstream.settings import SETTINGS
from detstream.transport.base import Headers, IsolationLevel
from detstream.transport.kafka_closing import force_close_producer, stop_client
from detstream.transport.kafka_consumer import CopartitionedAssignor, KafkaConsumer, _ms
from detstream.transport.kafka_options import (
    admin_options,
    check_settings,
    consumer_options,
    producer_options,
)
from detstream.transport.kafka_urls import bootstrap_servers

__all__ = [
    "AIOKafkaTransport", "CopartitionedAssignor", "KafkaAdmin", "KafkaConsumer", "KafkaProducer",
    "bootstrap_servers",
]

log = logging.getLogger(__name__)

#: first and largest delay between attempts to reach an unreachable broker (seconds).
RETRY_FIRST, RETRY_MAX = 0.5, 30.0


class AIOKafkaTransport:
    """Transport over Apache Kafka; client settings come from ``app.conf``."""

    def __init__(self, url: str = "kafka://", *, app: Any = None) -> None:
        self.url = url
        self.app = app
        broker = app.conf.broker if app is not None else url
        self.servers = bootstrap_servers(broker if isinstance(broker, (list, tuple)) else url)
        self._conf = {name: default for name, (default, _) in SETTINGS.items()}
        if app is not None:
            self._conf.update(app.conf.values)
        check_settings(self._conf)  # a codec without its library, etc.: fail now, naming it
        #: subscribed consumers by group id: a transactional producer checks its offsets' group.
        self.group_consumers: dict[str, KafkaConsumer] = {}

    def __repr__(self) -> str:
        return f"<AIOKafkaTransport: {';'.join(self.servers)}>"

    def stop_budget(self) -> float | None:
        """How long a client's graceful stop may wait for the broker (the app's ``stop_budget``)."""
        budget = getattr(self.app, "stop_budget", None)
        return budget() if callable(budget) else None

    def create_producer(
        self, *, client_id: str, transactional_id: str | None = None,
        transaction_timeout: float = 60.0,
    ) -> KafkaProducer:
        options = producer_options(self._conf, client_id, self.servers)
        if transactional_id is None:
            return KafkaProducer(self, options)
        from detstream.transport.kafka_transactions import KafkaTransactionalProducer

        options.update(
            acks="all",  # what transactions require, whatever producer_acks says
            transactional_id=transactional_id,
            transaction_timeout_ms=_ms(transaction_timeout),
        )
        return KafkaTransactionalProducer(self, options, transactional_id=transactional_id)

    def create_consumer(
        self, *, client_id: str, group_id: str | None,
        isolation_level: IsolationLevel = "read_uncommitted",
    ) -> KafkaConsumer:
        options = dict(
            consumer_options(self._conf, client_id, self.servers),
            group_id=group_id,
            isolation_level=isolation_level,
            partition_assignment_strategy=(CopartitionedAssignor,),
        )
        consumer = KafkaConsumer(self, options, group_id=group_id)
        consumer.max_records = options["max_poll_records"]  # getmany passes it on every fetch
        return consumer

    def create_admin(self, *, client_id: str) -> KafkaAdmin:
        return KafkaAdmin(self, admin_options(self._conf, client_id, self.servers))

    async def start_client(self, make: Callable[[], Any], what: str) -> Any:
        """Build and start an aiokafka client, retrying while the broker is unreachable.

        aiokafka fails fast when no bootstrap server answers; a worker started
        before its broker (a common deploy race) should wait for it, saying so
        in the log with ever rarer lines instead of crashing or hanging mute.
        """
        delay, attempt = RETRY_FIRST, 0
        while True:
            client = make()
            watchdog = asyncio.ensure_future(_warn_while_pending(what, self.url))
            try:
                with _bootstrap_errors() as reasons:
                    await client.start()
            except KafkaConnectionError as exc:
                await _close_quietly(client)
                attempt += 1
                log.warning(
                    "%s cannot reach Kafka at %s (%s); retrying in %.1fs (attempt %d). "
                    "Is the broker running, and is the broker setting %r right?",
                    what, ";".join(self.servers), "; ".join(reasons) or exc, delay, attempt,
                    self.url,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            except BaseException:
                await _close_quietly(client)
                raise
            finally:
                watchdog.cancel()
            if attempt:
                log.warning("%s connected to Kafka at %s", what, ";".join(self.servers))
            return client


class KafkaProducer:
    """Sends records; ``send`` returns once the broker acknowledged the record."""

    def __init__(self, transport: AIOKafkaTransport, options: dict[str, Any]) -> None:
        self._transport = transport
        self._options = options
        self._producer: AIOKafkaProducer | None = None
        #: sends enqueue one at a time, in call order: records of one partition keep
        #: their order even when aiokafka's buffer is full and a send has to wait.
        self._enqueue = asyncio.Lock()

    async def start(self) -> None:
        if self._producer is None:
            self._producer = await self._transport.start_client(
                lambda: AIOKafkaProducer(**self._options), "producer"
            )

    async def stop(self) -> None:
        """Deliver what is buffered and close; within the app's stop budget (see kafka_closing)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_client("producer", producer.stop, partial(force_close_producer, producer),
                              self._transport.stop_budget())

    def _client(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise ProducerSendError("the Kafka producer is not started (call start() first)")
        return self._producer

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> RecordMetadata:
        ack = await self.enqueue(
            topic, key=key, value=value, partition=partition, timestamp=timestamp, headers=headers
        )
        return await ack

    async def enqueue(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> asyncio.Future[RecordMetadata]:
        """aiokafka's ``send``: in its buffer on return; the future of the ack (ours, converted)."""
        producer = self._client()
        stamp_ms = int(round((wall_time() if timestamp is None else timestamp) * 1000))
        try:
            async with self._enqueue:
                delivery = await producer.send(
                    topic, value=value, key=key, partition=partition,
                    timestamp_ms=stamp_ms, headers=list(headers) or None,
                )
        except KafkaError as exc:
            raise self._refused(topic, partition, exc) from exc
        ack: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()

        def settle(done: asyncio.Future[Any]) -> None:
            if ack.done():
                return
            if done.cancelled():
                ack.cancel()
            elif (exc := done.exception()) is not None:
                ack.set_exception(self._refused(topic, partition, exc) if isinstance(exc, KafkaError) else exc)
            else:
                meta = done.result()
                # CreateTime topics answer -1: the record carries the timestamp we sent.
                stored = stamp_ms if meta.timestamp in (None, -1) else meta.timestamp
                ack.set_result(RecordMetadata(meta.topic, meta.partition, meta.offset, stored / 1000.0))

        delivery.add_done_callback(settle)
        return ack

    def _refused(self, topic: str, partition: int | None, exc: BaseException) -> Exception:
        """The error a refused record raises: names where it was going and Kafka's reason."""
        where = f"{topic}[{partition}]" if partition is not None else repr(topic)
        error = ProducerSendError(f"Kafka refused a record for {where}: {type(exc).__name__}: {exc}")
        error.__cause__ = exc
        return error

    async def partitions_for(self, topic: str) -> int:
        return len(await self._client().partitions_for(topic))


class KafkaAdmin:
    """Topic administration; connects on first use."""

    #: Kafka error code of a topic that does not exist.
    UNKNOWN_TOPIC = 3

    def __init__(self, transport: AIOKafkaTransport, options: dict[str, Any]) -> None:
        self._transport = transport
        self._options = options
        self._admin: AIOKafkaAdminClient | None = None
        self._timeout = options["request_timeout_ms"] / 1000.0

    async def _client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            self._admin = await self._transport.start_client(
                lambda: AIOKafkaAdminClient(**self._options), "admin client"
            )
        return self._admin

    async def stop(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            client = getattr(admin, "_client", None)
            await stop_client("admin client", admin.close,
                              client.close if client is not None else admin.close,
                              self._transport.stop_budget())

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> bool:
        """Create ``name`` and wait until every partition has a leader; False if it existed."""
        admin = await self._client()
        topic = NewTopic(name, partitions, replication_factor, topic_configs=dict(config or {}))
        response = await admin.create_topics([topic], timeout_ms=_ms(self._timeout))
        for _, code, *rest in response.topic_errors:
            if code == TopicAlreadyExistsError.errno:
                return False
            if code != 0:
                reason = rest[0] if rest and rest[0] else for_code(code).__name__
                raise ImproperlyConfigured(
                    f"Kafka refused to create topic {name!r} (partitions={partitions}, "
                    f"replication_factor={replication_factor}, config={dict(config or {})}): "
                    f"{for_code(code).__name__}: {reason}"
                )
        await self._wait_for_leaders(name, partitions)
        return True

    async def _describe(self, name: str) -> dict[str, Any]:
        admin = await self._client()
        # A plain metadata request would auto-create the topic it asks about.
        request = MetadataRequest([name], allow_auto_topic_creation=False)
        response = await admin._send_request(request)
        (topic,) = [t for t in response.to_object()["topics"] if t["topic"] == name]
        return topic

    async def _wait_for_leaders(self, name: str, partitions: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            topic = await self._describe(name)
            parts = topic.get("partitions") or []
            if topic["error_code"] == 0 and len(parts) == partitions and all(
                p["leader"] >= 0 for p in parts
            ):
                return
            if loop.time() > deadline:
                raise KafkaConnectionError(f"topic {name!r} has no leaders after {self._timeout}s")
            await asyncio.sleep(0.05)

    async def partitions_for(self, name: str) -> int | None:
        topic = await self._describe(name)
        if topic["error_code"] == self.UNKNOWN_TOPIC:
            return None
        if topic["error_code"] != 0:
            raise for_code(topic["error_code"])(f"describing topic {name!r}")
        return len(topic["partitions"])


    async def list_topics(self) -> set[str]:
        admin = await self._client()
        return {name for name in await admin.list_topics() if not name.startswith("__")}


# -- helpers ---------------------------------------------------------------------
async def _close_quietly(client: Any) -> None:
    try:
        await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
    except Exception:  # a client that failed to start may fail to stop too
        pass


class _BootstrapErrors(logging.Filter):
    """Turns aiokafka's per-host "Unable connect" errors into reasons for our one line."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[list[str]] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not self.reasons or not message.startswith("Unable connect to"):
            return True
        for reasons in self.reasons:
            reasons.append(message.removeprefix("Unable connect to "))
        return False


_BOOTSTRAP = _BootstrapErrors()
logging.getLogger("aiokafka").addFilter(_BOOTSTRAP)


@contextlib.contextmanager
def _bootstrap_errors() -> Iterator[list[str]]:
    """While a client starts, collect (instead of logging) why hosts did not answer."""
    reasons: list[str] = []
    _BOOTSTRAP.reasons.append(reasons)
    try:
        yield reasons
    finally:
        _BOOTSTRAP.reasons.remove(reasons)


async def _warn_while_pending(what: str, url: str, first: float = 10.0) -> None:
    """Log, ever more rarely, while a client start (connect, join the group) is pending."""
    waited, step = 0.0, first
    while True:
        await asyncio.sleep(step)
        waited += step
        log.warning("%s still starting after %.0fs (connecting to %s, joining its group)",
                    what, waited, url)
        step = min(step * 2, 120.0)
