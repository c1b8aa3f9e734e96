"""Partition assignment for the consumer group, as pure functions.

Like Faust's assignor it *co-partitions*: partition ``i`` of every subscribed
topic with the same partition count goes to the same member, so a table's
changelog partition ``i`` sits on the worker that consumes source partition
``i``. Besides these *active* partitions it places ``table_standby_replicas``
*standby* copies of every changelog partition on other members, which read
the changelog in the background so that taking a partition over replays only
the tail. The group leader runs it (client side, as in Kafka), so the sim
driver and the aiokafka driver share it; ``assignor_wire`` is how the inputs
and the standbys travel in the group protocol.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ._types import TP


@dataclass(frozen=True)
class MemberPlan:
    """One member's share: partitions it processes, and changelog partitions it keeps warm."""

    active: frozenset[TP] = field(default_factory=frozenset)
    standby: frozenset[TP] = field(default_factory=frozenset)


def copartitioned_assignment(
    members: Sequence[str],
    subscriptions: Mapping[str, frozenset[str]],
    partitions: Mapping[str, int],
    *,
    owned: Mapping[str, Iterable[TP]] | None = None,
    warm: Mapping[str, Iterable[TP]] | None = None,
) -> dict[str, set[TP]]:
    """Assign every partition of every subscribed topic to one member.

    Args:
        members: member ids; their order is the tie-break, so callers pass
            them sorted for a deterministic result.
        subscriptions: the topics each member subscribes to.
        partitions: partition count of each known topic; unknown topics are
            skipped (they get assigned once they exist).
        owned: what each member processed in the previous generation.
        warm: changelog partitions each member has a current copy of (its
            standbys, and what it owned).

    Returns:
        member id -> set of TPs. Topics with the same partition count and the
        same subscribers form a *co-partition group*: index ``i`` of all of
        them goes to one member, so a table's changelog partition sits with
        the source partition that updates it. Within a group each member gets
        the floor or the ceiling of its share, and an index goes, in order of
        preference, to the member that owned it (a rebalance moves only what
        it must), to a member with a warm copy of its changelog (taking over
        replays only the tail), and otherwise to the ``i % n``-th member (so a
        fresh group's assignment is the plain round robin).
    """
    owned_sets = {m: set(tps) for m, tps in (owned or {}).items()}
    warm_sets = {m: set(tps) for m, tps in (warm or {}).items()}
    result: dict[str, set[TP]] = {m: set() for m in members}
    for topics, count, takers in _copartition_groups(members, subscriptions, partitions):
        for index, member in _assign_group(topics, count, takers, owned_sets, warm_sets).items():
            result[member].update(TP(topic, index) for topic in topics)
    return result


def _copartition_groups(
    members: Sequence[str],
    subscriptions: Mapping[str, frozenset[str]],
    partitions: Mapping[str, int],
) -> list[tuple[list[str], int, list[str]]]:
    """Topics grouped by (partition count, subscribers): ``(topics, count, takers)``."""
    groups: dict[tuple[int, tuple[str, ...]], list[str]] = {}
    for topic in sorted({t for m in members for t in subscriptions.get(m, ())}):
        count = partitions.get(topic)
        if not count:
            continue
        takers = tuple(m for m in members if topic in subscriptions.get(m, ()))
        groups.setdefault((count, takers), []).append(topic)
    return [(topics, count, list(takers)) for (count, takers), topics in groups.items()]


class _Quota:
    """Floor-or-ceiling shares: only ``count % n`` members may take one above the floor."""

    def __init__(self, count: int, takers: list[str]) -> None:
        self.base, self.extra = divmod(count, len(takers))
        self.load = dict.fromkeys(takers, 0)

    def can_take(self, member: str) -> bool:
        load = self.load[member]
        return load < self.base or (load == self.base and self.extra > 0)

    def take(self, member: str) -> None:
        if self.load[member] == self.base:
            self.extra -= 1
        self.load[member] += 1


