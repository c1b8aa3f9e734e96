"""The wire broker answers aiokafka's requests as Kafka did when recorded (no broker needed).

Kafka's answers are in ``wire_exchanges.json`` (``tests/wire_exchanges.py``
records them; ``tests/integration/test_wire_vs_broker.py`` checks that Kafka
still gives them).
"""

from __future__ import annotations

import pytest

from tests.wire_exchanges import (
    exchanges,
    group_exchanges,
    member_offset_exchanges,
    normalised,
    on_the_wire,
    recorded,
    transaction_exchanges,
)

TOPIC, GROUP = "wire-exchanges-topic", "wire-exchanges-group"


@pytest.mark.parametrize("name", ["requests", "transactions", "group", "member-offsets"])
def test_the_wire_answers_each_exchange_as_kafka_was_recorded_to(name):
    if name == "requests":
        answer = on_the_wire(exchanges, TOPIC, GROUP)
    elif name == "transactions":
        answer = on_the_wire(transaction_exchanges, TOPIC)
    elif name == "group":
        answer = on_the_wire(group_exchanges, TOPIC, f"{GROUP}-members")
    else:
        answer = on_the_wire(member_offset_exchanges, TOPIC, f"{GROUP}-txn-members")
    assert normalised(answer, TOPIC, GROUP) == recorded()[name]
