"""The conductor as the group consumer's rebalance listener, failing loudly.

Kafka clients call the rebalance listener from their group coordination and
do not let it fail: aiokafka logs the exception and goes on with the
assignment installed, so a worker whose table store could not open (two
workers given one ``--datadir``: RocksDB is locked) kept running with its
tables not recovered. The simulator's consumer would lose its coordination
task instead. Neither is acceptable: a worker that cannot take its
assignment must not run half set up.

``GuardedListener`` is what the engine subscribes with, on every driver. When
the conductor's ``on_partitions_assigned`` or ``on_partitions_revoked``
raises, it

1. drops every partition without committing (``Conductor.lose_partitions``):
   no record of them reaches an agent any more and no offset of them is
   committed, so their next owner does the work;
2. crashes the app with a ``RebalanceListenerError`` naming the step, the
   partitions and the cause. ``detstream worker`` then stops and exits 1
   (``crashed: RebalanceListenerError: ...``); a simulated worker exits and
   its process supervisor restarts it, as for any app crash;
3. ignores the callbacks that follow (the client keeps coordinating until the
   worker stops): the app never takes another assignment half way.

A cancellation (the worker stopping while the listener runs) is not a
failure and propagates as it did. There is no retry here: a failure that may
pass (a RocksDB lock still held by a worker that is exiting) is retried by
restarting the process, which the supervisor does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detstream._types import TP
from detstream.errors import RebalanceListenerError
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant

if TYPE_CHECKING:
    from .conductor import Conductor


#: re-opens issue 9's half-assigned worker: a listener failure is logged and swallowed (aiokafka's way).
LISTENER_FAILURE_SWALLOWED = register_mutant(
    "listener-failure-swallowed",
    "a failing rebalance listener is logged and the worker runs on half assigned",
)


class GuardedListener:
    """Calls the conductor's rebalance callbacks; a failure crashes the app, never half assigned."""

    def __init__(self, conductor: Conductor) -> None:
        self.conductor = conductor
        #: the first failure; once set, later callbacks are not passed on.
        self.failure: RebalanceListenerError | None = None

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        if self.failure is None:
            try:
                await self.conductor.on_partitions_revoked(revoked)
            except Exception as exc:
                await self._failed("on_partitions_revoked", revoked, exc)

    async def on_partitions_assigned(self, assigned: set[TP]) -> None:
        if self.failure is None:
            try:
                await self.conductor.on_partitions_assigned(assigned)
            except Exception as exc:
                await self._failed("on_partitions_assigned", assigned, exc)

    # -- the assignment hooks (sensors): the driver's assignor calls them on the leader ---
    def on_assignment_start(self, assignor: Any) -> Any:
        return self.conductor.on_assignment_start(assignor)

    def on_assignment_completed(self, assignor: Any, state: Any) -> None:
        self.conductor.on_assignment_completed(assignor, state)

    def on_assignment_error(self, assignor: Any, state: Any, exc: BaseException) -> None:
        self.conductor.on_assignment_error(assignor, state, exc)

    async def _failed(self, step: str, tps: set[TP], exc: Exception) -> None:
        conductor = self.conductor
        host = conductor.host
        host.tracer.record("engine-error", error=type(exc).__name__, step=step)
        if mutant_on(LISTENER_FAILURE_SWALLOWED):
            # as aiokafka with the old engine: logged, and the assignment goes on half set up
            host.log.error("listener %s failed: %r (swallowed)", step, exc)
            if step == "on_partitions_assigned":
                changelogs = host.tables.changelog_topics
                conductor._opening = {tp for tp in tps if tp.topic not in changelogs}
                await conductor._open_ready()
            return
        shown = ", ".join(str(tp) for tp in sorted(tps)[:8]) + (" ..." if len(tps) > 8 else "")
        error = RebalanceListenerError(
            f"the worker could not take its assignment: {step} failed for "
            f"{len(tps)} partitions ({shown or 'none'}): {type(exc).__name__}: {exc}",
            step=step, tps=frozenset(tps),
        )
        error.__cause__ = exc
        self.failure = error
        host.log.error(
            "rebalance listener failed in %s: %r; dropping every partition uncommitted and "
            "crashing the app (a worker never runs half assigned)", step, exc, exc_info=exc,
        )
        conductor.lose_partitions()
        await host.crash(error)
