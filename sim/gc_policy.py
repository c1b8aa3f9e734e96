"""Garbage collection during a simulation run: at deterministic points, and cheap.

Why a policy: a run keeps hundreds of thousands of long-lived container
objects (trace events, write history, topic logs, the apps themselves), and
CPython's automatic collector walks all of them in every full collection,
one each time the old generation grows by a quarter, finding almost nothing
to free: a third to a half of a run's CPU at benchmark size. And automatic
collections fire after a number of allocations that depends on the process's
history (what pytest or a previous run left), so a finalizer that a
collection runs (an abandoned async generator's ``aclose``, a task's
"exception never retrieved") could reach the loop at a different step of the
run in another process.

So while a run is on (:class:`SimGcPolicy`, entered by
``sim.testing.run_sandboxed`` around the loop):

* at the start ``gc.freeze()`` moves the caller's heap (pytest, imported
  modules) out of the collector's sight; before that, if an earlier run in
  this process ended and no full collection has happened since, one full
  collection frees what it left behind (a sweep's previous report), which
  would otherwise be frozen again by every run of the sweep;
* automatic collection is off; the young generations are collected every
  ``young_every`` loop iterations, and the whole (unfrozen) heap at
  iterations that double (``full_at``, ``2 * full_at``, ...), so a long run
  still reclaims cyclic garbage (a crashed worker's App) in amortised linear
  time. Loop iterations are a function of the schedule, so the points are
  the same in every run of a seed, whatever the process;
* at the end the collector is enabled again if it was, and the frozen heap
  is unfrozen, so pytest and user code see the collector as they left it.
  The run's own garbage is collected by the automatic collector soon after
  (the run promoted much to the old generation, which triggers a full
  collection), or else at the next run's start: one full collection per run.

If the caller had frozen objects itself (``gc.get_freeze_count() > 0``), the
policy neither freezes nor unfreezes: unfreezing would undo the caller's
freeze.
"""

from __future__ import annotations

import gc
from types import TracebackType

from .loop import VirtualEventLoop

__all__ = ["SimGcPolicy"]

#: loop iterations between two collections of the young generations.
YOUNG_EVERY = 512
#: loop iteration of the first full collection during a run; the next ones at 2x, 4x, ...
FULL_AT = 65_536

#: ``gc.get_stats()[2]["collections"]`` when the last run in this process ended (None: no run yet).
_full_collections_at_last_exit: int | None = None


def _full_collections() -> int:
    return int(gc.get_stats()[-1]["collections"])


class SimGcPolicy:
    """A context manager: the collector's settings for one simulation run.

    ``attach(loop)`` schedules the in-run collections on the run's loop.
    Reentrant use is not supported (one run at a time per process, as the
    sandbox requires).
    """

    def __init__(self, *, young_every: int = YOUNG_EVERY, full_at: int = FULL_AT) -> None:
        self.young_every = young_every
        self.full_at = full_at
        #: collections this policy ran: (loop iteration, generation); for tests and benchmarks.
        self.collections: list[tuple[int, int]] = []
        self._next_full = full_at
        self._was_enabled = False
        self._froze = False

    def __enter__(self) -> SimGcPolicy:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._froze = gc.get_freeze_count() == 0
        if _full_collections_at_last_exit == _full_collections():
            gc.collect()
        if self._froze:
            gc.freeze()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _full_collections_at_last_exit
        if self._froze:
            gc.unfreeze()
        _full_collections_at_last_exit = _full_collections()
        if self._was_enabled:
            gc.enable()

    def attach(self, loop: VirtualEventLoop) -> None:
        """Collect on ``loop`` at deterministic iterations (see the module docstring)."""
        loop.call_every_iterations(self.young_every, self._collect)

    def _collect(self, iteration: int) -> None:
        if iteration >= self._next_full:
            self._next_full *= 2
            generation = 2
        else:
            generation = 1
        gc.collect(generation)
        self.collections.append((iteration, generation))
