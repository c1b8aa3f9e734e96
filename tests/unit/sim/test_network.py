"""The simulated network: what a crash does to requests on the wire, and how errors arrive."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from sim.kafka_errors import ConnectionClosedError, RequestTimedOutError, RetriableError
from sim.loop import VirtualEventLoop, run
from sim.network import Link, Network
from sim.trace import Trace


def _network(loop_time, errors=None, error_pause=0.0):
    trace = Trace(loop_time)
    stats: Counter[str] = Counter()
    network = Network(trace, random.Random(1), latency=(0.01, 0.01), request_timeout=30.0,
                      stats=stats, errors=errors, error_pause=error_pause)
    return network, trace, stats


@pytest.mark.parametrize("killed", [True, False], ids=["killed", "stopped-waiting"])
def test_a_request_on_the_wire_reaches_the_broker_whatever_becomes_of_its_sender(killed):
    """kill -9 loses what a client had not sent yet, never what was on the wire; nor does a
    live client that closes or gives up waiting (a stop's budget) take back what it sent."""

    async def main():
        loop = asyncio.get_running_loop()
        network, trace, stats = _network(loop.time)
        link = Link("w1")
        applied = []
        request = asyncio.ensure_future(network.request(link, "commit", lambda: applied.append(loop.time())))
        await asyncio.sleep(0.004)  # sent, not arrived
        link.up = not killed  # the process dies, or lives on ...
        request.cancel()  # ... and the request's task ends
        await asyncio.sleep(1.0)
        if killed:
            after = asyncio.ensure_future(network.request(link, "commit", lambda: applied.append("late")))
            with pytest.raises(ConnectionError):
                await after  # sent by a dead process: never
        return applied, dict(stats), [e.kind for e in trace.events]

    applied, stats, kinds = run(main())
    kind = "request-after-crash" if killed else "request-abandoned"
    assert applied == [pytest.approx(0.01)]  # applied on arrival, after the sender let it go
    assert stats.get(kind) == 1 and kinds == [kind]


def test_without_an_errors_stream_an_error_response_raises_in_the_step_it_arrives():
    async def main():
        loop = asyncio.get_running_loop()
        network, _, _ = _network(loop.time)
        iterations = loop.iterations

        def refuse():
            raise ValueError("refused")

        with pytest.raises(ValueError):
            await network.request(Link("w1"), "produce", refuse)
        return loop.iterations - iterations, loop.time()

    steps, now = run(main())
    assert now == pytest.approx(0.01)
    assert steps == 2  # the latency's timer, then the step that raises


def test_an_error_response_may_arrive_late_and_busy_as_the_errors_stream_chooses():
    """Up to two iterations late, half the time after a pause of up to ``error_pause``."""

    def meet(seed):
        async def main():
            loop = asyncio.get_running_loop()
            network, _, _ = _network(loop.time, errors=random.Random(seed), error_pause=1.0)
            start = loop.iterations

            def refuse():
                raise ValueError("refused")

            with pytest.raises(ValueError):
                await network.request(Link("w1"), "produce", refuse)
            return loop.iterations - start, round(loop.time() - 0.01, 6)

        return run(main())

    outcomes = [meet(seed) for seed in range(40)]
    assert outcomes == [meet(seed) for seed in range(40)]  # from the seed alone
    assert {steps for steps, _ in outcomes} == {2, 3, 4}
    pauses = [late for _, late in outcomes if late > 0]
    assert 0 < len(pauses) < len(outcomes) and max(pauses) <= 1.0


def test_a_pause_runs_the_timers_due_meanwhile_after_the_callbacks_already_queued():
    order = []

    async def main():
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualEventLoop)
        loop.call_later(0.5, order.append, "timer at 0.5")
        loop.call_later(2.0, order.append, "timer at 2.0")
        loop.pause(1.0)
        loop.call_soon(order.append, "queued before the pause ended")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return loop.time()

    now = run(main())
    assert order == ["queued before the pause ended", "timer at 0.5"]
    assert now == pytest.approx(1.0)


def test_a_lost_request_may_close_its_connection_and_then_fails_after_a_round_trip():
    """A reset is heard a hop later (retry at once), a silent loss after the request timeout."""

    def lose(seed):
        async def main():
            loop = asyncio.get_running_loop()
            network = Network(Trace(loop.time), random.Random(seed), latency=(0.01, 0.01),
                              request_timeout=30.0, stats=Counter(), reset_share=0.5)
            link = Link("w1")
            link.conditions.drop(until=100.0)
            applied = []
            with pytest.raises(RetriableError) as caught:
                await network.request(link, "produce", lambda: applied.append(True))
            return type(caught.value), bool(applied), round(loop.time(), 6)

        return run(main())

    outcomes = {lose(seed) for seed in range(40)}
    assert {(kind, when) for kind, _, when in outcomes} == {
        (ConnectionClosedError, 0.02), (RequestTimedOutError, 30.0),
    }
    assert {applied for kind, applied, _ in outcomes if kind is ConnectionClosedError} == {True, False}


