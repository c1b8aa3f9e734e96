"""Static membership (``consumer_group_instance_id``) on the Kafka driver, without a broker.

aiokafka 0.14 sends a static member's instance id in JoinGroup and SyncGroup
only; ``detstream.transport.kafka.static_membership`` makes its heartbeats
and offset commits name it too (Heartbeat v3, OffsetCommit v7), so that a
member another process replaced is told FENCED_INSTANCE_ID instead of
UNKNOWN_MEMBER_ID (after which aiokafka would join again and take the
instance back). On a real broker: the contract cases
``a_second_member_with_the_instance_id_fences_the_first`` and
``a_restarted_static_member_takes_its_place_without_a_rebalance``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import errors
from aiokafka.protocol.commit import OffsetCommitRequest, OffsetCommitRequest_v3
from aiokafka.protocol.group import HeartbeatRequest, HeartbeatRequest_v1

import detstream
from detstream import compat
from detstream.errors import CommitFailedError, FencedInstanceIdError, ImproperlyConfigured
from detstream.transport.kafka import static_membership
from detstream.transport.kafka.static_membership import (
    FENCED_INSTANCE_ID,
    HeartbeatRequest_v3,
    OffsetCommitRequest_v7,
    fenced,
    with_instance,
)

#: what a broker that serves these versions advertises (Kafka 4.x serves more).
BROKER = {12: (0, 4), 8: (2, 9)}
OLD_BROKER = {12: (0, 2), 8: (2, 6)}


def test_a_static_members_heartbeat_names_its_instance_where_the_broker_takes_it():
    beat = HeartbeatRequest("group", 7, "member-1")
    sent = with_instance(beat, "worker-1").prepare(BROKER)
    assert isinstance(sent, HeartbeatRequest_v3)
    assert (sent.group, sent.generation_id, sent.member_id, sent.group_instance_id) == (
        "group", 7, "member-1", "worker-1"
    )
    assert HeartbeatRequest_v3.decode(sent.encode()).group_instance_id == "worker-1"
    before_v3 = with_instance(beat, "worker-1").prepare(OLD_BROKER)
    assert isinstance(before_v3, HeartbeatRequest_v1)  # as aiokafka sends it
    assert before_v3.encode() == beat.prepare(OLD_BROKER).encode()


def test_a_static_members_offset_commit_names_its_instance_where_the_broker_takes_it():
    commit = OffsetCommitRequest("group", 7, "member-1", -1, [("orders", [(0, 42, ""), (3, 7, "m")])])
    sent = with_instance(commit, "worker-1").prepare(BROKER)
    assert isinstance(sent, OffsetCommitRequest_v7)
    decoded = OffsetCommitRequest_v7.decode(sent.encode())
    assert decoded.group_instance_id == "worker-1"
    assert decoded.topics == [("orders", [(0, 42, -1, ""), (3, 7, -1, "m")])]  # leader epoch unknown
    assert isinstance(with_instance(commit, "worker-1").prepare(OLD_BROKER), OffsetCommitRequest_v3)


def test_other_requests_go_as_they_are():
    request = object()
    assert with_instance(request, "worker-1") is request


class _Response:
    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)


def test_fenced_instance_id_is_read_from_a_response_or_a_committed_partition():
    assert fenced(_Response(error_code=FENCED_INSTANCE_ID))
    assert not fenced(_Response(error_code=25))  # UNKNOWN_MEMBER_ID: the member expired
    commit = _Response(API_KEY=8, topics=[("orders", [(0, 0), (1, FENCED_INSTANCE_ID)])])
    assert fenced(commit)
    assert not fenced(_Response(API_KEY=8, topics=[("orders", [(0, 0)])]))


def test_aiokafka_knows_the_error_by_name():
    static_membership.install()
    assert errors.for_code(FENCED_INSTANCE_ID) is static_membership.FencedInstanceIdError


def test_only_a_static_members_requests_are_rewritten_and_a_fence_is_noted():
    class Coordinator:
        def __init__(self, instance: str | None, answer: Any) -> None:
            self._group_instance_id = instance
            self.answer = answer
            self.sent: list[Any] = []
            self._detstream_fenced_instance = None

        async def _send_req(self, request: Any) -> Any:
            self.sent.append(request)
            return self.answer

    compat.carry_group_instance_id(Coordinator, with_instance, fenced)
    beat = HeartbeatRequest("group", 1, "member-1")

    dynamic = Coordinator(None, _Response(error_code=0))
    asyncio.run(dynamic._send_req(beat))
    assert dynamic.sent == [beat]
    static = Coordinator("worker-1", _Response(error_code=FENCED_INSTANCE_ID))
    asyncio.run(static._send_req(beat))
    assert isinstance(static.sent[0], static_membership.StaticHeartbeatRequest)

    class Consumer:
        _coordinator = static

    assert compat.instance_fenced(Consumer()) == "worker-1"
    Consumer._coordinator = dynamic
    assert compat.instance_fenced(Consumer()) is None


def test_the_setting_is_a_name_or_none_and_read_from_the_environment(monkeypatch):
    assert detstream.App("a", broker="kafka://").conf.consumer_group_instance_id is None
    app = detstream.App("a", broker="kafka://", consumer_group_instance_id="worker-1")
    assert app.conf.consumer_group_instance_id == "worker-1"
    with pytest.raises(ImproperlyConfigured, match="non-empty name, unique per worker"):
        detstream.App("a", broker="kafka://", consumer_group_instance_id=" ")
    monkeypatch.setenv("CONSUMER_GROUP_INSTANCE_ID", "pod-3")
    assert detstream.App("b", broker="kafka://").conf.consumer_group_instance_id == "pod-3"


def test_the_kafka_consumer_gets_the_instance_id_only_when_given():
    transport = detstream.App("a", broker="kafka://a:1").transport
    assert "group_instance_id" not in transport.create_consumer(client_id="c", group_id="g")._options
    static = transport.create_consumer(client_id="c", group_id="g", group_instance_id="worker-1")
    assert static._options["group_instance_id"] == "worker-1"


def test_a_fenced_instance_is_a_commit_refusal_that_names_group_and_instance():
    error = FencedInstanceIdError("fenced", group="g", instance="worker-1")
    assert isinstance(error, CommitFailedError)
    assert (error.group, error.instance) == ("g", "worker-1")
