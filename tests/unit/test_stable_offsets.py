"""Stable offset fetches (OffsetFetch v7 ``require_stable``, KIP-447), without a broker.

On a real broker: ``tests/integration/test_kafka_transactions.py`` (a read_committed member
waits for an open transaction's offsets) and the ``member-offsets`` wire exchange.
"""

from __future__ import annotations

import pytest
from aiokafka import errors
from aiokafka.protocol.commit import (
    OffsetFetchRequest,
    OffsetFetchRequest_v3,
    OffsetFetchResponse_v3,
)

from detstream.transport.kafka import stable_offsets
from detstream.transport.kafka.stable_offsets import (
    UNSTABLE_OFFSET_COMMIT,
    OffsetFetchRequest_v7,
    OffsetFetchResponse_v7,
    UnstableOffsetCommitError,
    answered,
    stable,
)

FETCH = OffsetFetchRequest("g", [("orders", [0, 3])])


def test_an_offset_fetch_asks_for_stable_offsets_where_the_broker_takes_v7():
    sent = stable(FETCH).prepare({9: (1, 9)})
    assert isinstance(sent, OffsetFetchRequest_v7)
    decoded = OffsetFetchRequest_v7.decode(sent.encode())
    assert (decoded.group_id, decoded.topics, decoded.require_stable) == ("g", [("orders", [0, 3], {})], True)
    every = stable(OffsetFetchRequest("g", None)).prepare({9: (1, 9)})
    assert every.topics is None
    old = stable(FETCH).prepare({9: (1, 5)})
    assert isinstance(old, OffsetFetchRequest_v3) and old.encode() == FETCH.prepare({9: (1, 5)}).encode()
    other = object()
    assert stable(other) is other


def test_a_v7_answer_is_handed_to_aiokafka_as_v3_and_an_unstable_partition_is_fetched_again():
    response = OffsetFetchResponse_v7(0, [("orders", [(0, 42, -1, "", 0, {}), (3, -1, -1, "", 0, {})], {})], 0, {})
    read = answered(response)
    assert isinstance(read, OffsetFetchResponse_v3)
    assert (read.topics, read.error_code) == ([("orders", [(0, 42, "", 0), (3, -1, "", 0)])], 0)
    held = OffsetFetchResponse_v7(0, [("orders", [(0, -1, -1, "", UNSTABLE_OFFSET_COMMIT, {})], {})], 0, {})
    with pytest.raises(UnstableOffsetCommitError) as raised:
        answered(held)
    assert raised.value.retriable  # aiokafka's fetch loop waits retry_backoff_ms and asks again
    v3 = OffsetFetchResponse_v3(0, [], 0)
    assert answered(v3) is v3


def test_aiokafka_knows_the_error_code_once_installed():
    stable_offsets.install()
    assert errors.for_code(UNSTABLE_OFFSET_COMMIT) is UnstableOffsetCommitError