def _partitioned(loop_time, lost_response_share=0.0):
    """A network whose drop windows catch requests on their way in (``lost_response_share``
    0: never applied at once) or, at 1, their responses (applied at once)."""
    trace = Trace(loop_time)
    stats: Counter[str] = Counter()
    network = Network(trace, random.Random(1), latency=(0.01, 0.01), request_timeout=30.0,
                      stats=stats, lost_response_share=lost_response_share)
    return network, trace, stats


@pytest.mark.parametrize(("heal", "answered"), [(10.0, True), (50.0, False)])
def test_a_held_request_sent_into_a_partition_lands_when_it_heals_if_its_client_still_waits(
    heal, answered
):
    """TCP loses nothing: the request waits in the kernel and reaches the broker at the heal, in
    time for its client. A client that gave up closed the connection, aborting it (the Kafka
    driver's abortive_close): the kernel discarded the request, which never lands late."""

    async def main():
        loop = asyncio.get_running_loop()
        network, trace, stats = _partitioned(loop.time)
        link = Link("w1")
        link.conditions.drop(until=heal)
        applied = []
        try:
            result = await network.request(link, "produce", lambda: applied.append(loop.time()) or "ok")
        except RequestTimedOutError:
            result = ("timed out", loop.time())
        await asyncio.sleep(100.0)
        return result, applied, stats["request-held"], [e.kind for e in trace.events]

    result, applied, held, kinds = run(main())
    if answered:
        assert applied == [pytest.approx(heal + 0.01)]
        assert (result, held, kinds) == ("ok", 1, ["request-held"])
    else:
        assert result == ("timed out", pytest.approx(30.0)) and applied == []
        assert (held, kinds) == (0, ["request-dropped", "request-discarded"])


@pytest.mark.parametrize("what", ["commit", "heartbeat", "end-txn", "metadata"])
def test_every_request_sent_into_a_partition_is_held_not_only_produce(what):
    """TCP holds a commit as it holds a produce: it reaches the coordinator at the heal."""
    async def main():
        loop = asyncio.get_running_loop()
        network, trace, _ = _partitioned(loop.time)
        link = Link("w1")
        link.conditions.drop(until=10.0)
        applied = []
        result = await network.request(link, what, lambda: applied.append(loop.time()) or "ok")
        return result, applied, [e.kind for e in trace.events]

    assert run(main()) == ("ok", [pytest.approx(10.01)], ["request-held"])


@pytest.mark.parametrize(("heal", "answered"), [(10.0, True), (50.0, False)])
def test_a_response_caught_by_a_partition_is_held_too_the_request_applied_at_once(heal, answered):
    """The window caught the answer, not the request: applied on arrival, answered at the
    heal, or a timeout (applied all the same) when the heal comes too late."""
    async def main():
        loop = asyncio.get_running_loop()
        network, trace, _ = _partitioned(loop.time, lost_response_share=1.0)
        link = Link("w1")
        link.conditions.drop(until=heal)
        applied = []
        try:
            result = await network.request(link, "commit", lambda: applied.append(loop.time()) or "ok")
        except RequestTimedOutError:
            result = "timed out"
        return result, applied, loop.time(), [e.kind for e in trace.events]

    result, applied, now, kinds = run(main())
    assert applied == [pytest.approx(0.01)]
    if answered:
        assert (result, now, kinds) == ("ok", pytest.approx(heal + 0.01), ["request-held"])
    else:
        assert (result, now, kinds) == ("timed out", pytest.approx(30.0), ["request-dropped"])


def test_a_lossy_window_delays_a_request_by_retransmissions_and_loses_nothing():
    """Loss below 1: each lost segment is sent again after a retransmission timeout, so
    requests arrive late (never time out while the delays stay short), in order of arrival."""
    async def main():
        loop = asyncio.get_running_loop()
        network, trace, _ = _partitioned(loop.time)
        link = Link("w1")
        link.conditions.drop(until=3.0, loss=0.5)
        times = []
        for _ in range(20):
            sent = loop.time()
            await network.request(link, "commit", lambda: None)
            times.append(loop.time() - sent)
        return times, [e.kind for e in trace.events]

    times, kinds = run(main())
    assert all(t == pytest.approx(0.01) or t >= 0.21 for t in times)
    assert any(t >= 0.21 for t in times) and "request-dropped" not in kinds
    assert kinds.count("request-held") == sum(1 for t in times if t >= 0.21)


def test_a_held_request_of_a_process_that_dies_is_discarded_with_its_connections():
    async def main():
        loop = asyncio.get_running_loop()
        network, trace, _ = _partitioned(loop.time)
        link = Link("w1")
        link.conditions.drop(until=20.0)
        applied = []
        request = asyncio.ensure_future(
            network.request(link, "produce", lambda: applied.append(loop.time())))
        await asyncio.sleep(5.0)
        link.up = False
        request.cancel()
        await asyncio.sleep(100.0)
        return applied, [e.kind for e in trace.events]

    applied, kinds = run(main())
    assert applied == [] and kinds == ["request-held"]

