"""What Faust's metric monitors share: a stream's name in a metric, the rebalance's phase.

:class:`~detstream.contrib.statsd.StatsdMonitor`,
:class:`~detstream.contrib.datadog.DatadogMonitor` and
:class:`~detstream.contrib.prometheus.PrometheusMonitor` (and, for the phase,
:class:`~detstream.contrib.otel.OpenTelemetryMonitor`) are each a
:class:`~detstream.monitor.Monitor` that also sends every number somewhere.
Two things they must agree on live here:

- :func:`faust_stream_label`: Faust named a stream in a metric after its short
  label, so a dashboard built for a Faust worker finds ``stream.topic_orders.events``;
  the same text comes out here.
- :class:`RebalancePhase`: a rebalance is counted up at its start, moved to
  "recovering" when it returned and counted down at its end. A rebalance
  replaced by the next one before it returned (or ended) gets no return (or
  end): Faust's monitors then stayed counted up for good; the phase makes the
  ups and downs pair, whatever order the hooks come in.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["RebalancePhase", "faust_stream_label", "web_status_code"]

#: what Faust replaced with ``_`` in a stream's label (``Monitor._normalize``).
_NOT_IN_LABELS = re.compile(r"[<>:\s]+")


def faust_stream_label(stream: Any) -> str:
    """``stream`` as Faust's metric monitors named it: ``topic_orders`` for a stream of ``orders``.

    Faust's label of a stream was ``Stream: <channel class>: <channel>``; its
    monitors dropped ``Stream:``, replaced each run of ``<``, ``>``, ``:`` and
    blanks by ``_`` and lower-cased the rest. A topic is its names joined by
    ``,`` (or its compiled pattern), any other channel ``<ANON>``.
    """
    channel = getattr(stream, "channel", None)
    text = str(stream) if channel is None else f"{type(channel).__name__}: {_channel_text(channel)}"
    return _NOT_IN_LABELS.sub("_", text).strip("_").lower()


def _channel_text(channel: Any) -> str:
    """``str(channel)`` as Faust's was: a topic's names (or pattern), else ``<ANON>``."""
    topics = getattr(channel, "topics", None)
    if topics is None:
        return "<ANON>"
    pattern = getattr(channel, "pattern", None)
    if pattern:
        return str(re.compile(pattern))
    return ",".join(topics)


def web_status_code(response: Any, state: Any) -> int:
    """The status a web request was answered with (the Monitor put it in ``state``)."""
    if state is not None and "status_code" in state:
        return int(state["status_code"])
    return int(response.status) if response is not None else 500


class RebalancePhase:
    """Where this worker's rebalance is: ``None`` (none), ``"active"`` or ``"recovering"``.

    Each method says what a monitor should count, given the hook just called;
    a return or end whose state is None (the rebalance began before the
    monitor was registered) or that comes out of turn counts nothing.
    """

    def __init__(self) -> None:
        self.phase: str | None = None

    def start(self) -> tuple[bool, bool]:
        """A rebalance starts: (count one down from recovering, count one up as active).

        One still recovering is replaced (down from recovering); one still
        active stays counted once (no second up).
        """
        was, self.phase = self.phase, "active"
        return was == "recovering", was != "active"

    def returned(self, state: Any) -> bool:
        """The assignment was taken: True if an active one moves to recovering."""
        if state is None or self.phase != "active":
            return False
        self.phase = "recovering"
        return True

    def ended(self, state: Any) -> bool:
        """The partitions are open to the agents: True if a recovering one is done."""
        if state is None or self.phase != "recovering":
            return False
        self.phase = None
        return True
