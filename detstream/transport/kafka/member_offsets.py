"""Transactional offsets that name their group member (KIP-447), on aiokafka 0.14.

aiokafka's ``send_offsets_to_transaction`` takes only a group id and sends
``TxnOffsetCommit`` v0: transactional id, group id, producer id and epoch,
offsets. With one transactional id per worker the epoch fences nothing when
a rebalance hands a partition to another worker, so a worker the group
expelled while it was stalled (a paused process, a long GC, a partition from
its group coordinator) commits its open transaction when it wakes, and the
events the new owner redid since have their output committed twice.
The simulator found it running aiokafka on the wire (chaos seed 20 of
``proj``, ``page_views``, ``take_batches``: ``final-read-duplicate``).

KIP-447 (Kafka 2.5) added the member to the request in v3: generation,
member id and group instance id, which the group coordinator checks as it
checks a plain offset commit: ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID or
FENCED_INSTANCE_ID refuse the offsets. Here aiokafka's sender makes its
TxnOffsetCommit with ``MemberTxnOffsetCommitHandler``, which sends v3 where
the broker serves it, with the ``GroupMetadata`` the driver's transactional
producer attached for the offsets being sent, and turns a refusal into an
abortable error of the transaction (as Java's producer does): the offsets'
``send_offsets_to_transaction`` raises ``CommitFailedError`` (or
``FencedInstanceIdError``), the engine aborts the transaction and gives up
the partitions. The abort must reach the broker: aiokafka's own abortable
error forgets what the transaction added there and skips the EndTxn, which
left the broker's transaction open for the next one to commit
(``compat.fail_transaction_abortably``; found by the simulator, chaos seed 9
of ``long_recovery``: counts one over). A producer that attached nothing (not one of the driver's)
sends generation -1 and no member, which Kafka does not check, as v0.

Only the Kafka driver's transactional producer module imports this one.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from aiokafka.producer import sender as aiokafka_sender
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.transaction import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequest_v0,
    TxnOffsetCommitResponse_v0,
)
from aiokafka.protocol.types import (
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from detstream import compat
from detstream.errors import CommitFailedError, FencedInstanceIdError
from detstream.transport.base import GroupMetadata

__all__ = ["MemberTxnOffsetCommitHandler", "install"]

#: Kafka's error codes for offsets of a member the group no longer has as it was.
ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, FENCED_INSTANCE_ID = 22, 25, 82
REFUSALS = {
    ILLEGAL_GENERATION: "ILLEGAL_GENERATION", UNKNOWN_MEMBER_ID: "UNKNOWN_MEMBER_ID",
    FENCED_INSTANCE_ID: "FENCED_INSTANCE_ID",
}
#: a committed offset's leader epoch when the committer does not know it (v2+).
NO_LEADER_EPOCH = -1


class TxnOffsetCommitResponse_v3(Response):  # noqa: N801 - aiokafka's naming
    API_KEY = 28
    API_VERSION = 3
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
                        ("error_code", Int16),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequest_v3(RequestStruct):  # noqa: N801
    """TxnOffsetCommit v3 (Kafka 2.5, KIP-447): the committing member; a flexible version."""

    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),
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
                        ("committed_metadata", CompactString("utf-8")),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


MemberTxnOffsetCommitStruct: TypeAlias = TxnOffsetCommitRequest_v0 | TxnOffsetCommitRequest_v3


class MemberTxnOffsetCommitRequest(Request[MemberTxnOffsetCommitStruct]):
    """aiokafka's TxnOffsetCommit, naming the committing member where the broker takes it (v3)."""

    API_KEY = 28

    def __init__(self, commit: TxnOffsetCommitRequest, group: GroupMetadata | None) -> None:
        self._commit = commit
        self._group = group

    def build(self, request_struct_class: type[MemberTxnOffsetCommitStruct]) -> MemberTxnOffsetCommitStruct:
        if request_struct_class is not TxnOffsetCommitRequest_v3:
            return self._commit.build(request_struct_class)
        commit, group = self._commit, self._group
        topics: list[Any] = [
            (topic, [(p, offset, NO_LEADER_EPOCH, metadata, {}) for p, offset, metadata in parts], {})
            for topic, parts in commit._topics
        ]
        generation, member, instance = (-1, "", None) if group is None else (
            group.generation, group.member_id or "", group.group_instance_id
        )
        return TxnOffsetCommitRequest_v3(
            commit._transactional_id, commit._group_id, commit._producer_id, commit._producer_epoch,
            generation, member, instance, topics, {},
        )


class MemberTxnOffsetCommitHandler(aiokafka_sender.TxnOffsetCommitHandler):
    """aiokafka's handler of TxnOffsetCommit, sending the member and heeding its refusal."""

    def create_request(self) -> MemberTxnOffsetCommitRequest:
        return MemberTxnOffsetCommitRequest(super().create_request(), self._member())

    def _member(self) -> GroupMetadata | None:
        """The member the driver attached for these offsets (None: none, or another group's)."""
        group = compat.attached_group_metadata(self._sender)
        return group if group is not None and group.group_id == self._group_id else None

    def handle_response(self, resp: Any) -> Any:
        if resp.API_VERSION < 3:
            return super().handle_response(resp)
        codes = {code for _, parts, _ in resp.topics for _, code, _ in parts}
        refused = sorted(codes.intersection(REFUSALS))
        if refused:
            error = refusal(refused[-1], self._group_id, self._member())
            compat.fail_transaction_abortably(self._sender, error)
            return None
        v0 = TxnOffsetCommitResponse_v0(
            resp.throttle_time_ms,
            [(name, [(p, code) for p, code, _ in parts]) for name, parts, _ in resp.topics],
        )
        return super().handle_response(v0)


def refusal(code: int, group_id: str, group: GroupMetadata | None) -> CommitFailedError:
    """The error the group coordinator's ``code`` means for offsets sent as ``group``."""
    member = "no member" if group is None else f"member {group.member_id}, generation {group.generation}"
    if code == FENCED_INSTANCE_ID and group is not None and group.group_instance_id is not None:
        return FencedInstanceIdError(
            f"transactional offsets refused: another consumer joined group {group_id!r} as "
            f"static member {group.group_instance_id!r} ({member})",
            group=group_id, instance=group.group_instance_id,
        )
    return CommitFailedError(
        f"transactional offsets of {member} refused by group {group_id!r} ({REFUSALS[code]}): a "
        "rebalance gave the partitions to another member, which redoes the transaction's work"
    )


def install() -> None:
    """Make every aiokafka producer of the process send TxnOffsetCommit through our handler."""
    compat.replace_txn_offset_commit_handler(aiokafka_sender, MemberTxnOffsetCommitHandler)
