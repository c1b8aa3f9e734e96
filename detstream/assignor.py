"""Partition assignment for the consumer group, as a pure function.

Like Faust's assignor it *co-partitions*: partition ``i`` of every subscribed
topic with the same partition count goes to the same member, so a table's
changelog partition ``i`` sits on the worker that consumes source partition
``i``. The group leader runs it (client side, as in Kafka), so the sim driver
and the aiokafka driver share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ._types import TP


def copartitioned_assignment(
    members: Sequence[str],
    subscriptions: Mapping[str, frozenset[str]],
    partitions: Mapping[str, int],
) -> dict[str, set[TP]]:
    """Assign every partition of every subscribed topic to one member.

    Args:
        members: member ids; their order is the tie-break, so callers pass
            them sorted for a deterministic result.
        subscriptions: the topics each member subscribes to.
        partitions: partition count of each known topic; unknown topics are
            skipped (they get assigned once they exist).

    Returns:
        member id -> set of TPs. Partition index ``i`` of a topic goes to the
        ``i % n``-th member among those subscribed to it, so topics with equal
        partition counts and equal subscribers are co-located index by index.
    """
    result: dict[str, set[TP]] = {m: set() for m in members}
    topics = sorted({t for m in members for t in subscriptions.get(m, ())})
    for topic in topics:
        count = partitions.get(topic)
        if not count:
            continue
        takers = [m for m in members if topic in subscriptions.get(m, ())]
        for index in range(count):
            result[takers[index % len(takers)]].add(TP(topic, index))
    return result
