"""Idempotent producers: sequence numbers, deduplicated retries, out-of-order and epoch checks."""

import pytest

from detstream._types import TP
from sim.cluster import ClusterConfig
from sim.driver import SimTransport
from sim.idempotence import BatchId
from sim.kafka_errors import InvalidProducerEpochError, OutOfOrderSequenceError
from sim.network import LinkConditions
from sim.producer import record_size
from sim.testing import simulate

T0 = TP("t", 0)
#: every request a drop fault catches is applied by the broker; only its response is held.
RESPONSES_LOST = ClusterConfig(lost_response_share=1.0)


class Rec:
    def __init__(self, value):
        self.key, self.value, self.timestamp, self.headers, self.write = None, value, 0.0, (), None
        self.size = record_size(None, value)


def produce(cluster, values, batch):
    leader = cluster.brokers.leader(T0)
    return [m.offset for m in cluster.produce("p", T0, leader, [Rec(v) for v in values], batch=batch)]


def test_a_repeated_batch_gets_its_original_offsets_and_is_not_appended_again():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        first = produce(cluster, [b"a", b"b"], BatchId(7, 0, 0))
        again = produce(cluster, [b"a", b"b"], BatchId(7, 0, 0))
        nxt = produce(cluster, [b"c"], BatchId(7, 0, 2))
        values = [r.value for r in cluster.records("t")]
        return first, again, nxt, values, cluster.stats["batch-deduped"]

    first, again, nxt, values, deduped = simulate(main)
    assert first == again == [0, 1] and nxt == [2]
    assert values == [b"a", b"b", b"c"] and deduped == 1


def test_a_gap_in_sequence_numbers_or_an_old_epoch_is_refused():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        produce(cluster, [b"a"], BatchId(7, 1, 0))
        errors = []
        for values, batch in (([b"x"], BatchId(7, 1, 5)), ([b"y"], BatchId(7, 0, 1)), ([b"z"], BatchId(8, 0, 3))):
            try:
                produce(cluster, values, batch)
            except Exception as exc:
                errors.append(type(exc))
        produce(cluster, [b"new epoch"], BatchId(7, 2, 0))  # a new epoch starts again at 0
        return errors, len(cluster.records("t"))

    errors, count = simulate(main)
    assert errors == [OutOfOrderSequenceError, InvalidProducerEpochError, OutOfOrderSequenceError]
    assert count == 2


def _run_with_drop(idempotent):
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        conditions = LinkConditions()
        transport = SimTransport(cluster=cluster, name="w1", conditions=conditions)
        producer = transport.create_producer(client_id="w1")
        producer.idempotent = idempotent
        await producer.start()
        await producer.send("t", key=None, value=b"before", partition=0)
        # the next request's response is held past the request timeout (30 s): the client
        # retries, and its retry is answered once the partition heals
        conditions.drop(until=45.0)
        meta = await producer.send("t", key=None, value=b"retried", partition=0)
        return meta.offset, [r.value for r in cluster.records("t")], [e.kind for e in cluster.trace.events]

    return simulate(main, config=RESPONSES_LOST)


def test_drop_idempotent_retry_is_deduplicated():
    offset, values, kinds = _run_with_drop(True)
    assert values == [b"before", b"retried"] and offset == 1
    assert "request-dropped" in kinds and "produce-deduped" in kinds and "retried" in kinds


def test_drop_plain_producer_retry_appends_twice():
    offset, values, kinds = _run_with_drop(False)
    assert values == [b"before", b"retried", b"retried"] and offset == 2
    assert "produce-deduped" not in kinds


def test_transactional_producer_is_idempotent_too():
    async def main(cluster):
        cluster.create_topic("t", 1, by="test")
        conditions = LinkConditions()
        transport = SimTransport(cluster=cluster, name="w1", conditions=conditions)
        producer = transport.create_producer(client_id="w1", transactional_id="tx")
        await producer.start()
        await producer.begin_transaction()
        await producer.partitions_for("t")  # its metadata, asked before the drop (as a first send)
        conditions.drop(until=45.0)  # the response is held past the request timeout: a retry
        await producer.send("t", key=None, value=b"once", partition=0)
        await producer.commit_transaction()
        return [r.value for r in cluster.records("t")], [e.kind for e in cluster.trace.events]

    values, kinds = simulate(main, config=RESPONSES_LOST)
    assert values == [b"once"]
    assert "produce-deduped" in kinds and kinds.count("txn-commit") == 1


@pytest.mark.parametrize("idempotent", [True, False])
def test_app_setting_picks_idempotence(idempotent):
    class Conf:
        producer_enable_idempotence = idempotent

    class App:
        conf = Conf()

    async def main(cluster):
        transport = SimTransport(cluster=cluster, name="w1", app=App())
        return transport.create_producer(client_id="w1").idempotent

    assert simulate(main) is idempotent
