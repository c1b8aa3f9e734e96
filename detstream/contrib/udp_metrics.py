"""The UDP client of the statsd and Datadog monitors: made at the first metric, never fatal.

A monitor's hooks run in the worker's loop, and a hook that raised would stop
the worker, so the client (a ``statsd.StatsClient``, a DogStatsd) is made the
first time a metric is sent, as Faust's ``cached_property`` did, through a
:class:`LazyClient` that turns a failure into a log line:

- an ``OSError`` (a host name that does not resolve yet, no route): a warning,
  metrics are dropped, and the client is made again once :data:`RETRY_AFTER`
  seconds passed on the monitor's clock (the next warning only if it then works
  and fails again later);
- anything else is not going to change: under ``detstream sim`` the sandbox
  refuses real network I/O (``RealIOForbidden``, at the address lookup). One
  warning says so, and the monitor sends nothing from then on.

Either way the monitor's own statistics (``asdict()``, the stats page,
``performance_metrics``) still count. Until a client is made, the monitor's
``client`` is a :class:`DroppedMetrics`, which takes every call a client takes and
does nothing (its timers and pipelines too), so an application sending its own metrics through
``app.monitor.client`` goes on too. Under the simulator no packet leaves and no
random number is drawn for sampling (a ``rate`` below 1 draws one per metric):
a run takes the same steps with or without the monitor.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from detstream.monitor import Monitor

from .metric_monitors import RebalancePhase

__all__ = ["RETRY_AFTER", "DroppedMetrics", "LazyClient", "UdpMetricsMonitor"]

logger = logging.getLogger(__name__)

#: seconds before a client that failed with an OSError is made again.
RETRY_AFTER = 30.0


class DroppedMetrics:
    """A client that sends nothing: every method takes any arguments and returns the dropper.

    What a method returns is the dropper again, so the clients' helper objects
    work as they are used: ``with client.timer("x"):``, ``with client.pipeline()
    as pipe: pipe.incr(...)``, ``@client.timed("x")`` (as a decorator it gives
    the function back unchanged).
    """

    def __getattr__(self, name: str) -> Callable[..., DroppedMetrics]:
        if name.startswith("__"):
            raise AttributeError(name)
        return self._drop

    def _drop(self, *args: Any, **kwargs: Any) -> DroppedMetrics:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]  # used as a decorator (``@client.timer("x")``)
        return self

    def __enter__(self) -> DroppedMetrics:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        return None

    def __repr__(self) -> str:
        return "<DroppedMetrics: no client, metrics are not sent>"


DROPPED = DroppedMetrics()


class LazyClient:
    """``make()``'s client, made at the first :meth:`get`; :data:`DROPPED` while it cannot be.

    ``owner`` names the monitor in the log (``StatsdMonitor``), ``where`` the
    destination (``statsd at localhost:8125``); ``clock`` is the monitor's.
    """

    def __init__(
        self, make: Callable[[], Any], *, owner: str, where: str, clock: Callable[[], float]
    ) -> None:
        self._make = make
        self.owner = owner
        self.where = where
        self._clock = clock
        self._client: Any = None
        #: when to try again after an OSError; None: try at the next metric.
        self._retry_at: float | None = None
        self._warned = False
        #: a failure that will not go away (the simulator's refusal): never tried again.
        self.given_up = False

    def get(self) -> Any:
        """The client, or :data:`DROPPED` when it is not made (yet, or for good)."""
        client = self._client
        if client is not None:
            return client
        if self.given_up:
            return DROPPED
        if self._retry_at is not None and self._clock() < self._retry_at:
            return DROPPED
        try:
            client = self._client = self._make()
        except OSError as exc:
            self._retry_at = self._clock() + RETRY_AFTER
            if not self._warned:
                self._warned = True
                logger.warning("%s: cannot reach %s (%s): metrics are dropped, retrying every "
                               "%.0f s; the monitor's own statistics still count",
                               self.owner, self.where, exc, RETRY_AFTER)
            return DROPPED
        except Exception as exc:  # the simulator's sandbox refuses the address lookup
            self.given_up = True
            logger.warning("%s: no client for %s (%s: %s): metrics are not sent; the monitor's "
                           "own statistics still count", self.owner, self.where,
                           type(exc).__name__, exc)
            return DROPPED
        self._retry_at = None
        self._warned = False
        return client


class UdpMetricsMonitor(Monitor):
    """What the statsd and Datadog monitors share: where they send, and a :class:`LazyClient`.

    ``host``, ``port``: the UDP server; ``prefix``: the metrics' prefix or
    namespace; ``rate``: their sample rate (1.0: all). The other keyword
    arguments are the :class:`~detstream.monitor.Monitor`'s. A subclass says
    how its client is made (:meth:`_make_client`) and names its server in
    the log (:attr:`server`).
    """

    #: the server's kind in the log (``statsd``, ``DogStatsD``).
    server = "metrics"

    host: str
    port: int
    prefix: str
    rate: float

    def __init__(
        self,
        host: str = "localhost",
        port: int = 8125,
        prefix: str = "faust-app",
        rate: float = 1.0,
        **kwargs: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.prefix = prefix
        self.rate = rate
        super().__init__(**kwargs)
        self._rebalance = RebalancePhase()
        self._client = LazyClient(self._make_client, owner=type(self).__name__,
                                  where=f"{self.server} at {host}:{port}", clock=lambda: self.time())

    def _make_client(self) -> Any:
        raise NotImplementedError

    @property
    def client(self) -> Any:
        """The client; one that drops everything while it cannot be made (:class:`DroppedMetrics`)."""
        return self._client.get()
