"""The LiveCheck app: an App of its own that runs the cases of the app it tests.

``livecheck = app.LiveCheck()`` (or ``LiveCheck.for_app(app)``) makes an App
named ``livecheck-{app id}``, with the app's settings (``web_port`` 9999),
and makes ``app`` carry tests on (``propagation.contribute``). Its three
topics:

- ``livecheck`` (``pending_tests``): test executions, sent by
  ``case.trigger``/``maybe_trigger`` where the app under test starts work;
- ``livecheck-bus`` (``bus``): signals, sent by the app under test's code
  (``case.signal.send(value)``) while it serves a test;
- ``livecheck-report`` (``reports``): a ``TestReport`` per test run and per
  case failure (unless ``send_reports`` is off).

The app under test only sends to the first two; it needs no LiveCheck
worker running to work. While the LiveCheck app itself is not started (in
the app under test's worker) its sends go through the app under test's
producer, so they are flushed with the app's own before its offsets are
committed. ``detstream livecheck`` (or ``python proj.py livecheck``) runs the
LiveCheck app as a worker: it consumes the tests and the signals and runs
each test's case.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

from detstream.app import App
from detstream.engine.producer import ProducerBuffer
from detstream.errors import InvalidArgument
from detstream.stream import Stream
from detstream.topic import Topic

from .case import Case
from .exceptions import LiveCheckError
from .locals import current_test
from .models import SignalEvent, TestExecution, TestReport
from .patches import patch_all
from .propagation import attach_test_headers, contribute, current_test_headers
from .resolutions import Resolutions
from .signals import BaseSignal, Signal

__all__ = ["LiveCheck"]

#: the Case class, under a name the ``LiveCheck.Case`` attribute does not shadow.
_Case = Case


class LiveCheck(App):
    """A LiveCheck app (Faust's ``faust.livecheck.LiveCheck``); see the module doc."""

    Signal: ClassVar[type[BaseSignal[Any]]] = Signal
    Case: ClassVar[type[Case]] = Case

    #: actors resolving signals, and running tests (a test waits for its signals).
    bus_concurrency: int = 30
    test_concurrency: int = 100
    #: post a TestReport per test run and per case failure to ``report_topic_name``.
    send_reports: bool = True
    test_topic_name: str = "livecheck"
    bus_topic_name: str = "livecheck-bus"
    report_topic_name: str = "livecheck-report"

    @classmethod
    def for_app(
        cls,
        app: App,
        *,
        prefix: str = "livecheck-",
        web_port: int = 9999,
        test_topic_name: str | None = None,
        bus_topic_name: str | None = None,
        report_topic_name: str | None = None,
        bus_concurrency: int | None = None,
        test_concurrency: int | None = None,
        send_reports: bool | None = None,
        **settings: Any,
    ) -> LiveCheck:
        """The LiveCheck app of ``app``: its settings, overridden by ``settings``."""
        app_id, app_settings = app._default_options
        livecheck = cls(
            f"{prefix}{app_id}", test_topic_name=test_topic_name, bus_topic_name=bus_topic_name,
            report_topic_name=report_topic_name, bus_concurrency=bus_concurrency,
            test_concurrency=test_concurrency, send_reports=send_reports,
            **{**app_settings, "web_port": web_port, **settings},
        )
        livecheck._contribute_to_app(app)
        return livecheck

    def __init__(
        self,
        id: str,
        *,
        test_topic_name: str | None = None,
        bus_topic_name: str | None = None,
        report_topic_name: str | None = None,
        bus_concurrency: int | None = None,
        test_concurrency: int | None = None,
        send_reports: bool | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(id, **settings)
        for option, value in (
            ("test_topic_name", test_topic_name), ("bus_topic_name", bus_topic_name),
            ("report_topic_name", report_topic_name), ("bus_concurrency", bus_concurrency),
            ("test_concurrency", test_concurrency), ("send_reports", send_reports),
        ):
            if value is not None:
                setattr(self, option, value)
        #: the cases by name.
        self.cases: dict[str, _Case] = {}
        #: the app under test (``for_app``), whose producer sends for this app while it is
        #: not started itself.
        self.target: App | None = None
        #: signals received, waiting for their tests.
        self.resolutions = Resolutions()
        self.bus: Topic[SignalEvent] = self.topic(
            self.bus_topic_name, key_type=str, value_type=SignalEvent)
        self.pending_tests: Topic[TestExecution] = self.topic(
            self.test_topic_name, key_type=str, value_type=TestExecution)
        self.reports: Topic[TestReport] = self.topic(
            self.report_topic_name, key_type=str, value_type=TestReport)
        self.agent(self.bus, name="livecheck.signals",
                   concurrency=self.bus_concurrency)(self._populate_signals)
        self.agent(self.pending_tests, name="livecheck.tests",
                   concurrency=self.test_concurrency)(self._execute_tests)
        self.on_produce_message.connect(attach_test_headers)
        self.web.client_headers.append(current_test_headers)
        patch_all()  # as Faust's: every aiohttp session of the process carries the test on

    def _contribute_to_app(self, app: App) -> None:
        self.target = app
        contribute(app)
        app.livecheck = self

    @property
    def current_test(self) -> TestExecution | None:
        """The test the running code serves, if any."""
        return current_test()

    @property
    def producer(self) -> ProducerBuffer:
        """This app's producer; while it is not started, the producer of the app under test."""
        target = self.target
        if self._producer is None and target is not None and target._producer is not None:
            return target.producer
        return super().producer

    # -- cases ----------------------------------------------------------------------------
    def case(
        self,
        *,
        name: str | None = None,
        probability: float | None = None,
        warn_stalled_after: Any = 1800.0,
        active: bool | None = None,
        test_expires: Any = None,
        frequency: Any = None,
        max_history: int | None = None,
        max_consecutive_failures: int | None = None,
        url_timeout_total: float | None = None,
        url_timeout_connect: float | None = None,
        url_error_retries: int | None = None,
        url_error_delay_min: float | None = None,
        url_error_delay_backoff: float | None = None,
        url_error_delay_max: float | None = None,
        base: type[_Case] = _Case,
    ) -> Callable[[type], _Case]:
        """Make the decorated class a case of this app; the decorator returns the case (an instance).

        Its annotated ``Signal`` attributes become its signals.
        """

        def decorate(cls: type) -> _Case:
            case_cls = cls if issubclass(cls, base) else type(
                cls.__name__, (cls, base), {"__module__": cls.__module__})
            signals = []
            for index, (attr, signal_type) in enumerate(_signal_annotations(case_cls), 1):
                signal = case_cls.__dict__.get(attr)
                if not isinstance(signal, BaseSignal):
                    signal = signal_type(name=attr, index=index)
                    setattr(case_cls, attr, signal)
                signal.index = index
                signals.append(signal)
            case = case_cls(
                app=self, name=self._case_name(name or f"{cls.__module__}.{cls.__qualname__}"),
                active=active, probability=probability, warn_stalled_after=warn_stalled_after,
                signals=signals, test_expires=test_expires, frequency=frequency,
                max_history=max_history, max_consecutive_failures=max_consecutive_failures,
                url_timeout_total=url_timeout_total, url_timeout_connect=url_timeout_connect,
                url_error_retries=url_error_retries, url_error_delay_min=url_error_delay_min,
                url_error_delay_backoff=url_error_delay_backoff,
                url_error_delay_max=url_error_delay_max,
            )
            return self.add_case(case)

        return decorate

    def add_case(self, case: _Case) -> _Case:
        """Register ``case``: it runs the tests named after it, and starts with this app."""
        if case.name in self.cases:
            raise InvalidArgument(f"LiveCheck {self.conf.id!r}: a case {case.name!r} exists already")
        self.cases[case.name] = case
        self.add_dependency(case)
        return case

    def _case_name(self, name: str) -> str:
        """A case made in ``__main__`` is named after the app's origin (as on the other side)."""
        if name.startswith("__main__."):
            origin = self.conf.origin
            if not origin:
                raise InvalidArgument(
                    f"LiveCheck case {name!r} is defined in __main__: give the app origin= "
                    "(its module's import path) so that every process names it alike"
                )
            return origin + name[len("__main__"):]
        return name

    # -- reports ----------------------------------------------------------------------------
    async def post_report(self, report: TestReport) -> None:
        """Send ``report`` to the reports topic, keyed by its test's id (unless ``send_reports`` is off)."""
        if not self.send_reports:
            return
        key = report.test.id if report.test is not None else None
        await self.reports.send(key=key, value=report)

    # -- the LiveCheck worker's agents ----------------------------------------------------------
    async def _populate_signals(self, events: Stream[SignalEvent]) -> None:
        async for test_id, event in events.items():
            case = self.cases.get(self._case_name(event.case_name))
            if case is None:
                self.log.error("Received signal %r for unregistered case %r",
                               event.signal_name, event.case_name)
                continue
            await case.resolve_signal(test_id, event)

    async def _execute_tests(self, tests: Stream[TestExecution]) -> None:
        async for test_id, test in tests.items():
            case = self.cases.get(self._case_name(test.case_name))
            if case is None:
                self.log.error("Unregistered test case %r with id %r", test.case_name, test_id)
                continue
            try:
                await case.execute(test)
            except LiveCheckError:
                pass  # reported by its runner


def _signal_annotations(case_cls: type) -> Iterator[tuple[str, type[BaseSignal[Any]]]]:
    """(attribute, signal class) for each attribute annotated with a Signal type, in order.

    Annotations of the case's own classes only (not ``Case``'s); string
    annotations (``from __future__ import annotations``) are evaluated in
    their module, and one that does not evaluate is not a signal.
    """
    seen: set[str] = set()
    for klass in reversed(case_cls.__mro__):
        if klass is object or (isinstance(klass, type) and issubclass(Case, klass)):
            continue
        module = sys.modules.get(klass.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        for attr, annotation in inspect.get_annotations(klass).items():
            signal_type = _signal_class(annotation, namespace, klass)
            if signal_type is not None and attr not in seen:
                seen.add(attr)
                yield attr, signal_type


def _signal_class(annotation: Any, namespace: dict[str, Any], klass: type) -> Any:
    for _ in range(2):  # a quoted annotation under ``from __future__ import annotations`` is twice
        if not isinstance(annotation, str):
            break
        try:
            annotation = eval(annotation, namespace, dict(vars(klass)))  # noqa: S307 - the class's own annotation
        except Exception:
            return None
    origin = getattr(annotation, "__origin__", annotation)
    if isinstance(origin, type) and issubclass(origin, BaseSignal):
        return origin
    return None
