"""What the engine needs from the application it runs, as small protocols.

The conductor, the committers and the rebalance guard are built with a host
and reach the rest of the application only through the members named here:
settings, the tracer, the table set, the producer, the transport, the
subscriptions, the rebalance hooks and the crash path. ``detstream.App`` implements ``EngineHost``
(mypy checks it where the App builds its conductor); an engine test may hand
in any object that does. Naming the seam keeps the engine from growing new
reaches into the App: a new need is a new member here, visible in review.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from detstream._types import TP, ConsumerRecord
    from detstream.settings import Settings
    from detstream.signals import Signal
    from detstream.topic import Topic
    from detstream.tracing import Tracer
    from detstream.transport.base import Admin, Consumer, Transport

    from .buffer import SubscriberBuffer
    from .producer import ProducerBuffer

__all__ = ["EngineHost", "EngineLog", "EngineTables", "SensorHooks", "StandbyReaders"]


class EngineLog(Protocol):
    """The host's logger (mode's service logger: printf-style arguments)."""

    def info(self, message: str, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, message: str, *args: Any, **kwargs: Any) -> None: ...
    def error(self, message: str, *args: Any, **kwargs: Any) -> None: ...
    def exception(self, message: str, *args: Any, **kwargs: Any) -> None: ...


class SensorHooks(Protocol):
    """The sensor hooks the engine calls (``app.sensors``, a ``SensorDelegate``).

    Every caller checks ``enabled`` first: with no sensor registered the engine
    makes no hook call at all. The rebalance hooks are not here: the engine calls
    the host's (``EngineHost.on_rebalance_start``, ...), which tell the sensors.
    """

    enabled: bool
    #: some sensor keeps committed and log end offsets (``on_tp_commit``, ``track_tp_end_offset``).
    offsets_watched: bool

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None: ...
    def on_message_out(self, tp: Any, offset: int, message: Any) -> None: ...
    def on_commit_initiated(self, consumer: Any) -> Any: ...
    def on_commit_completed(self, consumer: Any, state: Any) -> None: ...
    def on_send_initiated(
        self, producer: Any, topic: str, message: Any, keysize: int, valsize: int
    ) -> Any: ...
    def on_send_completed(self, producer: Any, state: Any, metadata: Any) -> None: ...
    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None: ...
    def on_topic_buffer_full(self, tp: Any) -> None: ...
    def on_assignment_start(self, assignor: Any) -> Any: ...
    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None: ...
    def on_assignment_completed(self, assignor: Any, state: Any) -> None: ...
    def on_tp_commit(self, offsets: Any) -> None: ...
    def track_tp_end_offset(self, tp: Any, offset: int) -> None: ...


class StandbyReaders(Protocol):
    """The standby changelog readers of the tables (stopped before the final commit)."""

    async def stop(self) -> None: ...


class EngineTables(Protocol):
    """The app's tables as the engine sees them: changelogs, recovery and the write caches."""

    @property
    def changelog_topics(self) -> set[str]: ...

    @property
    def recovering(self) -> bool: ...

    @property
    def standbys(self) -> StandbyReaders: ...

    def on_revoked(self, revoked: set[TP]) -> None: ...

    def on_assigned(
        self, consumer: Consumer, assigned: set[TP], standbys: set[TP] | None = None
    ) -> Awaitable[None]: ...

    def flush_changelogs(self) -> int: ...

    #: whether table writes must stay cached, not flushed early (the membership is in doubt).
    changelogs_held: Callable[[], bool]

    def apply(self, consumer: Consumer, tp: TP, records: list[ConsumerRecord]) -> None:
        """Apply a fetched changelog batch of a partition being recovered."""
        ...

    def finish_at_positions(self, consumer: Consumer) -> Awaitable[None]:
        """End recoveries whose consumer position passed their target (transaction markers)."""
        ...


class EngineHost(Protocol):
    """The application the conductor runs: configuration, collaborators and the crash path."""

    @property
    def conf(self) -> Settings: ...

    @property
    def log(self) -> EngineLog: ...

    @property
    def tracer(self) -> Tracer: ...

    @property
    def sensors(self) -> SensorHooks: ...

    @property
    def tables(self) -> EngineTables: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def admin(self) -> Admin: ...

    @property
    def producer(self) -> ProducerBuffer: ...

    @property
    def client_name(self) -> str: ...

    @property
    def exactly_once(self) -> bool: ...

    @property
    def leader_topic_name(self) -> str: ...

    @property
    def crashed(self) -> bool: ...

    @property
    def on_partitions_assigned(self) -> Signal: ...

    @property
    def on_partitions_revoked(self) -> Signal: ...

    @property
    def on_rebalance_complete(self) -> Signal:
        """Sent once per generation when its partitions are open (tables recovered)."""
        ...

    def on_rebalance_start(self) -> None:
        """A rebalance begins: first thing at a revoke, or at an assignment without one
        (Faust's overridable ``App.on_rebalance_start``)."""
        ...

    def on_rebalance_return(self) -> None:
        """The rebalance's assignment was taken: the listener returned."""
        ...

    def on_rebalance_end(self) -> None:
        """The rebalance's partitions are open (after ``on_rebalance_complete``)."""
        ...

    def acking_topics(self) -> list[Topic]:
        """Topics with subscribers whose offsets the engine commits."""
        ...

    def subscriber_queues(self, topic_name: str) -> list[SubscriberBuffer[Any]]:
        """The buffers a record of ``topic_name`` goes to."""
        ...

    def stop_budget(self) -> float | None:
        """Seconds the final commit may take while stopping (None: unbounded)."""
        ...

    def give_up_stopping(self) -> Awaitable[None]:
        """At least once, the stop's final commit was given up: close the producer at once,
        as an abort.

        Called before the consumer leaves the group: the writes still pending
        belong to work nobody committed, and a retry landing after the
        partitions' next owner wrote would undo its writes. The rest of the
        stop then has no time left either.
        """
        ...

    def crash(self, reason: BaseException) -> Awaitable[None]:
        """Stop the application because the engine failed (mode's ``Service.crash``)."""
        ...