def _assign_group(
    topics: list[str],
    count: int,
    takers: list[str],
    owned: Mapping[str, set[TP]],
    warm: Mapping[str, set[TP]],
) -> dict[int, str]:
    """index -> member for one co-partition group: sticky, then warm, then round robin."""
    quota = _Quota(count, takers)
    chosen: dict[int, str] = {}
    can_take = quota.can_take
    owners = _holders_by_index(topics, takers, owned)
    copies_of = _holders_by_index(topics, takers, warm)

    def give(index: int, member: str) -> None:
        chosen[index] = member
        quota.take(member)

    for index in range(count):
        previous = next((m for m in owners.get(index, ()) if can_take(m)), None)
        if previous is not None:
            give(index, previous)
    for index in range(count):
        if index in chosen:
            continue
        copies = [m for m in copies_of.get(index, ()) if can_take(m)]
        if copies:
            give(index, min(copies, key=lambda m: quota.load[m]))
    n = len(takers)
    position = {m: i for i, m in enumerate(takers)}
    for index in range(count):
        if index in chosen:
            continue
        preferred = takers[index % n]
        if not can_take(preferred):
            free = [m for m in takers if can_take(m)]
            preferred = min(free, key=lambda m: (quota.load[m], (position[m] - index) % n))
        give(index, preferred)
    return chosen


def _holders_by_index(
    topics: list[str], takers: list[str], held: Mapping[str, set[TP]]
) -> dict[int, list[str]]:
    """index -> the takers (in their order) holding a partition of that index in ``topics``.

    One pass over what each member holds, instead of one look at every member
    per index: a rebalance of many members over many partitions stays linear.
    """
    wanted = set(topics)
    found: dict[int, list[str]] = {}
    for member in takers:
        tps = held.get(member)
        if not tps:
            continue
        for index in {tp.partition for tp in tps if tp.topic in wanted}:
            found.setdefault(index, []).append(member)
    return found


def standby_assignment(
    members: Sequence[str],
    active: Mapping[str, set[TP]],
    subscriptions: Mapping[str, frozenset[str]],
    changelogs: Iterable[str],
    replicas: int,
    held: Mapping[str, set[TP]] | None = None,
) -> dict[str, set[TP]]:
    """Place ``replicas`` standby copies of each active changelog partition.

    A standby goes to a member subscribed to the changelog other than the
    partition's active owner (a copy on the same worker protects nothing), at
    most once per member, so a partition gets ``min(replicas, eligible)``
    copies and none with a single worker. Members that ``held`` the partition
    in the previous generation (active or standby: their store has the data)
    are chosen first, so a stable group keeps its standbys. The rest go to
    the least loaded member, ties broken by the distance from the owner in
    ``members`` order, which spreads the copies of one owner's partitions
    around the group. Last, standbys move from a member to one with two fewer
    while one can, so the counts are balanced as far as the exclusions allow.
    """
    held = held or {}
    changelogs = set(changelogs)
    result: dict[str, set[TP]] = {m: set() for m in members}
    if replicas <= 0 or not changelogs:
        return result  # no copies wanted: nothing to place (or to balance)
    owners = {tp: m for m in members for tp in active.get(m, ()) if tp.topic in changelogs}
    subscribers = {
        topic: [m for m in members if topic in subscriptions.get(m, ())]
        for topic in sorted({tp.topic for tp in owners})
    }
    eligible = {
        tp: [m for m in subscribers[tp.topic] if m != owner]
        for tp, owner in sorted(owners.items())
    }
    need = {tp: min(replicas, len(candidates)) for tp, candidates in eligible.items()}
    _place_held(result, eligible, need, held)
    _fill(result, eligible, need, owners, list(members))
    _rebalance(result, eligible, held)
    return result


def _load(result: Mapping[str, set[TP]], member: str) -> int:
    return len(result[member])


