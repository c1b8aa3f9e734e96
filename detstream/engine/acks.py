"""Which offset may be committed: the end of the contiguous acked prefix.

Messages of a partition are acked out of order (several agents, concurrency);
committing past an un-acked message would lose it on a crash. So the tracker
keeps delivered offsets in delivery order and only moves the commit point over
acked ones. Offsets skipped by the log (compaction, transaction markers) are
never delivered and so never block the commit point.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from detstream._types import TP
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant

#: an ack out of order moves the commit point over the earlier messages still in flight.
COMMIT_PAST_UNACKED = register_mutant(
    "commit-past-unacked",
    "an out-of-order ack moves the commit point past earlier messages that are not acked yet",
)


class OffsetTracker:
    """Per-partition delivered/acked bookkeeping; no I/O, no event loop."""

    def __init__(self) -> None:
        self._pending: dict[TP, deque[int]] = {}
        self._acked: dict[TP, set[int]] = {}
        self._committable: dict[TP, int] = {}
        self._committed: dict[TP, int] = {}

    def delivered(self, tp: TP, offset: int) -> None:
        self.delivered_batch(tp, (offset,))

    def delivered_batch(self, tp: TP, offsets: Iterable[int]) -> None:
        """Offsets of ``tp`` handed to streams, in fetch order (a fetched batch at once)."""
        pending = self._pending.get(tp)
        if pending is None:
            pending = self._pending[tp] = deque()
        pending.extend(offsets)

    def acked(self, tp: TP, offset: int) -> None:
        """``offset`` of ``tp`` was acked: the commit point moves over the acked prefix.

        ``PartitionLease.done`` repeats the in-order case (no out-of-order acks
        remembered) inline, once per event: a change here goes there too.
        """
        pending = self._pending.get(tp)
        if pending and pending[0] == offset:  # in order, the common case: nothing to remember
            pending.popleft()
            committable = offset + 1
            # (``_acked`` holds only partitions with offsets acked out of order: no lookup
            # per ack while there are none)
            acked = self._acked.get(tp) if self._acked else None
            if acked:  # later offsets acked before this one may follow it now
                while pending and pending[0] in acked:
                    done = pending.popleft()
                    acked.discard(done)
                    committable = done + 1
                if not acked:
                    del self._acked[tp]
            self._committable[tp] = committable
            return
        self._acked.setdefault(tp, set()).add(offset)
        if mutant_on(COMMIT_PAST_UNACKED) and offset + 1 > self._committable.get(tp, -1):
            self._committable[tp] = offset + 1

    def in_flight(self, tp: TP) -> int:
        """Delivered but not yet acked messages of ``tp``."""
        return len(self._pending.get(tp, ()))

    def advance(self, tp: TP, position: int) -> None:
        """Nothing of ``tp`` is in flight and the consumer is at ``position``: commit up to it.

        The position may be past the last acked record when transaction
        markers (or aborted records) follow it; committing ``last + 1``
        would leave a lag of one forever on a transactional input.
        """
        if self._pending.get(tp):
            raise ValueError(f"{tp} has records in flight: its position is not done")
        if position > self._committable.get(tp, -1):
            self._committable[tp] = position

    def to_commit(self) -> dict[TP, int]:
        """Offsets that moved since the last ``committed`` call."""
        return {
            tp: offset
            for tp, offset in sorted(self._committable.items())
            if self._committed.get(tp) != offset
        }

    def committed_offsets(self) -> dict[TP, int]:
        """The offsets this worker last committed, per partition it still holds."""
        return dict(self._committed)

    def committed(self, offsets: dict[TP, int]) -> None:
        self._committed.update(offsets)

    def forget(self, tps: set[TP]) -> None:
        """Drop state of revoked partitions (their new owner resumes from the commit)."""
        for tp in tps:
            self._pending.pop(tp, None)
            self._acked.pop(tp, None)
            self._committable.pop(tp, None)
            self._committed.pop(tp, None)
