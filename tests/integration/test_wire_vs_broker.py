"""The simulated brokers on the wire answer as Kafka does: the same requests, both answers.

The exchanges are in ``tests/wire_exchanges.py``; Kafka's recorded answers in
``tests/unit/sim/wire_exchanges.json``, which the unit tests hold the wire to
without a broker. Here the broker itself answers: live, against the wire,
and against the recording (so that it stays Kafka's answer).
"""

from __future__ import annotations

import asyncio
import secrets

from tests.wire_exchanges import (
    all_exchanges,
    exchanges,
    group_exchanges,
    member_offset_exchanges,
    normalised,
    on_the_wire,
    recorded,
    transaction_exchanges,
)


def test_the_wire_broker_answers_these_requests_as_kafka_does(kafka_bootstrap, new_topic):
    topic = new_topic(1)
    group = f"wire-vs-broker-{secrets.token_hex(4)}"
    kafka = asyncio.run(exchanges(kafka_bootstrap, topic, group))
    assert on_the_wire(exchanges, topic, group) == kafka


def test_transactions_look_the_same_on_the_wire_as_on_kafka(kafka_bootstrap, new_topic):
    topic = new_topic(1)
    kafka = asyncio.run(transaction_exchanges(kafka_bootstrap, topic))
    assert kafka["read_committed"][0] == [b"r1", b"r2"]  # the expectation is Kafka's
    assert kafka["committed"] == [(topic, [(0, 7, 0)])]
    assert on_the_wire(transaction_exchanges, topic) == kafka


def test_group_membership_looks_the_same_on_the_wire_as_on_kafka(kafka_bootstrap, new_topic):
    topic = new_topic(1)
    group = f"wire-vs-broker-{secrets.token_hex(4)}"
    kafka = asyncio.run(group_exchanges(kafka_bootstrap, topic, group))
    assert on_the_wire(group_exchanges, topic, group) == kafka


def test_transactional_offsets_naming_their_member_are_checked_on_the_wire_as_on_kafka(
    kafka_bootstrap, new_topic
):
    topic = new_topic(1)
    group = f"wire-vs-broker-{secrets.token_hex(4)}"
    kafka = asyncio.run(member_offset_exchanges(kafka_bootstrap, topic, group))
    assert [row[3] for row in kafka[:3]] == [[(topic, [22])], [(topic, [25])], [(topic, [0])]]
    assert on_the_wire(member_offset_exchanges, topic, group) == kafka


def test_kafka_still_answers_as_recorded(kafka_bootstrap, new_topic):
    """The recording the unit tests use is Kafka's answer today (re-record if Kafka changed)."""
    topic = new_topic(1)
    group = f"wire-vs-broker-{secrets.token_hex(4)}"
    kafka = asyncio.run(all_exchanges(kafka_bootstrap, topic, group))
    assert normalised(kafka, topic, group) == recorded()
