"""Static membership (KIP-345, ``consumer_group_instance_id``) on aiokafka 0.14.

What aiokafka 0.14 does with ``AIOKafkaConsumer(group_instance_id=...)``
(``aiokafka/consumer/group_coordinator.py``):

- JoinGroup (v5) and SyncGroup (v3) carry the instance id: a member joining
  with the id of an instance the group knows takes that instance's place,
  its assignment and generation, without a rebalance (the group stays at
  its generation) when the group is stable;
- a static member sends no LeaveGroup when it stops (``_maybe_leave_group``:
  "do not send this leave request if we are running in static partition
  assignment mode"): the group keeps its partitions for it until it comes
  back or its session expires;
- but Heartbeat (v0-v1) and OffsetCommit (v2-v3) do not carry it. When
  another process joins with the same instance id, the broker answers the
  replaced member's heartbeats and commits UNKNOWN_MEMBER_ID (it can tell
  FENCED_INSTANCE_ID only to requests that name the instance), and aiokafka
  then resets its member id and joins again, with the instance id: it
  replaces its replacement. Two live processes with one instance id take
  it from each other at every heartbeat, each processing the same
  partitions in turn, without the group ever rebalancing (measured on Kafka
  4.x: the member id changed hands every heartbeat interval, the generation
  stayed 1).

Here a static member sends the instance id in its heartbeats (Heartbeat v3)
and offset commits (OffsetCommit v7), as Java's consumer does, so a replaced
member is told FENCED_INSTANCE_ID (error 82, which aiokafka 0.14 does not
know; ``FencedInstanceIdError`` is registered for it). aiokafka raises it as
an unexpected error, which it neither retries nor answers with a rejoin;
``compat.carry_group_instance_id`` notes it on the coordinator, and the
driver's consumer raises ``detstream.errors.FencedInstanceIdError`` from
``getmany`` and ``commit``. A dynamic member (no instance id) sends what
aiokafka sends.

Only the Kafka driver's consumer module imports this one.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from aiokafka import errors
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.commit import (
    OffsetCommitRequest,
    OffsetCommitRequest_v2,
    OffsetCommitRequest_v3,
    OffsetCommitResponse_v3,
)
from aiokafka.protocol.group import (
    HeartbeatRequest,
    HeartbeatRequest_v0,
    HeartbeatRequest_v1,
    HeartbeatResponse_v1,
)
from aiokafka.protocol.types import Array, Int32, Int64, Schema, String

from detstream import compat

__all__ = ["FENCED_INSTANCE_ID", "FencedInstanceIdError", "install"]

#: Kafka's error code: another member joined with this member's group instance id.
FENCED_INSTANCE_ID = 82


class FencedInstanceIdError(errors.BrokerResponseError):
    """aiokafka's missing class for FENCED_INSTANCE_ID (so its logs name it)."""

    errno = FENCED_INSTANCE_ID
    message = "FENCED_INSTANCE_ID"
    description = (
        "The broker rejected this static consumer since another consumer with the same "
        "group.instance.id has registered with a different member.id."
    )


class HeartbeatResponse_v3(Response):  # noqa: N801 - aiokafka's naming
    API_KEY = 12
    API_VERSION = 3
    SCHEMA = HeartbeatResponse_v1.SCHEMA


class HeartbeatRequest_v3(RequestStruct):  # noqa: N801
    """Heartbeat v3 (Kafka 2.3): names the member's group instance (v4 is a flexible version)."""

    API_KEY = 12
    API_VERSION = 3
    RESPONSE_TYPE = HeartbeatResponse_v3
    SCHEMA = Schema(
        ("group", String("utf-8")),
        ("generation_id", Int32),
        ("member_id", String("utf-8")),
        ("group_instance_id", String("utf-8")),
    )


StaticHeartbeatStruct: TypeAlias = HeartbeatRequest_v0 | HeartbeatRequest_v1 | HeartbeatRequest_v3


