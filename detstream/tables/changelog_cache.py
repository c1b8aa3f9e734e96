"""A table's changelog write cache: one changelog record per dirty key per commit.

A table write updates the store at once (reads see it) and marks its key
dirty here; the changelog record is sent when the conductor commits (inside
the transaction under exactly-once), or sooner once the table holds
``table_changelog_cache_size`` dirty keys (default 10,000; 0 sends every
write at once), except while the worker's membership is in doubt (see
``PlainCommitter``), when nothing is sent before the commit that ends the
doubt. A counter updated a thousand times between two commits costs one
changelog record, not a thousand: what Kafka Streams' record cache does for
its state stores.

Nothing is weakened by the wait. An offset is committed only after the
records of the events it covers are on the broker, and those include the
changelog records flushed at the start of that commit. A crash before the
flush loses the writes and the uncommitted offsets together, so the events
are redone, as when a crash loses records still in the producer's buffer.

Two promises of an immediate send are kept:

- the store still gets, at write time, a future of the changelog record
  that will mirror the write (``durable``): a persistent store writes to
  disk only what the changelog holds, so the future resolves only when the
  flushed record is acknowledged (under exactly-once: when its transaction
  commits), and fails if it never is;
- a refused changelog record still fails the event that wrote it: each
  dirty key remembers the event and agent of its last write, and the flush
  sends under them, so the producer attributes the send as if the event had
  made it (no commit past that event; the simulator's write history names it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from detstream._types import RecordMetadata
from detstream.events import (
    Event,
    current_agent,
    current_event,
    reset_current_agent,
    reset_current_event,
    set_current_agent,
    set_current_event,
)
from detstream.futures import complete_as

#: sends one changelog record: (key bytes, value bytes or None for a tombstone, partition).
SendRecord = Callable[[bytes | None, bytes | None, int], "asyncio.Future[RecordMetadata]"]
#: how the records of one flush are sent: asked once per flush, so that a choice (does
#: anyone listen to ``on_produce_message``?) costs one call per batch, none per record.
SenderOfFlush = Callable[[], SendRecord]
#: the future of a sent record that is done once it can never be undone (ProducerBuffer.durable).
Durable = Callable[["asyncio.Future[RecordMetadata]"], "asyncio.Future[RecordMetadata]"]


class _Dirty:
    """The latest write of one key since the last flush, and who made it."""

    __slots__ = ("value", "durable", "event", "agent")

    def __init__(self, value: bytes | None, event: Event | None, agent: Any) -> None:
        self.value = value
        self.event = event
        self.agent = agent
        self.durable: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        # Marked seen for a store that never looks at it (the built-in ones do: the memory
        # store notes the offset); a failure is the failed commit's, which reports it.
        self.durable.add_done_callback(_retrieved)


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark a failed future's error as seen (no "Future exception was never retrieved")."""
    if not future.cancelled():
        future.exception()


class ChangelogCache:
    """Dirty keys of one table, per partition, waiting for the next flush."""

    def __init__(
        self, sender: SenderOfFlush, durable: Durable, limit: int,
        held: Callable[[], bool] = lambda: False,
    ) -> None:
        self._sender = sender
        self._durable = durable
        self.limit = limit
        #: True while no write may flush early: the worker's membership is in doubt, and its
        #: commits, which flush, wait too (``PlainCommitter``). The cache grows past its limit.
        self._held = held
        #: (partition, key bytes) -> latest write; insertion order is flush order.
        self._dirty: dict[tuple[int, bytes | None], _Dirty] = {}

    @property
    def limit(self) -> int:
        """Dirty keys at which a write flushes (0: every write flushes at once)."""
        return self._limit

    @limit.setter
    def limit(self, limit: int) -> None:
        self._limit = limit
        #: the dirty keys a write flushes at: ``max(limit, 1)``, once, not per write.
        self._flush_at = max(limit, 1)

    def __len__(self) -> int:
        return len(self._dirty)

    def write(
        self, partition: int, key: bytes | None, value: bytes | None
    ) -> asyncio.Future[RecordMetadata]:
        """Mark ``key`` dirty with ``value`` (None: deleted); the future the store waits on.

        Writes of one key before a flush share that future: the one record
        the flush sends mirrors all of them. The write is the current event's
        and agent's.
        """
        return self.write_by(partition, key, value, current_event(), current_agent())

    def write_by(
        self, partition: int, key: bytes | None, value: bytes | None, event: Event | None,
        agent: Any,
    ) -> asyncio.Future[RecordMetadata]:
        """``write``, by ``event`` and ``agent``: a table's write, which has read them
        already, passes them (not read again per write)."""
        dirty = self._dirty
        entry = dirty.get((partition, key))
        if entry is None:
            entry = dirty[(partition, key)] = _Dirty(value, event, agent)
        else:
            entry.value, entry.event, entry.agent = value, event, agent
        if len(dirty) >= self._flush_at and not self._held():
            self.flush()
        return entry.durable

    def flush(self) -> int:
        """Send one record per dirty key, each under the event that last wrote it; how many."""
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return 0
        send = self._sender()
        for (partition, key), entry in dirty.items():
            event_token = set_current_event(entry.event)
            agent_token = set_current_agent(entry.agent)
            try:
                sent = send(key, entry.value, partition)
                complete_as(self._durable(sent), entry.durable)
            finally:
                reset_current_event(event_token)
                reset_current_agent(agent_token)
        return len(dirty)

    def drop(self, partitions: Iterable[int], reason: BaseException) -> None:
        """Forget the dirty keys of ``partitions`` (given up): their stores' futures fail."""
        gone = set(partitions)
        for where in [where for where in self._dirty if where[0] in gone]:
            future = self._dirty.pop(where).durable
            if not future.done():
                future.set_exception(reason)

