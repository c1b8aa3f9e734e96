"""Where a local table partition resumes reading its changelog.

Shared by active recovery (``recovery``) and standby replicas (``standby``):
both hold a local copy of a changelog partition that ends at some offset,
and both must decide whether that copy can be continued or must be rebuilt.
"""

from __future__ import annotations


def recovery_start(stored: int | None, begin: int, end: int) -> tuple[int, bool]:
    """Where to start reading a changelog partition, and whether to wipe local data first.

    ``stored`` is the offset of the last record the store holds, so reading
    resumes at ``stored + 1``. A stored offset the changelog cannot have had
    (``stored + 1`` past ``end``, or before ``begin``) means the local data is
    not from this changelog: the topic was deleted and recreated, or records
    were removed under it. Waiting for that offset would hang (Faust pain
    point #6); keeping the data would mix two histories. So, as Kafka Streams
    does on an out-of-range changelog, wipe and rebuild from ``begin``.
    """
    if stored is None:
        return begin, False
    if not begin <= stored + 1 <= end:
        return begin, True
    return stored + 1, False
