"""What the probes (``/health/``, ``/ready/``) and ``/metrics`` read of a running app.

Named as protocols so that these views stay readers of state the engine
keeps anyway, and so that a new reach into the App shows here, in review.
``detstream.App`` implements ``Observed``; mypy checks it where the views
pass their app in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from detstream._types import TP
    from detstream.engine.acks import OffsetTracker
    from detstream.engine.stats import ConsumerStats, SendStats
    from detstream.settings import Settings
    from detstream.tables.recovery_progress import RecoveryProgress

__all__ = ["Observed", "ObservedAgent", "ObservedConductor", "ObservedTables"]


class ObservedConductor(Protocol):
    """The group consumer's side: assignment, offsets, rebalances, commits."""

    @property
    def stats(self) -> ConsumerStats: ...

    @property
    def tracker(self) -> OffsetTracker: ...

    @property
    def taken_generation(self) -> int: ...

    @property
    def stopping(self) -> bool: ...

    def assignment(self) -> set[TP]: ...

    def consumer_offsets(self) -> dict[TP, tuple[int, int]]:
        """(position, log end) of assigned source partitions, with no broker request."""
        ...


class StandbyPartitions(Protocol):
    @property
    def partitions(self) -> set[TP]: ...


class ObservedTables(Protocol):
    """Table recovery: the recoveries running and finished, and the standby copies."""

    @property
    def progress(self) -> RecoveryProgress: ...

    @property
    def recovering(self) -> bool: ...

    @property
    def standbys(self) -> StandbyPartitions: ...


class ObservedAgent(Protocol):
    def event_counts(self) -> dict[str, int]:
        """Events the agent's streams started, by the topic they read."""
        ...


class Observed(Protocol):
    """An app as the probes and ``/metrics`` see it."""

    @property
    def conf(self) -> Settings: ...

    @property
    def client_name(self) -> str: ...

    @property
    def state(self) -> str:
        """mode's service state: ``init``, ``running``, ``stopping``, ``shutdown``, ``crashed``."""
        ...

    @property
    def crash_reason(self) -> BaseException | None: ...

    @property
    def conductor(self) -> ObservedConductor: ...

    @property
    def tables(self) -> ObservedTables: ...

    @property
    def agents(self) -> Mapping[str, ObservedAgent]: ...

    @property
    def send_stats(self) -> SendStats: ...

    def task_failure(self) -> BaseException | None:
        """The error of an engine loop or background task that died, if one did."""
        ...
