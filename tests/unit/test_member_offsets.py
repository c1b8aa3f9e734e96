"""Transactional offsets naming their member (TxnOffsetCommit v3, KIP-447), without a broker.

On a real broker: ``tests/integration/test_kafka_transactions.py`` (the broker refuses a
stale member's offsets) and the ``member-offsets`` wire exchange (the wire answers as Kafka).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from aiokafka.protocol.transaction import TxnOffsetCommitRequest, TxnOffsetCommitRequest_v0

from detstream.errors import CommitFailedError, FencedInstanceIdError
from detstream.transport.base import GroupMetadata
from detstream.transport.kafka.member_offsets import (
    FENCED_INSTANCE_ID,
    ILLEGAL_GENERATION,
    UNKNOWN_MEMBER_ID,
    MemberTxnOffsetCommitHandler,
    MemberTxnOffsetCommitRequest,
    TxnOffsetCommitRequest_v3,
    TxnOffsetCommitResponse_v3,
    refusal,
)

COMMIT = TxnOffsetCommitRequest("txn-1", "g", 7, 2, [("orders", [(0, 42, ""), (3, 7, "m")])])
MEMBER = GroupMetadata("g", 5, "member-1", "worker-1")


def test_the_member_is_named_where_the_broker_takes_v3():
    sent = MemberTxnOffsetCommitRequest(COMMIT, MEMBER).prepare({28: (0, 5)})
    assert isinstance(sent, TxnOffsetCommitRequest_v3)
    decoded = TxnOffsetCommitRequest_v3.decode(sent.encode())
    assert (decoded.transactional_id, decoded.group_id, decoded.producer_id, decoded.producer_epoch) == (
        "txn-1", "g", 7, 2
    )
    assert (decoded.generation_id, decoded.member_id, decoded.group_instance_id) == (5, "member-1", "worker-1")
    assert decoded.topics == [("orders", [(0, 42, -1, "", {}), (3, 7, -1, "m", {})], {})]


def test_an_older_broker_gets_aiokafkas_v0_and_no_member_means_generation_minus_one():
    old = MemberTxnOffsetCommitRequest(COMMIT, MEMBER).prepare({28: (0, 2)})
    assert isinstance(old, TxnOffsetCommitRequest_v0)
    assert old.encode() == COMMIT.prepare({28: (0, 2)}).encode()
    anonymous = MemberTxnOffsetCommitRequest(COMMIT, None).prepare({28: (0, 3)})
    assert (anonymous.generation_id, anonymous.member_id, anonymous.group_instance_id) == (-1, "", None)


@pytest.mark.parametrize(("code", "error"), [
    (ILLEGAL_GENERATION, CommitFailedError), (UNKNOWN_MEMBER_ID, CommitFailedError),
    (FENCED_INSTANCE_ID, FencedInstanceIdError),
])
def test_a_refusal_aborts_the_transaction_with_the_engines_error(code, error):
    refused: list[BaseException] = []
    manager = SimpleNamespace(_txn_partitions={"orders-0"}, _txn_consumer_group="g")

    def error_transaction(exc: BaseException) -> None:  # aiokafka's: forgets what was added
        refused.append(exc)
        manager._txn_partitions.clear()
        manager._txn_consumer_group = None

    manager.error_transaction = error_transaction
    sender = SimpleNamespace(_retry_backoff=0.1, _detstream_group_metadata=MEMBER, _txn_manager=manager)
    handler = MemberTxnOffsetCommitHandler(sender, {}, "g")
    response = TxnOffsetCommitResponse_v3(0, [("orders", [(0, code, {}), (3, code, {})], {})], {})
    assert handler.handle_response(response) is None  # no retry: the transaction must abort
    assert [type(e) for e in refused] == [error]
    assert "refused" in str(refused[0]) and "g" in str(refused[0])
    # still known, so that the abort sends EndTxn to the broker
    assert (manager._txn_partitions, manager._txn_consumer_group) == ({"orders-0"}, "g")


def test_a_fenced_instance_without_an_instance_id_is_still_a_refused_commit():
    error = refusal(FENCED_INSTANCE_ID, "g", GroupMetadata("g", 5, "member-1"))
    assert type(error) is CommitFailedError and "FENCED_INSTANCE_ID" in str(error)


def test_the_member_attached_for_another_groups_offsets_is_not_sent():
    """The sender keeps the last attached metadata; offsets of another group go with no member."""

    def member_sent(attached: GroupMetadata) -> tuple[int, str]:
        sender = SimpleNamespace(
            _retry_backoff=0.1, _detstream_group_metadata=attached,
            _txn_manager=SimpleNamespace(transactional_id="txn-1", producer_id=7, producer_epoch=2),
        )
        handler = MemberTxnOffsetCommitHandler(sender, {}, "g")
        sent = handler.create_request().prepare({28: (0, 3)})
        return sent.generation_id, sent.member_id

    assert member_sent(MEMBER) == (5, "member-1")
    assert member_sent(GroupMetadata("other", 9, "member-9")) == (-1, "")