def _place_held(
    result: dict[str, set[TP]],
    eligible: Mapping[TP, list[str]],
    need: dict[TP, int],
    held: Mapping[str, set[TP]],
) -> None:
    """Sticky first: a member whose store has the partition keeps a copy of it."""
    held_by: dict[TP, set[str]] = {}
    for member, tps in held.items():
        for tp in tps:
            held_by.setdefault(tp, set()).add(member)
    for tp, candidates in eligible.items():
        holding = held_by.get(tp)
        if not holding or not need[tp]:
            continue
        holders = [m for m in candidates if m in holding]
        holders.sort(key=lambda m: _load(result, m))  # stable: member order breaks ties
        for member in holders[: need[tp]]:
            result[member].add(tp)
            need[tp] -= 1


def _fill(
    result: dict[str, set[TP]],
    eligible: Mapping[TP, list[str]],
    need: dict[TP, int],
    owners: Mapping[TP, str],
    members: list[str],
) -> None:
    """The remaining copies go to the least loaded eligible members.

    Ties go round the group starting after the owner, one step further for
    each of the owner's partitions: the copies of one worker's partitions land
    on different workers, so when it fails its partitions can be promoted on
    several survivors without unbalancing the group.
    """
    position = {m: i for i, m in enumerate(members)}
    by_owner: dict[str, list[TP]] = {}
    for tp, owner in owners.items():
        by_owner.setdefault(owner, []).append(tp)
    rank: dict[TP, int] = {}
    for owner in members:
        mine = sorted(by_owner.get(owner, ()))
        rank.update((tp, i) for i, tp in enumerate(mine))
    n = len(members)
    for tp, candidates in eligible.items():
        wanted = need[tp]
        if not wanted:
            continue
        start = position[owners[tp]] + 1 + rank[tp]

        def key(m: str, start: int = start) -> tuple[int, int]:
            return (_load(result, m), (position[m] - start) % n)

        free = [m for m in candidates if tp not in result[m]]
        if wanted == 1:  # the commonest case: the best one, without sorting them all
            if free:
                result[min(free, key=key)].add(tp)
        else:
            free.sort(key=key)
            for member in free[:wanted]:
                result[member].add(tp)
        need[tp] = 0


def _rebalance(
    result: dict[str, set[TP]], eligible: Mapping[TP, list[str]], held: Mapping[str, set[TP]]
) -> None:
    """Move single standbys from loaded to less loaded members while that evens counts.

    Each move lowers the sum of squared loads, so this ends; at the end no
    standby can move to a member holding two fewer.
    """
    while (move := _find_move(result, eligible, held)) is not None:
        tp, giver, taker = move
        result[giver].discard(tp)
        result[taker].add(tp)


def _find_move(
    result: Mapping[str, set[TP]], eligible: Mapping[TP, list[str]], held: Mapping[str, set[TP]]
) -> tuple[TP, str, str] | None:
    by_load = sorted(result, key=lambda m: -_load(result, m))
    for giver in by_load:
        for taker in reversed(by_load):
            if _load(result, giver) - _load(result, taker) < 2:
                break
            # move what the taker held first, and what the giver did not hold last
            movable = [
                tp for tp in sorted(result[giver])
                if taker in eligible[tp] and tp not in result[taker]
            ]
            movable.sort(key=lambda tp: (tp not in held.get(taker, ()), tp in held.get(giver, ())))
            if movable:
                return movable[0], giver, taker
    return None


def plan_group(
    members: Sequence[str],
    subscriptions: Mapping[str, frozenset[str]],
    partitions: Mapping[str, int],
    *,
    changelogs: Iterable[str] = (),
    replicas: int = 0,
    held: Mapping[str, set[TP]] | None = None,
    owned: Mapping[str, set[TP]] | None = None,
) -> dict[str, MemberPlan]:
    """The whole assignment the group leader hands out: actives, then standbys.

    ``owned`` (last generation's active partitions) keeps partitions where they
    are; ``held`` (changelog partitions with a current copy) steers a moving
    partition to a worker that can take it over without a full replay.
    """
    members = sorted(members)
    active = copartitioned_assignment(members, subscriptions, partitions, owned=owned, warm=held)
    standby = standby_assignment(members, active, subscriptions, changelogs, replicas, held)
    return {m: MemberPlan(frozenset(active[m]), frozenset(standby[m])) for m in members}
