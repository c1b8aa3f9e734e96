"""The simulated cluster's log cleaner: compaction and retention in virtual time.

Every ``ClusterConfig.log_cleaner_interval`` virtual seconds the cleaner
passes over every partition, as Kafka's log cleaner and retention do:

- ``cleanup.policy`` containing ``compact``: below the *dirty boundary* it
  keeps only the latest record per key, drops records of aborted
  transactions, and drops tombstones (``value=None``) older than
  ``delete.retention.ms``. The boundary is the oldest of: the last stable
  offset (records of open transactions are never touched), the active tail
  (the last ``log_cleaner_active_records`` offsets, Kafka's active segment)
  and the first record younger than ``min.compaction.lag.ms``. Transaction
  markers stay. A removed record leaves a hole at its offset: offsets never
  change, consumers skip the gap.
- ``cleanup.policy`` containing ``delete`` with ``retention.ms`` (or
  ``retention.ms`` with no policy, Kafka's default ``delete``): records older
  than the retention are deleted from the head, and the log start offset
  (``beginning_offset``) moves forward. Never past the last stable offset or
  into the active tail.

Ages are measured from record timestamps against the (virtual) wall clock.
Trace lines, actor ``cleaner``: ``compact tp= removed= tombstones=`` and
``retention tp= removed= start=``, only for passes that removed something.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from detstream._types import TP, ConsumerRecord
from detstream.clock import wall_time

if TYPE_CHECKING:
    from .cluster import PartitionLog, SimCluster


def cleanup_policies(config: Mapping[str, str]) -> set[str]:
    """The policies of a topic config; ``delete`` is Kafka's default."""
    raw = config.get("cleanup.policy", "delete")
    return {p.strip() for p in str(raw).split(",") if p.strip()}


def _seconds(config: Mapping[str, str], name: str) -> float | None:
    raw = config.get(name)
    if raw is None or raw == "":
        return None
    value = float(raw)
    return None if value < 0 else value / 1000.0


def _limit(log: PartitionLog, active_records: int) -> int:
    """The first offset the cleaner may not touch: the active tail or an open transaction."""
    return max(log.start_offset, min(log.last_stable_offset, log.end_offset - active_records))


def compact(
    log: PartitionLog, *, now: float, active_records: int = 0, min_lag: float = 0.0,
    delete_retention: float = 86400.0,
) -> tuple[int, int]:
    """Compact ``log`` in place; returns (records removed, of which tombstones)."""
    boundary = _limit(log, active_records)
    latest: dict[bytes, int] = {}
    for offset in range(log.start_offset, boundary):
        entry = log.records[offset]
        if not isinstance(entry, ConsumerRecord) or offset in log.aborted:
            continue
        if entry.timestamp > now - min_lag:
            boundary = offset  # too young: this record and everything after it stay dirty
            break
        if entry.key is not None:
            latest[entry.key] = offset
    removed = tombstones = 0
    for offset in range(log.start_offset, boundary):
        entry = log.records[offset]
        if not isinstance(entry, ConsumerRecord):
            continue  # a hole already, or a transaction marker (kept)
        if offset in log.aborted:
            drop = True
        elif entry.key is None:
            drop = False
        elif latest[entry.key] != offset:
            drop = True
        else:
            drop = entry.value is None and entry.timestamp <= now - delete_retention
            tombstones += drop
        if drop:
            log.records[offset] = None
            removed += 1
    if removed:
        log.cleaned = True
    return removed, tombstones


def expire(log: PartitionLog, *, now: float, retention: float, active_records: int = 0) -> int:
    """Delete records older than ``retention`` from the head; returns how many."""
    limit = _limit(log, active_records)
    start = log.start_offset
    removed = 0
    while start < limit:
        entry = log.records[start]
        if isinstance(entry, ConsumerRecord):
            if entry.timestamp > now - retention:
                break
            removed += 1
        log.records[start] = None
        start += 1
    if start != log.start_offset:
        log.start_offset = start
        log.cleaned = True
    return removed


class LogCleaner:
    """Cleans every partition of one cluster, periodically once started."""

    def __init__(self, cluster: SimCluster) -> None:
        self.cluster = cluster
        self._timer: asyncio.TimerHandle | None = None
        self.passes = 0

    def start(self, interval: float | None = None) -> None:
        """Run a pass every ``interval`` virtual seconds (default: the cluster's config)."""
        interval = interval if interval is not None else self.cluster.config.log_cleaner_interval
        self.stop()
        if interval:
            self._schedule(interval)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self, interval: float) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(interval, self._tick, interval)

    def _tick(self, interval: float) -> None:
        self.clean()
        self._schedule(interval)

    def clean(self, now: float | None = None) -> dict[str, Any]:
        """One pass over every topic; returns totals (records compacted and expired)."""
        now = wall_time() if now is None else now
        config = self.cluster.config
        self.passes += 1
        totals = {"compacted": 0, "tombstones": 0, "expired": 0}
        for name in sorted(self.cluster.topics):
            topic = self.cluster.topics[name]
            policies = cleanup_policies(topic.config)
            retention = _seconds(topic.config, "retention.ms")
            lag = _seconds(topic.config, "min.compaction.lag.ms") or 0.0
            tombstone_life = _seconds(topic.config, "delete.retention.ms")
            if tombstone_life is None:
                tombstone_life = config.delete_retention
            for partition, log in enumerate(topic.logs):
                tp = TP(name, partition)
                if "delete" in policies and retention is not None:
                    expired = expire(
                        log, now=now, retention=retention,
                        active_records=config.log_cleaner_active_records,
                    )
                    if expired:
                        totals["expired"] += expired
                        self.cluster.trace.record(
                            "cleaner", "retention", tp=tp, removed=expired, start=log.start_offset
                        )
                if "compact" in policies:
                    removed, tombstones = compact(
                        log, now=now, active_records=config.log_cleaner_active_records,
                        min_lag=lag, delete_retention=tombstone_life,
                    )
                    if removed:
                        totals["compacted"] += removed
                        totals["tombstones"] += tombstones
                        self.cluster.trace.record(
                            "cleaner", "compact", tp=tp, removed=removed, tombstones=tombstones
                        )
        return totals
