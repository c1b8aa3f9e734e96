"""Stable offset fetches (KIP-447's ``require_stable``) for read_committed consumers, on aiokafka 0.14.

A partition's new owner starts where the group's committed offset says. If
the previous owner's transaction holds newer offsets for it and is still
open (its TxnOffsetCommit accepted, its EndTxn not yet sent: a worker that
stalled between the two, or a commit racing the rebalance), the committed
offset is about to move: a new owner that starts from the old one redoes
events whose output that transaction then commits, and the output is there
twice. Java's consumer, reading ``read_committed``, fetches with
``require_stable`` (OffsetFetch v7): the coordinator answers
UNSTABLE_OFFSET_COMMIT for such a partition and the consumer asks again
until the transaction has ended. aiokafka 0.14 fetches with v3.

Here a consumer marked ``require_stable`` (the Kafka driver's read_committed
consumers) fetches with v7 where the broker serves it, and a partition
answered UNSTABLE_OFFSET_COMMIT (error 88, which aiokafka does not know;
registered as ``UnstableOffsetCommitError``, retriable) makes aiokafka's own
loop wait ``retry_backoff_ms`` and fetch again. Other consumers fetch as
aiokafka does. The answer is handed back to aiokafka as the v3 answer it reads.

Only the Kafka driver's consumer module imports this one.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from aiokafka import errors
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.commit import (
    OffsetFetchRequest,
    OffsetFetchRequest_v1,
    OffsetFetchRequest_v2,
    OffsetFetchRequest_v3,
    OffsetFetchResponse_v3,
)
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from detstream import compat

__all__ = ["UNSTABLE_OFFSET_COMMIT", "UnstableOffsetCommitError", "install"]

#: Kafka's error code: an open transaction holds offsets of the partition (KIP-447).
UNSTABLE_OFFSET_COMMIT = 88


class UnstableOffsetCommitError(errors.BrokerResponseError):
    """aiokafka's missing class for UNSTABLE_OFFSET_COMMIT; retriable, as in Java's client."""

    errno = UNSTABLE_OFFSET_COMMIT
    message = "UNSTABLE_OFFSET_COMMIT"
    description = "There are unstable offsets that need to be cleared."
    retriable = True


class OffsetFetchResponse_v7(Response):  # noqa: N801 - aiokafka's naming
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                (
                    "partitions",
                    CompactArray(
                        ("partition_index", Int32),
                        ("committed_offset", Int64),
                        ("committed_leader_epoch", Int32),
                        ("metadata", CompactString("utf-8")),
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequest_v7(RequestStruct):  # noqa: N801
    """OffsetFetch v7 (Kafka 2.5, KIP-447): ``require_stable``; a flexible version (from v6)."""

    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


StableOffsetFetchStruct: TypeAlias = (
    OffsetFetchRequest_v1 | OffsetFetchRequest_v2 | OffsetFetchRequest_v3 | OffsetFetchRequest_v7
)


class StableOffsetFetchRequest(Request[StableOffsetFetchStruct]):
    """aiokafka's offset fetch, asking for stable offsets where the broker takes it (v7)."""

    API_KEY = 9

    def __init__(self, fetch: OffsetFetchRequest) -> None:
        self._fetch = fetch

    def build(self, request_struct_class: type[StableOffsetFetchStruct]) -> StableOffsetFetchStruct:
        if request_struct_class is not OffsetFetchRequest_v7:
            return self._fetch.build(request_struct_class)
        partitions = self._fetch._partitions
        topics: list[Any] | None = (
            None if partitions is None else [(topic, list(ps), {}) for topic, ps in partitions]
        )
        return OffsetFetchRequest_v7(self._fetch._consumer_group, topics, True, {})


def stable(request: Any) -> Any:
    """``request`` as a read_committed consumer sends it: an offset fetch asks for stable offsets."""
    return StableOffsetFetchRequest(request) if isinstance(request, OffsetFetchRequest) else request


def answered(response: Any) -> Any:
    """A v7 answer as aiokafka reads one (v3); ``UnstableOffsetCommitError`` to fetch again later."""
    if getattr(response, "API_KEY", None) != 9 or response.API_VERSION < 7:
        return response
    if any(part[4] == UNSTABLE_OFFSET_COMMIT for _, parts, _ in response.topics for part in parts):
        raise UnstableOffsetCommitError()
    topics = [
        (name, [(p, offset, metadata, code) for p, offset, _epoch, metadata, code, _ in parts])
        for name, parts, _ in response.topics
    ]
    return OffsetFetchResponse_v3(response.throttle_time_ms, topics, response.error_code)


def install() -> None:
    """Register the error; make marked consumers' coordinators fetch stable offsets (idempotent)."""
    compat.register_broker_error(errors, UnstableOffsetCommitError)
    compat.fetch_offsets_as(GroupCoordinator, stable, answered)
