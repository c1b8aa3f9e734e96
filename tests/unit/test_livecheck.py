"""LiveCheck: cases, signals, test runs and their reports, on the simulator (virtual time).

Each test builds an app and its LiveCheck app inside a simulation (both on
the same simulated cluster, as the app's workers and the LiveCheck worker
share a Kafka cluster), triggers tests where the app starts work, and reads
what LiveCheck posted to its topics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from itertools import pairwise
from typing import Any

import pytest

import detstream
from detstream.errors import InvalidArgument
from detstream.livecheck import (
    Case,
    LiveCheck,
    Signal,
    State,
    TestExecution,
    TestReport,
    TestSkipped,
    current_test,
)
from detstream.livecheck.locals import current_test_stack
from detstream.livecheck.models import HEADER_TEST_ID, now
from detstream.livecheck.resolutions import Resolutions
from detstream.web.server import HTTPRequestError
from sim.testing import run_sandboxed, simulate


class Order(detstream.Record):
    id: str
    qty: int


class Shop:
    """An app under test: ``orders`` -> agent ``take`` -> ``shipments`` -> agent ``ship``.

    ``take`` signals ``taken`` with the order, ``ship`` signals ``shipped``;
    both note which test they served.
    """

    def __init__(self, name: str, **case_options: Any) -> None:
        self.app = detstream.App(name, broker="sim://", topic_partitions=2)
        self.livecheck: LiveCheck = self.app.LiveCheck()
        self.orders = self.app.topic("orders", key_type=str, value_type=Order)
        self.shipments = self.app.topic("shipments", key_type=str, value_type=Order)
        self.served: list[tuple[str, str | None]] = []
        self.reports: list[TestReport] = []
        options = {"probability": 1.0, "warn_stalled_after": 3600.0, **case_options}

        @self.livecheck.case(**options)
        class test_order(Case):
            taken: Signal[Order]
            shipped: Signal[str]

            async def run(self, qty: int) -> None:
                order = await self.taken.wait(timeout=10.0)
                assert order.qty == qty, f"qty {order.qty} != {qty}"
                assert await self.shipped.wait(timeout=10.0) == order.id

        self.case = test_order

        @self.app.agent(self.orders)
        async def take(stream: Any) -> None:
            async for order in stream:
                self.served.append(("take", _test_id()))
                await test_order.taken.send(order)
                await self.shipments.send(key=order.id, value=order)

        @self.app.agent(self.shipments)
        async def ship(stream: Any) -> None:
            async for order in stream:
                self.served.append(("ship", _test_id()))
                await test_order.shipped.send(order.id)

        @self.livecheck.agent(self.livecheck.reports)
        async def collect(reports: Any) -> None:
            async for report in reports:
                self.reports.append(report)

    async def order(self, order_id: str, qty: int = 1, *, triggered: bool = True) -> None:
        """What the shop's front end does: maybe trigger a test, then send the order."""
        if not triggered:
            await self.orders.send(key=order_id, value=Order(order_id, qty))
            return
        async with self.case.maybe_trigger(order_id, qty=qty):
            await self.orders.send(key=order_id, value=Order(order_id, qty))

    async def reported(self, count: int, *, within: float = 120.0) -> list[TestReport]:
        """The first ``count`` reports, once they were posted (virtual time)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while len(self.reports) < count and loop.time() < deadline:
            await asyncio.sleep(0.25)
        assert len(self.reports) >= count, self.reports
        return self.reports[:count]


def _test_id() -> str | None:
    test = current_test()
    return test.id if test is not None else None


def run_shop(
    body: Callable[[Shop, Any], Awaitable[Any]], *, seed: int = 1, start_livecheck: bool = True,
    **case_options: Any,
) -> Any:
    """Start a Shop and its LiveCheck on a simulated cluster, run ``body``, stop them."""

    async def main(cluster: Any) -> Any:
        shop = Shop("lc-shop", **case_options)
        await shop.app.start()
        if start_livecheck:
            await shop.livecheck.start()
        try:
            return await body(shop, cluster)
        finally:
            if start_livecheck:
                await shop.livecheck.stop()
            await shop.app.stop()

    return simulate(main, seed=seed)


# -- a test's way through the system -----------------------------------------------------------
def test_a_triggered_test_passes_once_its_signals_come_and_is_reported_by_its_id():
    async def body(shop: Shop, cluster: Any) -> Any:
        await shop.order("o-1", qty=3)
        (report,) = await shop.reported(1)
        return report, cluster.records("livecheck"), cluster.records("livecheck-report")

    report, executions, records = run_shop(body)
    assert report.state is State.DO_NOT_SHARE and report.state.is_ok()
    assert report.test is not None and report.test.id == "o-1"
    assert report.test.test_kwargs == {"qty": 3} and report.error is None
    assert set(report.signal_latency) == {"taken", "shipped"} and report.runtime >= 0
    assert [r.key for r in executions] == [b"o-1"] and [r.key for r in records] == [b"o-1"]


def test_the_test_travels_in_record_headers_to_every_agent_the_work_reaches():
    async def body(shop: Shop, cluster: Any) -> Any:
        await shop.order("o-1")
        await shop.order("o-2", triggered=False)
        await shop.reported(1)
        while len(shop.served) < 4:
            await asyncio.sleep(0.25)
        return shop.served, cluster.records("orders"), cluster.records("shipments")

    served, orders, shipments = run_shop(body)
    assert sorted(served, key=str) == [
        ("ship", "o-1"), ("ship", None), ("take", "o-1"), ("take", None)]
    for records in (orders, shipments):
        headers = {r.key: dict(r.headers) for r in records}
        assert headers[b"o-1"][HEADER_TEST_ID] == b"o-1"
        assert headers[b"o-2"] == {}


def test_sends_of_a_livecheck_app_that_is_not_started_go_through_the_apps_producer():
    async def body(shop: Shop, cluster: Any) -> Any:
        await shop.order("o-1")
        while len(cluster.records("livecheck-bus")) < 2:
            await asyncio.sleep(0.25)
        return cluster.records("livecheck"), cluster.records("livecheck-bus")

    executions, signals = run_shop(body, start_livecheck=False)
    assert [r.key for r in executions] == [b"o-1"]
    assert sorted(r.key for r in signals) == [b"o-1", b"o-1"]


def test_a_signal_that_does_not_come_times_the_test_out_after_its_timeout():
    async def body(shop: Shop, cluster: Any) -> Any:
        await shop.case.trigger("lost", qty=1)  # no order is sent: no signal comes
        return await shop.reported(1)

    (report,) = run_shop(body)
    assert report.state is State.TIMEOUT and not report.state.is_ok()
    assert report.error == "Timed out waiting for signal taken (10.0)"
    assert report.runtime == pytest.approx(10.0, abs=0.01)  # virtual seconds


def test_failing_tests_are_reported_and_enough_in_a_row_fail_the_case_once():
    async def body(shop: Shop, cluster: Any) -> Any:
        case = shop.case
        for n, order_id in enumerate(["a", "b", "c"], 1):
            await case.trigger(order_id, qty=99)  # the order has qty 1: the assertion fails
            await shop.orders.send(key=order_id, value=Order(order_id, 1),
                                   headers=_headers_of(shop, order_id))
            await shop.reported(n + (1 if n >= 2 else 0))
        failures = (case.consecutive_failures, case.total_failures, case.status)
        await shop.order("d", qty=1)
        await shop.reported(5)
        return shop.reports, failures, case.consecutive_failures

    reports, failures, after_pass = run_shop(body, max_consecutive_failures=2)
    errors = {r.test.id if r.test else None: (r.state, (r.error or "").split("\n")[0])
              for r in reports}
    assert len(reports) == len(errors) == 5
    assert errors == {
        "a": (State.FAIL, "qty 1 != 99"), "b": (State.FAIL, "qty 1 != 99"),
        None: (State.FAIL, "Failed after 2 (max=2)"),  # the case: reported once
        "c": (State.FAIL, "qty 1 != 99"), "d": (State.DO_NOT_SHARE, ""),
    }
    assert failures == (3, 3, State.FAIL) and after_pass == 0


def _headers_of(shop: Shop, test_id: str) -> dict[str, bytes]:
    """The headers ``maybe_trigger`` would have put on the order (the test was sent already)."""
    test = TestExecution(id=test_id, case_name=shop.case.name, timestamp=now(), test_args=[],
                         test_kwargs={}, expires=now() + timedelta(hours=1))
    return {name: value.encode() for name, value in test.as_headers().items()}


def test_a_case_without_tests_is_reported_stalled_once_until_it_recovered():
    def stalls(shop: Shop) -> tuple[int, State]:
        return sum(r.state is State.STALL for r in shop.reports), shop.case.status

    async def body(shop: Shop, cluster: Any) -> Any:
        await asyncio.sleep(30.0)  # no test: stalled after 5 s, and every 5 s after that
        quiet = stalls(shop)
        for n in range(40):  # 80 s of passing tests: recovered 60 s after the last stall
            await shop.order(f"o-{n}")
            await asyncio.sleep(2.0)
        busy = stalls(shop)
        await asyncio.sleep(30.0)  # quiet again: a new stall, reported
        return quiet, busy, stalls(shop), shop.reports[0].error

    quiet, busy, quiet_again, error = run_shop(body, warn_stalled_after=5.0)
    assert quiet == (1, State.STALL)
    assert busy == (1, State.PASS)
    assert quiet_again == (2, State.STALL)
    assert error.startswith("Test stalled! Last received 5.0 seconds ago (warn_stalled_after=5.0)")


def test_a_signal_is_sent_only_while_a_test_is_current_unless_forced():
    async def body(shop: Shop, cluster: Any) -> Any:
        await shop.case.taken.send(Order("x", 1))
        with pytest.raises(InvalidArgument, match="send\\(force=True\\) needs key="):
            await shop.case.taken.send(Order("x", 1), force=True)
        await shop.case.taken.send(Order("y", 1), key="y", force=True)
        while not cluster.records("livecheck-bus"):
            await asyncio.sleep(0.25)
        with pytest.raises(RuntimeError, match="wait\\(\\) is for a running test"):
            await shop.case.taken.wait(timeout=1.0)
        return cluster.records("livecheck-bus")

    (record,) = run_shop(body, start_livecheck=False)
    assert record.key == b"y"


def test_maybe_trigger_draws_from_a_stream_the_seed_decides():
    def draws(seed: int, probability: float) -> list[bool]:
        async def body(shop: Shop, cluster: Any) -> list[bool]:
            triggered = []
            for n in range(20):
                async with shop.case.maybe_trigger(f"t{n}") as test:
                    triggered.append(test is not None and current_test() is test)
            return triggered

        return run_shop(body, seed=seed, start_livecheck=False, probability=probability)

    assert draws(3, 0.5) == draws(3, 0.5)
    assert draws(3, 0.5) != draws(4, 0.5) and 0 < sum(draws(3, 0.5)) < 20
    assert draws(3, 0.0) == [False] * 20 and draws(3, 1.0) == [True] * 20


def test_an_expired_test_and_a_test_of_an_inactive_case_are_skipped_without_a_report():
    async def body(shop: Shop, cluster: Any) -> Any:
        case = shop.case
        expired = TestExecution(id="old", case_name=case.name, timestamp=now(), test_args=[],
                                test_kwargs={"qty": 1}, expires=now() - timedelta(seconds=1))
        with pytest.raises(TestSkipped, match="expired"):
            await case.execute(expired)
        case.active = False
        with pytest.raises(TestSkipped, match="case inactive"):
            await case.execute(expired.derive(id="new", expires=now() + timedelta(hours=1)))
        await asyncio.sleep(5.0)
        return shop.reports, case.total_by_state[State.SKIP]

    assert run_shop(body) == ([], 2)


def test_a_livecheck_run_replays_exactly_from_its_seed():
    async def body(shop: Shop, cluster: Any) -> str:
        for n in range(6):
            await shop.order(f"o-{n}", qty=n)
            await asyncio.sleep(1.0)
        await shop.case.trigger("lost", qty=1)
        await shop.reported(4)
        await asyncio.sleep(15.0)
        return str(cluster.trace.sha256())

    first = run_shop(body, seed=7, probability=0.5)
    assert run_shop(body, seed=7, probability=0.5) == first


# -- fake requests --------------------------------------------------------------------------------
def test_the_leader_makes_fake_requests_every_frequency_and_a_failing_one_fails_the_case():
    calls: list[float] = []

    async def body(shop: Shop, cluster: Any) -> Any:
        async def make_fake_request() -> None:
            calls.append(asyncio.get_running_loop().time())
            if len(calls) == 3:
                raise ConnectionError("front end down")

        shop.case.make_fake_request = make_fake_request  # type: ignore[method-assign]
        await asyncio.sleep(20.0)
        return shop.reports

    reports = run_shop(body, frequency=2.0)
    assert len(calls) >= 5 and all(b - a == pytest.approx(2.0) for a, b in pairwise(calls))
    (report,) = [r for r in reports if r.test is None]
    assert report.state is State.FAIL
    assert report.error == "make_fake_request raised ConnectionError('front end down')"


def test_get_url_retries_with_backoff_then_reports_the_service_down(monkeypatch):
    attempts: list[float] = []

    async def refused(client: Any, method: str, url: str, **kwargs: Any) -> bytes:
        attempts.append(asyncio.get_running_loop().time())
        raise HTTPRequestError(f"{method.upper()} {url}: connection refused")

    monkeypatch.setattr("detstream.livecheck.case.fetch", refused)

    async def body(shop: Shop, cluster: Any) -> Any:
        answer = await shop.case.get_url("http://shop/order/")
        return answer, await shop.reported(1)

    answer, (report,) = run_shop(body, url_error_retries=3, url_error_delay_min=1.0,
                                 url_error_delay_backoff=2.0, url_error_delay_max=3.0)
    assert answer is None and len(attempts) == 4
    assert [round(b - a, 3) for a, b in pairwise(attempts)] == [1.0, 2.0, 3.0]
    assert report.test is None and report.state is State.FAIL
    assert report.error == "Cannot send fake test request: GET http://shop/order/: connection refused"


# -- the web -----------------------------------------------------------------------------------------
def test_a_web_request_with_test_headers_is_served_as_part_of_that_test():
    app = detstream.App("lc-web", broker="sim://")
    app.LiveCheck()

    @app.page("/whoami/")
    async def whoami(web: Any, request: Any) -> Any:
        return web.json({"test": _test_id()})

    test = TestExecution(id="t-7", case_name="c", timestamp=now(), test_args=[], test_kwargs={},
                         expires=now() + timedelta(hours=1))

    async def calls() -> tuple[Any, Any, Any]:
        client = app.web.client()
        served = (await client.get("/whoami/", headers=test.as_headers())).json()
        plain = (await client.get("/whoami/")).json()
        with current_test_stack.push(test):  # what app.http_client adds to its requests
            outgoing = [dict(source()) for source in app.web.client_headers]
        return served, plain, outgoing

    served, plain, outgoing = asyncio.run(calls())
    assert served == {"test": "t-7"} and plain == {"test": None}
    assert outgoing == [test.as_headers()]


# -- declaring cases ---------------------------------------------------------------------------------
def test_a_case_takes_its_signals_from_its_annotations_and_binds_them_to_itself():
    app = detstream.App("lc-decl", broker="sim://")
    livecheck = app.LiveCheck()

    @livecheck.case(name="shop.checkout", probability=0.25, frequency=timedelta(seconds=3),
                    test_expires=60, max_history=5)
    class Checkout:  # not a Case subclass: the decorator adds the base
        paid: Signal[int]
        shipped: "Signal[str]"  # noqa: UP037 - a quoted annotation, as users write them
        note: str = "not a signal"

        async def run(self) -> None:
            pass

    assert isinstance(Checkout, Case) and livecheck.cases == {"shop.checkout": Checkout}
    assert list(Checkout.signals) == ["paid", "shipped"]
    assert [(s.name, s.index, s.case) for s in Checkout.signals.values()] == [
        ("paid", 1, Checkout), ("shipped", 2, Checkout)]
    assert Checkout.paid is Checkout.signals["paid"] and Checkout.total_signals == 2
    assert (Checkout.probability, Checkout.frequency, Checkout.test_expires) == (
        0.25, 3.0, timedelta(seconds=60))
    with pytest.raises(InvalidArgument, match="a case 'shop.checkout' exists already"):
        livecheck.case(name="shop.checkout")(type("Again", (Case,), {}))


def test_for_app_makes_an_app_of_the_apps_settings_and_hooks_the_app():
    app = detstream.App("orders", broker="kafka://k:9092", topic_partitions=4, origin="shop")
    livecheck = LiveCheck.for_app(app, prefix="lc-", test_topic_name="lc-tests",
                                  send_reports=False, topic_replication_factor=2)
    assert app.livecheck is livecheck and livecheck.target is app
    assert livecheck.conf.id == "lc-orders" and livecheck.conf.web_port == 9999
    assert (livecheck.conf.broker_url, livecheck.conf.topic_partitions) == (
        app.conf.broker_url, 4)
    assert livecheck.conf.topic_replication_factor == 2 and livecheck.send_reports is False
    assert livecheck.pending_tests.topics == ("lc-tests",)
    assert livecheck.bus.topics == ("livecheck-bus",)
    assert sorted(livecheck.agents) == ["livecheck.signals", "livecheck.tests"]
    assert len(app.sensors) == 1 and app.on_produce_message.has_receivers()
    assert app.web.middlewares and app.web.client_headers


# -- the parts --------------------------------------------------------------------------------------
def test_a_test_travels_as_headers_and_comes_back_from_them():
    test = TestExecution(id="t-1", case_name="shop.order", timestamp=now(), test_args=[1],
                         test_kwargs={"a": 2}, expires=now() + timedelta(hours=3))
    as_bytes = {k: v.encode() for k, v in test.as_headers().items()}
    for headers in (test.as_headers(), as_bytes):
        back = TestExecution.from_headers(headers)
        assert back is not None
        assert (back.id, back.case_name, back.timestamp, back.expires) == (
            test.id, test.case_name, test.timestamp, test.expires)
    assert TestExecution.from_headers({"other": b"x"}) is None
    assert test.shortident == "order:t-1" and not test.is_expired


def test_a_report_comes_back_from_its_topic_with_its_state_and_its_test():
    test = TestExecution(id="t-1", case_name="c", timestamp=now(), test_args=[],
                         test_kwargs={}, expires=now())
    report = TestReport(case_name="c", state=State.TIMEOUT, test=test, runtime=1.5,
                        signal_latency={"s": 0.5}, error="late", traceback=None)
    back = TestReport.loads(report.dumps())
    assert back == report and back.state is State.TIMEOUT and back.test == test


def test_resolutions_keep_a_signal_for_its_test_and_wake_exactly_the_test_waiting_for_it():
    event = detstream.livecheck.SignalEvent(signal_name="s", case_name="c", key="t1", value=1)

    async def main() -> Any:
        resolutions = Resolutions(max_kept=2)
        resolutions.resolve(("s", "c", "t1"), event)
        early = await resolutions.wait(("s", "c", "t1"), timeout=1.0)  # came before the wait
        waiting = asyncio.ensure_future(resolutions.wait(("s", "c", "t2"), timeout=5.0))
        other = asyncio.ensure_future(resolutions.wait(("s", "c", "t3"), timeout=5.0))
        await asyncio.sleep(1.0)
        resolutions.resolve(("s", "c", "t2"), event)
        late = await waiting
        with pytest.raises(asyncio.TimeoutError):
            await other
        timed_out_at = asyncio.get_running_loop().time()
        resolutions.resolve(("s", "c", "t4"), event)  # keeps two: t1 is dropped
        dropped = resolutions.get(("s", "c", "t1"))
        resolutions.forget("c", "t2")
        return early, late, timed_out_at, dropped, len(resolutions)

    early, late, timed_out_at, dropped, kept = run_sandboxed(main, seed=1)
    assert early is event and late is event and timed_out_at == pytest.approx(5.0)
    assert dropped is None and kept == 1
