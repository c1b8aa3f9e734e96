"""What members tell the group leader, and what it tells them back, as ``user_data`` bytes.

Kafka's consumer protocol carries an opaque ``user_data`` in each member's
subscription (JoinGroup) and in each member's assignment (SyncGroup); custom
assignors put their extra inputs and outputs there. detstream uses it for
standby replicas:

- subscription: which subscribed topics are table changelogs, how many
  standby copies the member's app wants, which changelog partitions the
  member held in the previous generation (active or standby), so that the
  leader can keep standbys where the data already is, and which partitions it
  owned (processed), so that a rebalance moves only what it must;
- assignment: the member's standby changelog partitions. They are *not* in
  the assignment's partition list (the group consumer does not fetch them; a
  separate reader does), so the broker and other clients see a normal
  assignment.

It also carries where each partition is processed, for ``app.router`` (the
web views of ``app.table_route``): a member tells the leader its web URL
(``canonical_url``) in its subscription, and the leader tells every member
the URL of each member's active partitions (``routes``), as Faust's assignor
does.

JSON, versioned, with empty bytes meaning "nothing to say" (a plain member,
or one from before standbys): such members get no standbys.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._types import TP
from .assignor import MemberPlan, plan_group

VERSION = 1


@dataclass(frozen=True)
class SubscriptionInfo:
    """A member's assignor inputs beyond its topic list."""

    changelogs: frozenset[str] = field(default_factory=frozenset)
    replicas: int = 0
    held: frozenset[TP] = field(default_factory=frozenset)
    #: what the member processed in the previous generation (kept where possible).
    owned: frozenset[TP] = field(default_factory=frozenset)
    #: the member's web URL (``canonical_url``), or None: what ``app.router`` sends requests to.
    url: str | None = None


def plan_from_subscriptions(
    subscriptions: Mapping[str, frozenset[str]],
    user_data: Mapping[str, bytes],
    partitions: Mapping[str, int],
) -> dict[str, MemberPlan]:
    """The leader's plan from what each member sent: topics, and its ``user_data``.

    The changelog topics are the union of what members declared; the number
    of standby copies is the largest any member asks for (members of one app
    share their settings, so they normally agree).
    """
    infos = {m: decode_subscription(user_data.get(m)) for m in subscriptions}
    return plan_group(
        sorted(subscriptions), subscriptions, partitions,
        changelogs=set().union(*(i.changelogs for i in infos.values())),
        replicas=max((i.replicas for i in infos.values()), default=0),
        held={m: set(i.held) for m, i in infos.items()},
        owned={m: set(i.owned) for m, i in infos.items()},
    )


def plan_observed(
    listener: Any,
    assignor: Any,
    subscriptions: Mapping[str, frozenset[str]],
    user_data: Mapping[str, bytes],
    partitions: Mapping[str, int],
) -> dict[str, MemberPlan]:
    """``plan_from_subscriptions``, told to the rebalance listener's assignment hooks.

    What both drivers' leaders call: the listener (the engine's) passes start,
    completion or the error on to the app's sensors (Faust's ``on_assignment_*``),
    with ``assignor``, the driver's object computing the plan. A listener that is
    no ``AssignmentObserver`` (or None: an assignor with no consumer behind it) is
    not told.
    """
    if getattr(listener, "on_assignment_start", None) is None:
        return plan_from_subscriptions(subscriptions, user_data, partitions)
    state = listener.on_assignment_start(assignor)
    try:
        plan = plan_from_subscriptions(subscriptions, user_data, partitions)
    except Exception as exc:
        listener.on_assignment_error(assignor, state, exc)
        raise
    listener.on_assignment_completed(assignor, state)
    return plan


def encode_subscription(info: SubscriptionInfo) -> bytes:
    if not info.changelogs and not info.owned and not info.url:
        return b""
    body = {
        "v": VERSION,
        "changelogs": sorted(info.changelogs),
        "replicas": info.replicas,
        "held": _by_topic(info.held),
        "owned": _by_topic(info.owned),
    }
    if info.url:
        body["url"] = info.url
    return _dump(body)


def decode_subscription(data: bytes | None) -> SubscriptionInfo:
    body = _load(data)
    if body is None:
        return SubscriptionInfo()
    return SubscriptionInfo(
        frozenset(body.get("changelogs", ())),
        int(body.get("replicas", 0)),
        frozenset(_from_topics(body.get("held", {}))),
        frozenset(_from_topics(body.get("owned", {}))),
        body.get("url") if isinstance(body.get("url"), str) else None,
    )


