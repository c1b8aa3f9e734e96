"""The seeds of a sweep in worker processes: ``detstream sim --seeds A..B --jobs N``.

A run is single-threaded and CPU-bound, and seeds are independent, so a
sweep scales with processes. This is the one place where the simulator
uses them, and it is outside every run: the parent process only hands out
seeds and collects outcomes; each worker process runs whole seeds with
``explore.run_seed``, exactly as ``--jobs 1`` runs them in its own process,
so a seed's outcome (and trace hash) does not depend on where it ran.

Workers are started with ``spawn``: a fresh interpreter imports the target
itself, instead of a fork inheriting whatever the parent had imported or
patched. They inherit ``PYTHONHASHSEED`` (which ``detstream sim`` sets);
when it is unset, the workers get ``0``, as ``detstream sim`` would, rather
than one random string-hash seed each.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

from .explore import SeedOutcome, run_seed
from .gc_policy import own_the_heap
from .runner import SimOptions


def run_seeds(target: str, options: SimOptions, seeds: range, jobs: int) -> Iterator[SeedOutcome]:
    """Outcomes of ``seeds``, in seed order, computed by ``jobs`` worker processes.

    Each seed goes to the next free worker (a chaos seed may take several
    times as long as another). An exception in a worker is raised here, at
    its seed, and the seeds not started yet are dropped; a worker that dies
    raises ``BrokenProcessPool`` rather than hang the sweep.
    """
    executor = ProcessPoolExecutor(min(jobs, len(seeds)), mp_context=multiprocessing.get_context("spawn"))
    try:
        with _string_hash_seed():  # the workers start with the first submissions
            futures = [executor.submit(_run_one, target, options, seed) for seed in seeds]
        for future in futures:
            yield future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def _run_one(target: str, options: SimOptions, seed: int) -> SeedOutcome:
    own_the_heap()  # this worker process runs seeds and nothing else
    return run_seed(target, replace(options, seed=seed))


@contextmanager
def _string_hash_seed() -> Iterator[None]:
    """Workers started inside see ``PYTHONHASHSEED=0`` if the variable is unset here."""
    if "PYTHONHASHSEED" in os.environ:
        yield
        return
    os.environ["PYTHONHASHSEED"] = "0"
    try:
        yield
    finally:
        del os.environ["PYTHONHASHSEED"]
