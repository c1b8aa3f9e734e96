"""Consumer group membership on the wire: JoinGroup, SyncGroup, Heartbeat, LeaveGroup.

The simulated group coordinator (``sim.group``) keeps members, rounds and
generations as structured data: each member's subscribed topics and assignor
``user_data``, the leader's plan as partitions per member. On the wire those
travel as the consumer protocol's bytes (``ConsumerProtocolMemberMetadata``,
``ConsumerProtocolMemberAssignment``); this module decodes them into the
coordinator's terms and encodes its answers back, so aiokafka's own
coordinator and the app's own assignor (run by the leader, client side, as
on Kafka) drive the simulated group. The group's protocol name (the
assignor's) is the one its first member proposed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any, Protocol

from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.protocol.group import (
    HeartbeatResponse_v1,
    JoinGroupResponse_v2,
    JoinGroupResponse_v5,
    LeaveGroupResponse_v1,
    SyncGroupResponse_v1,
    SyncGroupResponse_v3,
)

from detstream._types import TP
from detstream.errors import FencedInstanceIdError
from sim.group import (
    GroupProtocolError,
    IllegalGenerationError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)

from .codec import Decoded

__all__ = ["Coordinating", "heartbeat", "join_group", "leave_group", "sync_group"]

NO_ERROR, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, REBALANCE_IN_PROGRESS = 0, 22, 25, 27
INCONSISTENT_GROUP_PROTOCOL, MEMBER_ID_REQUIRED, FENCED_INSTANCE_ID = 23, 79, 82


class Coordinating(Protocol):
    """The broker a group request reached."""

    cluster: Any
    #: group id -> the protocol (assignor) name its members agreed on.
    protocols: dict[str, str]

    def coordinator_error(self, group_id: str) -> int:
        """0 if this broker coordinates ``group_id`` now, else the error code to answer."""


def _code(exc: GroupProtocolError) -> int:
    if isinstance(exc, UnknownMemberIdError):
        return UNKNOWN_MEMBER_ID
    if isinstance(exc, IllegalGenerationError):
        return ILLEGAL_GENERATION
    if isinstance(exc, RebalanceInProgressError):
        return REBALANCE_IN_PROGRESS
    return REBALANCE_IN_PROGRESS


async def join_group(broker: Coordinating, request: Decoded) -> Any:
    """JoinGroup v2 or v5. From v4 on, a member without an id is first given one with
    MEMBER_ID_REQUIRED and joins again with it (KIP-394), as Kafka 4 does with aiokafka,
    unless it is static (v5: a group instance id, KIP-345): that one joins at once, and takes
    the place of the member holding its instance, if any (``GroupCoordinator.join``)."""
    body = request.body
    instance = body.group_instance_id if request.api_version >= 5 else None
    reply = functools.partial(_join_response, request.api_version)
    code = broker.coordinator_error(body.group)
    if code or not body.group_protocols:
        return reply(code or INCONSISTENT_GROUP_PROTOCOL, -1, "", "", "", [])
    protocol = broker.protocols.setdefault(body.group, body.group_protocols[0][0])
    offered = dict(body.group_protocols)
    if protocol not in offered:
        return reply(INCONSISTENT_GROUP_PROTOCOL, -1, "", "", "", [])
    group = broker.cluster.group(body.group)
    if request.api_version >= 4 and not body.member_id and instance is None:
        return reply(MEMBER_ID_REQUIRED, -1, "", "", group.reserve_member_id(request.client_id), [])
    metadata = ConsumerProtocolMemberMetadata.decode(offered[protocol])
    try:
        joined = await group.join(
            body.member_id or None, client_id=request.client_id,
            subscription=frozenset(metadata.subscription), session_timeout=body.session_timeout / 1000,
            rebalance_timeout=body.rebalance_timeout / 1000, user_data=metadata.user_data or b"",
            instance_id=instance,
        )
    except GroupProtocolError as exc:
        return reply(_code(exc), -1, "", "", body.member_id, [])
    except FencedInstanceIdError:
        return reply(FENCED_INSTANCE_ID, -1, "", "", body.member_id, [])
    members = []
    if joined.member_id == joined.leader_id:  # the leader plans: it gets every member's metadata
        for member_id in sorted(joined.members):
            encoded = ConsumerProtocolMemberMetadata(
                metadata.version, sorted(joined.members[member_id]), joined.user_data.get(member_id, b"")
            ).encode()
            known = group.members.get(member_id)
            members.append((member_id, known.instance_id if known is not None else None, encoded))
    return reply(NO_ERROR, joined.generation, protocol, joined.leader_id, joined.member_id, members)


def _join_response(
    version: int, code: int, generation: int, protocol: str, leader: str, member_id: str,
    members: list[tuple[str, str | None, bytes]],
) -> Any:
    if version < 5:
        plain = [(member, metadata) for member, _, metadata in members]
        return JoinGroupResponse_v2(0, code, generation, protocol, leader, member_id, plain)
    return JoinGroupResponse_v5(0, code, generation, protocol, leader, member_id, members)


async def sync_group(broker: Coordinating, request: Decoded) -> Any:
    body = request.body
    response = SyncGroupResponse_v3 if request.api_version >= 3 else SyncGroupResponse_v1
    code = broker.coordinator_error(body.group)
    if code:
        return response(0, code, b"")
    plan, plan_data = _decode_plan(body.group_assignment)
    group = broker.cluster.group(body.group)
    instance = body.group_instance_id if request.api_version >= 3 else None
    try:
        assigned = await group.sync(body.member_id, body.generation_id, plan or None, plan_data, instance)
    except GroupProtocolError as exc:
        return response(0, _code(exc), b"")
    except FencedInstanceIdError:
        return response(0, FENCED_INSTANCE_ID, b"")
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(assigned):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    user_data = group.user_data.get(body.member_id, b"")
    encoded = ConsumerProtocolMemberAssignment(0, sorted(by_topic.items()), user_data).encode()
    return response(0, NO_ERROR, encoded)


def _decode_plan(assignment: list[tuple[str, bytes]]) -> tuple[dict[str, set[TP]], Mapping[str, bytes]]:
    plan: dict[str, set[TP]] = {}
    plan_data: dict[str, bytes] = {}
    for member_id, encoded in assignment or ():
        decoded = ConsumerProtocolMemberAssignment.decode(encoded)
        plan[member_id] = {TP(topic, p) for topic, partitions in decoded.assignment for p in partitions}
        plan_data[member_id] = decoded.user_data or b""
    return plan, plan_data


def heartbeat(broker: Coordinating, request: Decoded) -> Any:
    body = request.body
    code = broker.coordinator_error(body.group)
    instance = body.group_instance_id if request.api_version >= 3 else None  # v3: a static member's
    if not code:
        try:
            broker.cluster.group(body.group).heartbeat(body.member_id, body.generation_id, instance)
        except GroupProtocolError as exc:
            code = _code(exc)
        except FencedInstanceIdError:
            code = FENCED_INSTANCE_ID
    return HeartbeatResponse_v1(0, code)  # (v3's body is v1's)


def leave_group(broker: Coordinating, request: Decoded) -> Any:
    body = request.body
    code = broker.coordinator_error(body.group)
    if not code:
        broker.cluster.group(body.group).leave(body.member_id)
    return LeaveGroupResponse_v1(0, code)
