"""The broker side of Kafka's idempotent producer: per-partition producer state.

An idempotent producer has a producer id and an epoch, and numbers the
records it sends to each partition: a batch carries the sequence number of
its first record. The partition leader remembers, per producer id, the epoch,
the last sequence number appended and the last ``MAX_CACHED_BATCHES`` batches
(Kafka's ``max.in.flight.requests.per.connection`` bound). So:

- a batch it has appended already (a retry after a lost response) is not
  appended again: the broker answers with the offsets of the original;
- a batch that does not follow the last sequence number (a gap: something
  was lost in between) is refused with ``OutOfOrderSequenceError``;
- a batch from an older epoch is refused with ``InvalidProducerEpochError``;
  a newer epoch starts its sequence at 0.

The state lives with the partition log: in Kafka it is rebuilt from the log
by a new leader, so it survives a failover as the records do.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from detstream import mutants

from .kafka_errors import InvalidProducerEpochError, OutOfOrderSequenceError

#: batches per producer id whose offsets a partition remembers for deduplication.
MAX_CACHED_BATCHES = 5


class BatchId(NamedTuple):
    """What an idempotent producer's batch carries: who sent it and its first sequence number."""

    producer_id: int
    epoch: int
    sequence: int


@dataclass
class _Batch:
    first: int
    last: int
    offsets: tuple[int, ...]


@dataclass
class ProducerEntry:
    """One producer id's state in one partition."""

    epoch: int
    last_sequence: int = -1
    batches: deque[_Batch] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))


#: the leader appends a retried batch again instead of answering with its first offsets.
RETRY_APPENDED_TWICE = mutants.register(
    "retry-appended-twice",
    "the partition leader appends an idempotent producer's retried batch a second time",
)


def duplicate_of(
    producers: dict[int, ProducerEntry], batch: BatchId, count: int
) -> tuple[int, ...] | None:
    """The offsets of the batch already appended that ``batch`` repeats, or None if it is new.

    Raises when the batch may not be appended at all (older epoch, or a gap
    in the sequence numbers).
    """
    entry = producers.get(batch.producer_id)
    if entry is None or batch.epoch > entry.epoch:
        if batch.sequence != 0:
            raise OutOfOrderSequenceError(
                f"producer {batch.producer_id} epoch {batch.epoch}: first batch has "
                f"sequence {batch.sequence}, expected 0"
            )
        return None
    if batch.epoch < entry.epoch:
        raise InvalidProducerEpochError(
            f"producer {batch.producer_id}: epoch {batch.epoch} is older than {entry.epoch}"
        )
    last = batch.sequence + count - 1
    for cached in entry.batches:
        if cached.first == batch.sequence and cached.last == last:
            if mutants.ACTIVE and mutants.on(RETRY_APPENDED_TWICE):
                return None
            return cached.offsets
    if batch.sequence != entry.last_sequence + 1:
        raise OutOfOrderSequenceError(
            f"producer {batch.producer_id}: batch sequence {batch.sequence}, expected "
            f"{entry.last_sequence + 1}"
        )
    return None


def remember(producers: dict[int, ProducerEntry], batch: BatchId, offsets: tuple[int, ...]) -> None:
    """Record an appended batch (after ``duplicate_of`` said it is new)."""
    entry = producers.get(batch.producer_id)
    if entry is None or batch.epoch > entry.epoch:
        entry = producers[batch.producer_id] = ProducerEntry(batch.epoch)
    entry.last_sequence = batch.sequence + len(offsets) - 1
    entry.batches.append(_Batch(batch.sequence, entry.last_sequence, offsets))