def encode_assignments(
    plan: Mapping[str, MemberPlan], user_data: Mapping[str, bytes]
) -> dict[str, bytes]:
    """Each member's assignment ``user_data``: its standbys, and every member's routes.

    ``routes`` maps the web URL of each member that told one to the
    partitions it processes, so that any member can send a web request to
    the owner of a key (``app.router``). Members without a URL are left out.
    """
    routes: dict[str, dict[str, list[int]]] = {}
    for member in sorted(plan):
        url = decode_subscription(user_data.get(member)).url
        if url and plan[member].active:
            routes.setdefault(url, {})
            for topic, partitions in _by_topic(plan[member].active).items():
                routes[url].setdefault(topic, []).extend(partitions)
    # One routes text for all members: a group of hundreds of members over
    # thousands of partitions would otherwise sort and dump it once per member.
    routes_text = _dump({url: {t: sorted(ps) for t, ps in topics.items()}
                         for url, topics in routes.items()}) if routes else None
    result = {}
    for member, share in plan.items():
        fields = []
        if routes_text is not None:
            fields.append(b'"routes":' + routes_text)
        if share.standby:
            fields.append(b'"standbys":' + _dump(_by_topic(share.standby)))
        # Keys in sorted order, as ``_dump`` writes them: the same bytes as one dump.
        result[member] = b"{" + b",".join([*fields, b'"v":%d' % VERSION]) + b"}" if fields else b""
    return result


class Routes(Mapping[TP, str]):
    """The web URL of each partition's processing member, decoded on first use.

    Every member receives the whole group's routes at every rebalance, but
    few ever route a request: decoding thousands of partitions per member per
    rebalance was a large share of a simulated rebalance storm.
    """

    def __init__(self, data: bytes | None) -> None:
        self._data = data
        self._decoded: dict[TP, str] | None = None

    def _table(self) -> dict[TP, str]:
        if self._decoded is None:
            self._decoded = decode_routes(self._data)
            self._data = None
        return self._decoded

    def __getitem__(self, tp: TP) -> str:
        return self._table()[tp]

    def __iter__(self) -> Iterator[TP]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


def decode_routes(data: bytes | None) -> dict[TP, str]:
    """The web URL of each partition's processing member, from an assignment's ``user_data``."""
    body = _load(data)
    routes = body.get("routes") if body is not None else None
    if not isinstance(routes, dict):
        return {}
    return {tp: url for url, topics in routes.items() for tp in _from_topics(topics)}


def encode_standbys(standbys: Iterable[TP]) -> bytes:
    standbys = set(standbys)
    if not standbys:
        return b""
    return _dump({"v": VERSION, "standbys": _by_topic(standbys)})


def decode_standbys(data: bytes | None) -> frozenset[TP]:
    """A member's standby partitions, from its assignment's ``user_data``.

    The last few answers are kept by their bytes: every member of a group
    gets the same routes, and with no standbys (the default) the very same
    bytes, so in one process of many members (the simulator) the first
    decodes the whole group's routes and the others find the answer.
    """
    if type(data) is bytes:
        return _standbys_of(data)
    return _decode_standbys(data)


@functools.lru_cache(maxsize=4)
def _standbys_of(data: bytes) -> frozenset[TP]:
    return _decode_standbys(data)


def _decode_standbys(data: bytes | None) -> frozenset[TP]:
    body = _load(data)
    if body is None:
        return frozenset()
    return frozenset(_from_topics(body.get("standbys", {})))


def _by_topic(tps: Iterable[TP]) -> dict[str, list[int]]:
    result: dict[str, list[int]] = {}
    for tp in sorted(tps):
        result.setdefault(tp.topic, []).append(tp.partition)
    return result


def _from_topics(topics: dict[str, list[int]]) -> Iterable[TP]:
    return (TP(topic, int(p)) for topic, partitions in topics.items() for p in partitions)


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _load(data: bytes | None) -> dict[str, Any] | None:
    """The decoded body; None for empty or foreign bytes (another assignor's, a newer version)."""
    if not data:
        return None
    try:
        body = json.loads(bytes(data))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        return None
    return body