class StaticHeartbeatRequest(Request[StaticHeartbeatStruct]):
    """aiokafka's heartbeat, with the group instance id where the broker takes it (v3)."""

    API_KEY = 12

    def __init__(self, heartbeat: HeartbeatRequest, group_instance_id: str) -> None:
        self._heartbeat = heartbeat
        self._group_instance_id = group_instance_id

    def build(self, request_struct_class: type[StaticHeartbeatStruct]) -> StaticHeartbeatStruct:
        if request_struct_class is HeartbeatRequest_v3:
            beat = self._heartbeat
            return HeartbeatRequest_v3(
                beat._group, beat._generation_id, beat._member_id, self._group_instance_id
            )
        return self._heartbeat.build(request_struct_class)


class OffsetCommitResponse_v7(Response):  # noqa: N801
    API_KEY = 8
    API_VERSION = 7
    SCHEMA = OffsetCommitResponse_v3.SCHEMA


class OffsetCommitRequest_v7(RequestStruct):  # noqa: N801
    """OffsetCommit v7 (Kafka 2.3): names the member's group instance; no retention time
    (dropped in v5), a leader epoch per partition (v6; -1: unknown). v8 is flexible."""

    API_KEY = 8
    API_VERSION = 7
    RESPONSE_TYPE = OffsetCommitResponse_v7
    SCHEMA = Schema(
        ("consumer_group", String("utf-8")),
        ("consumer_group_generation_id", Int32),
        ("consumer_id", String("utf-8")),
        ("group_instance_id", String("utf-8")),
        (
            "topics",
            Array(
                ("topic", String("utf-8")),
                (
                    "partitions",
                    Array(
                        ("partition", Int32),
                        ("offset", Int64),
                        ("leader_epoch", Int32),
                        ("metadata", String("utf-8")),
                    ),
                ),
            ),
        ),
    )


StaticOffsetCommitStruct: TypeAlias = (
    OffsetCommitRequest_v2 | OffsetCommitRequest_v3 | OffsetCommitRequest_v7
)


class StaticOffsetCommitRequest(Request[StaticOffsetCommitStruct]):
    """aiokafka's offset commit, with the group instance id where the broker takes it (v7)."""

    API_KEY = 8

    def __init__(self, commit: OffsetCommitRequest, group_instance_id: str) -> None:
        self._commit = commit
        self._group_instance_id = group_instance_id

    def build(self, request_struct_class: type[StaticOffsetCommitStruct]) -> StaticOffsetCommitStruct:
        if request_struct_class is OffsetCommitRequest_v7:
            commit = self._commit
            topics = [
                (topic, [(partition, offset, -1, metadata) for partition, offset, metadata in parts])
                for topic, parts in commit._topics
            ]
            return OffsetCommitRequest_v7(
                commit._consumer_group, commit._consumer_group_generation_id,
                commit._consumer_id, self._group_instance_id, topics,
            )
        return self._commit.build(request_struct_class)


def with_instance(request: Any, group_instance_id: str) -> Any:
    """``request`` as a static member sends it: heartbeats and commits name the instance."""
    if isinstance(request, HeartbeatRequest):
        return StaticHeartbeatRequest(request, group_instance_id)
    if isinstance(request, OffsetCommitRequest):
        return StaticOffsetCommitRequest(request, group_instance_id)
    return request


def fenced(response: Any) -> bool:
    """Whether a group response says FENCED_INSTANCE_ID (top level, or for a committed partition)."""
    if getattr(response, "error_code", 0) == FENCED_INSTANCE_ID:
        return True
    if getattr(response, "API_KEY", None) == 8:  # OffsetCommit: an error per partition
        return any(
            code == FENCED_INSTANCE_ID for _, partitions in response.topics for _, code in partitions
        )
    return False


def install() -> None:
    """Register the error and make static members' coordinators name their instance (idempotent)."""
    compat.register_broker_error(errors, FencedInstanceIdError)
    compat.carry_group_instance_id(GroupCoordinator, with_instance, fenced)
