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

* at the start one full collection frees what the caller and earlier runs
  left behind (a sweep's previous report, garbage by now); then
  ``gc.freeze()`` moves the caller's heap (pytest, imported modules) out of
  the collector's sight, with no garbage in it whose finalizer an in-run
  full collection (below) could run;
* automatic collection is off; every ``young_every`` loop iterations the
  young generation is collected (what the run allocated since the last
  collection) and its survivors are frozen too, and at iterations that
  double (``full_at``, ``2 * full_at``, ...) the whole heap is unfrozen,
  collected and frozen again, so a long run still reclaims cyclic garbage
  (a crashed worker's App) in amortised linear time. Loop iterations are a
  function of the schedule, so the points are the same in every run of a
  seed, whatever the process;
* at the end the heap is unfrozen and the collector enabled again if it
  was, so pytest and user code see the collector as they left it. No
  collection runs there, and none is due right after: what the run made
  since its last young collection is moved to the old generation too (a
  freeze before the unfreeze), instead of filling the young one that the
  caller's next allocation would collect.

Why survivors are frozen rather than promoted: CPython starts a full
collection once the objects that young collections promoted to the old
generation outnumber a quarter of those a full collection last found there.
A run promotes its whole heap (a few hundred thousand objects at benchmark
size), so with promoted survivors the first allocation after the run (still
inside ``sim.runner.run``) started a full collection that walked the
caller's heap and the run's, which its report keeps alive: a large share of
a benchmark run's CPU, for almost nothing freed. Frozen objects are not
counted as promoted, and ``gc.unfreeze`` does not count them either, so no
full collection is due when the run ends. The run's garbage is collected
where the collection frees it: in a sweep by the next run's start (the
report dropped by then), else by the caller's next full collection. One
full collection per run, as before, at its start. A young collection walks
the same objects as before (the young generations held only what the run
made since the last one); only the in-run full collections (long runs)
also walk the caller's heap, which the collection at the start left
without garbage.

A run should also keep few objects the collector must walk at all: a
``TP`` per partition, not per record (``sim.trace``, ``sim.history``), and
immutable tuples of atoms (which the collector untracks) where a list would
be one more container per record.

If the caller had frozen objects itself (``gc.get_freeze_count() > 0``), the
policy neither freezes nor unfreezes: unfreezing would undo the caller's
freeze. Then the young collections promote their survivors, and a full
collection at the end walks the run's heap (the caller's own is frozen),
so that the automatic collector does not start one over both. A caller that
also turned the collector off needs no collection at the end: the next
run's start collects the run's garbage (a sweep drops each report).

That is what a process that does nothing but run seeds does
(:func:`own_the_heap`, a ``--jobs`` sweep's worker processes): its heap is
frozen once, so the collection at each run's start walks only what the
previous run left (its report, garbage by then), not the interpreter's
modules again (the interpreter's heap was about 32k of the 52k objects
that collection walked after a 3-worker chaos seed of word count; the GC
share of such seeds fell from 0.16 to 0.075, bench/sim_speed.py chaos).
"""

from __future__ import annotations

import gc
from types import TracebackType

from .loop import VirtualEventLoop

__all__ = ["SimGcPolicy"]

#: loop iterations between two collections of the young generations.
YOUNG_EVERY = 512
#: loop iteration of the first full collection during a run; the next ones at 2x, 4x, ...
#: Most runs end long before it (a 3-worker chaos seed of word count: ~3,000 iterations).
#: A large one finds little to free there: at 100 workers (bench/sim_scale.py) a first full
#: collection at 65,536 iterations walked 186k objects, freed none (a retired worker's App
#: stays referenced by the run) and took 7% of the run's CPU.
FULL_AT = 262_144

#: ``gc.get_stats()[2]["collections"]`` when the last run in this process ended (None: no run yet).
_full_collections_at_last_exit: int | None = None
#: ``own_the_heap`` ran in this process.
_heap_owned = False


def own_the_heap() -> None:
    """In a process that only runs simulations: freeze its heap once and leave the collector off.

    For a sweep's worker processes (``sim.parallel``), never for a process
    whose other code needs the collector (pytest, a user's program): the
    heap frozen here is never collected again, and between runs nothing is
    collected until the next run starts (module docstring). Idempotent.
    """
    global _heap_owned
    if _heap_owned:
        return
    gc.collect()
    gc.freeze()
    gc.disable()
    _heap_owned = True


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
        if self._froze or _full_collections_at_last_exit == _full_collections():
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
            # What the run made since its last young collection (the final checks, the
            # report) joins the rest in the old generation rather than waiting in the young
            # one, where the first collection after the run walked it all (30-45 ms after a
            # word count bench run). Nothing was promoted: no full collection is due.
            gc.freeze()
            gc.unfreeze()
        elif self._was_enabled:
            gc.collect()  # the run's heap (the caller's is frozen), and nothing promoted is pending
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
        if not self._froze:
            gc.collect(generation)
        elif generation == 2:
            gc.unfreeze()
            gc.collect()
            gc.freeze()
        else:
            gc.collect(0)  # the young generations: gen 1 is empty, survivors are frozen at once
            gc.freeze()
        self.collections.append((iteration, generation))
