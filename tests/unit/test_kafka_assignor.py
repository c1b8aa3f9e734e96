"""The Kafka driver's assignor without a broker: standbys travel in the protocol's user_data."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberMetadata

import detstream
from detstream._types import TP
from detstream.assignor_wire import decode_standbys, decode_subscription
from detstream.transport.kafka.consumer import CopartitionedAssignor

LOG = "app-counts-changelog"


class Metadata:
    """Just what the assignor reads of aiokafka's ClusterMetadata."""

    def __init__(self, counts):
        self.counts = counts

    def partitions_for_topic(self, topic):
        return set(range(self.counts[topic])) if topic in self.counts else None


def consumer(name):
    app = detstream.App("app", broker="kafka://localhost:9092")
    return app.transport.create_consumer(client_id=name, group_id="g")


def test_members_say_what_they_hold_and_get_their_standbys_before_the_listener():
    one, two = consumer("one"), consumer("two")
    for member in (one, two):
        member.request_standbys([LOG], 1)
    a1, a2 = CopartitionedAssignor(one), CopartitionedAssignor(two)
    meta = {"m1": a1.metadata(["src", LOG]), "m2": a2.metadata(["src", LOG])}
    assert decode_subscription(meta["m1"].user_data).changelogs == {LOG}
    plan = a1.assign(Metadata({"src": 4, LOG: 4}), meta)  # m1 leads
    for member_id, assignor, member in (("m1", a1, one), ("m2", a2, two)):
        share = plan[member_id]
        active = {TP(topic, p) for topic, parts in share.assignment for p in parts}
        standby = decode_standbys(share.user_data)
        assert standby and standby.isdisjoint(active)  # never fetched by the group consumer
        assignor.on_assignment(share)  # what aiokafka calls before on_partitions_assigned
        assert member.standby_assignment() == standby
        held = decode_subscription(assignor.metadata(["src", LOG]).user_data).held
        assert held == {tp for tp in active | standby if tp.topic == LOG}  # told at the next join


def test_plain_members_and_a_class_level_assignor_get_actives_only():
    plain = ConsumerProtocolMemberMetadata(0, ["src", LOG], b"")
    plan = CopartitionedAssignor().assign(Metadata({"src": 2, LOG: 2}), {"a": plain, "b": plain})
    assert all(share.user_data == b"" for share in plan.values())
    assert CopartitionedAssignor().metadata([LOG]).user_data == b""


def test_a_consumer_asks_for_standbys_in_its_subscription_user_data():
    member = consumer("c")
    assert member.standby_assignment() == set()
    assert member._subscription_user_data() == b""  # nothing asked: a plain member
    member.request_standbys([LOG], 2)
    assert decode_subscription(member._subscription_user_data()).replicas == 2
