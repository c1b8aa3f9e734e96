"""Agent RPC reply consumer: reads the app's reply topics and fulfils promises.

The reply consumer is not a member of the app's consumer group: it assigns
the partitions of its reply topics by hand, starting at their end, so it
needs no rebalance and works in client-only mode (``app.start_client()``:
producer and replies, no group, no agents), e.g. from a script. It is made
and started on the first ask (or with the app when ``reply_create_topic`` is
set), after creating the reply topic, and before the first request is sent,
so no reply can be missed. See :mod:`detstream.rpc.agent_rpc`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mode import Service

from detstream._types import TP

from .promises import ReplyPromise, _few
from .wire import decode_reply

if TYPE_CHECKING:
    from detstream.app import App
    from detstream.transport.base import PartitionReader

__all__ = ["ReplyConsumer", "maybe_start_replies", "replies_for"]


#: the longest wait before reading replies again after failed reads (seconds).
REREAD_BACKOFF_MAX = 10.0


class ReplyConsumer(Service):
    """Reads the app's reply topics (manually assigned) and fulfils waiting promises."""

    #: seconds one fetch waits for replies before asking again.
    poll_timeout = 1.0

    def __init__(self, app: App) -> None:
        self.app = app
        self._waiting: dict[str, list[ReplyPromise]] = {}
        self._topics: set[str] = set()
        #: next offset to read per partition (kept across re-assignments).
        self._positions: dict[TP, int] = {}
        self._consumer: PartitionReader | None = None
        self._lock = asyncio.Lock()
        self._assigned = asyncio.Event()
        self._drainer: asyncio.Future[None] | None = None
        self._failed: BaseException | None = None
        super().__init__()

    @property
    def label(self) -> str:
        return f"ReplyConsumer({self.app.conf.id})"

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(self._topics)

    # -- lifecycle ------------------------------------------------------------------
    async def on_start(self) -> None:
        app = self.app
        self._consumer = app.transport.create_consumer(
            client_id=f"{app.client_name}-replies", group_id=None,
            isolation_level="read_committed" if app.exactly_once else "read_uncommitted",
        )
        await self._consumer.start()
        self._drainer = asyncio.ensure_future(self._drain())

    def _reader(self) -> PartitionReader:
        assert self._consumer is not None, "the reply reader is made when the service starts"
        return self._consumer

    async def on_stop(self) -> None:
        drainer, self._drainer = self._drainer, None
        if drainer is not None:
            drainer.cancel()
            try:
                await drainer
            except asyncio.CancelledError:
                pass
        self._failed = RuntimeError(f"app {self.app.conf.id!r} is stopped")
        self._fail_all(lambda p: RuntimeError(
            f"app {self.app.conf.id!r} stopped before the reply to "
            f"{_few(p.correlation_ids)} arrived on {p.reply_to!r}"
        ))
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    def _fail_all(self, error: Any) -> None:
        waiting, self._waiting = self._waiting, {}
        for promise in {id(p): p for ps in waiting.values() for p in ps}.values():
            promise.fail(error(promise))

    async def ensure_topic(self, name: str) -> None:
        """Create reply topic ``name`` if needed and read it from its current end."""
        if name in self._topics:
            return
        async with self._lock:
            if name in self._topics:
                return
            app = self.app
            if app._producer is None:
                await app.start_client()
            if not self.started:
                app.add_dependency(self)  # stopped with the app
                await self.maybe_start()
            partitions = await self._declare(name)
            new = [TP(name, p) for p in range(partitions)]
            consumer = self._reader()
            consumer.assign(sorted({*self._positions, *new}))
            self._positions.update(await consumer.end_offsets(new))
            for tp, offset in sorted(self._positions.items()):
                consumer.seek(tp, offset)  # assign() may have reset the known ones
            self._topics.add(name)
            self._assigned.set()
            app.tracer.record("reply-topic", topic=name, partitions=partitions)

    async def _declare(self, name: str) -> int:
        conf = self.app.conf
        expires = conf.reply_expires
        seconds = expires.total_seconds() if isinstance(expires, timedelta) else float(expires)
        admin = self.app.admin
        await admin.create_topic(
            name, partitions=1, replication_factor=conf.topic_replication_factor,
            config={"cleanup.policy": "delete", "retention.ms": str(int(seconds * 1000))},
        )
        return await admin.partitions_for(name) or 1

    # -- waiting --------------------------------------------------------------------------
    def add(self, promise: ReplyPromise, correlation_id: str | None = None) -> None:
        """Fulfil ``promise`` with the reply to ``correlation_id`` (default: the promise's)."""
        if self._failed is not None:
            raise RuntimeError(f"no reply can arrive: the reply consumer of app "
                               f"{self.app.conf.id!r} is down ({self._failed})")
        cid = correlation_id or promise.correlation_id
        self._waiting.setdefault(cid, []).append(promise)

    def discard(self, promise: ReplyPromise, correlation_ids: Iterable[str]) -> None:
        for cid in correlation_ids:
            promises = self._waiting.get(cid)
            if promises and promise in promises:
                promises.remove(promise)
                if not promises:
                    del self._waiting[cid]

    @property
    def waiting(self) -> int:
        """Requests whose replies are awaited."""
        return len(self._waiting)

    # -- reading ------------------------------------------------------------------------
    async def _drain(self) -> None:
        """Read replies until stopped; a failed read is tried again after a backoff.

        An error of the fetch (an ACL being changed refuses the reply topic,
        a broker gone) must not end the reading for good: every later ask of
        the process would fail, and a web process has no restart to heal it.
        The position is kept, so no reply is missed; a reply that does not
        come in time fails its ask by the ask's own timeout.
        """
        await self._assigned.wait()
        failures = 0
        while True:
            try:
                batch = await self._reader().getmany(self.poll_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any fetch error: read again later
                failures += 1
                delay = min(2.0 ** (failures - 1), REREAD_BACKOFF_MAX)
                self.app.tracer.record("reply-read-failed", error=type(exc).__name__)
                if failures & (failures - 1) == 0:  # the 1st, 2nd, 4th, 8th... in a row
                    self.log.warning("reading replies failed (%r); reading again in %gs (%d in a row)",
                                     exc, delay, failures)
                await asyncio.sleep(delay)
                continue
            failures = 0
            for tp in sorted(batch):
                for record in batch[tp]:
                    self._positions[tp] = max(self._positions.get(tp, 0), record.offset + 1)
                    self._on_reply(record.topic, record.offset, record.value)

    def _on_reply(self, topic: str, offset: int, value: bytes | None) -> None:
        try:
            cid, reply = decode_reply(value)
        except ValueError as exc:
            self.log.warning("skipping unreadable reply at %s@%d: %s", topic, offset, exc)
            return
        promises = self._waiting.pop(cid, None)
        if not promises:
            return  # not ours any more (timed out), or a second yield for one request
        self.app.tracer.record("reply", correlation_id=cid)
        for promise in promises:
            promise.fulfill(cid, reply)


async def replies_for(app: App, reply_to: str) -> ReplyConsumer:
    """The app's reply consumer, started (with the app as a client if need be), reading ``reply_to``."""
    consumer: ReplyConsumer | None = getattr(app, "_reply_consumer", None)
    if consumer is None:
        consumer = ReplyConsumer(app)
        app._reply_consumer = consumer  # type: ignore[attr-defined]
    await consumer.ensure_topic(reply_to)
    return consumer


async def maybe_start_replies(app: App) -> None:
    """``reply_create_topic=True``: create the reply topic and read it as the app starts."""
    if app.conf.reply_create_topic:
        await replies_for(app, app.conf.reply_to)

