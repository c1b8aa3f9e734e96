"""Hypothesis strategies for simulation runs, and deterministic draws for clients.

Two uses:

- in a property test, ``@given(plan=fault_plans(), seed=seeds())`` makes
  Hypothesis search the space of fault plans and seeds for a failing run, and
  shrink a failure to the fewest, earliest faults (its shrinker works on the
  plan as data, like ``detstream sim --shrink`` does on a drawn plan);
- in a ``sim_scenario``, ``sim.producer(topic, strategy)`` feeds records drawn
  from a strategy. ``draw(strategy, seed)`` makes that draw a pure function of
  the seed (and of the installed Hypothesis version), so the run stays
  reproducible.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from .faults import STALL_RANGE, Fault, FaultPlan

#: the worker fault kinds a generated plan may use (broker and network kinds have
#: parameters of their own; plans with them come from ``plan_faults``).
WORKER_KINDS = ("crash", "restart", "join", "leave", "stall")


def seeds() -> SearchStrategy[int]:
    """Seeds for ``SimOptions(seed=...)``."""
    return st.integers(min_value=0, max_value=2**32 - 1)


#: the values ``inputs()`` draws by default: a small alphabet (see its docstring).
SMALL_VALUES = (0, 5)
#: the keys ``inputs(keys=True)`` draws from by default.
SMALL_KEYS = ("k1", "k2", "k3")


def inputs(
    values: SearchStrategy[Any] | None = None,
    *,
    keys: SearchStrategy[Any] | tuple[Any, ...] | bool = False,
    min_size: int = 1,
    max_size: int = 40,
) -> SearchStrategy[list[Any]]:
    """Lists of records for an agent: for ``sim.producer(topic, records, keyed=...)``.

    ``values`` defaults to the integers 0..5. Small alphabets find bugs that
    wide ones miss: an off-by-one (``<`` for ``<=``, a bound, a dropped value)
    shows only when the input hits the exact value or repeats one, and with 6
    values nearly every list does, with 101 few do. With ``keys`` (True for
    ``SMALL_KEYS``, a tuple of keys, or a strategy), each record is a
    ``(key, value)`` pair: few keys make many records share one, so per-key
    state (tables, ordering) is exercised.
    """
    value = st.integers(*SMALL_VALUES) if values is None else values
    if keys is False:
        return st.lists(value, min_size=min_size, max_size=max_size)
    if keys is True:
        key: SearchStrategy[Any] = st.sampled_from(SMALL_KEYS)
    elif isinstance(keys, tuple):
        key = st.sampled_from(keys)
    else:
        key = keys
    return st.lists(st.tuples(key, value), min_size=min_size, max_size=max_size)


def fault_plans(
    *,
    workers: int = 3,
    duration: float = 30.0,
    kinds: tuple[str, ...] = ("crash", "restart", "stall"),
    min_faults: int = 0,
    max_faults: int = 4,
) -> SearchStrategy[FaultPlan]:
    """Plans of ``min_faults`` to ``max_faults`` worker faults in the first 80% of ``duration``.

    Targets are the initial workers ``w1..w{workers}``; ``join`` adds ``w{workers+1}``
    and onwards. A fault aimed at a worker that is down when it fires is skipped by
    the runner (and traced as such), so every drawn plan is valid.
    """
    unknown = set(kinds) - set(WORKER_KINDS)
    if unknown or not kinds:
        raise ValueError(f"fault_plans(kinds=...): use a non-empty subset of {WORKER_KINDS}, not {sorted(unknown)}")
    if workers < 1 or duration <= 0:
        raise ValueError("fault_plans(): workers must be >= 1 and duration > 0")
    fault = st.builds(
        _fault,
        at=st.floats(0.1 * duration, 0.8 * duration).map(lambda t: round(t, 3)),
        kind=st.sampled_from(kinds),
        target=st.integers(1, workers),
        downtime=st.floats(1.0, 20.0).map(lambda d: round(d, 3)),
        stall=st.floats(*STALL_RANGE).map(lambda d: round(d, 3)),
    )
    return st.lists(fault, min_size=min_faults, max_size=max_faults).map(lambda faults: _plan(faults, workers, kinds))


def _fault(at: float, kind: str, target: int, downtime: float, stall: float) -> Fault:
    pause = {"crash": downtime, "stall": stall}.get(kind, 0.0)
    return Fault(at, kind, f"w{target}", pause)


def _plan(faults: list[Fault], workers: int, kinds: tuple[str, ...]) -> FaultPlan:
    """Order faults by time and give each ``join`` a fresh worker name."""
    ordered = sorted(faults, key=lambda f: (f.at, f.kind, f.worker))
    joined = workers
    named = []
    for fault in ordered:
        if fault.kind == "join":
            joined += 1
            fault = Fault(fault.at, "join", f"w{joined}")
        named.append(fault)
    return FaultPlan("hypothesis", tuple(kinds), tuple(named))


def draw(strategy: SearchStrategy[Any], seed: int) -> Any:
    """One value of ``strategy``, the same for the same ``seed``.

    Hypothesis tries the simplest value first (an empty list, zero), so this
    takes the second value it generates: a random one, seeded by ``seed``.
    Uses only public API (``@given`` with ``@seed``), no example database.
    """
    if not isinstance(strategy, SearchStrategy):
        raise TypeError(f"draw() needs a hypothesis strategy, got {strategy!r}")
    found: list[Any] = []

    @settings(
        max_examples=2,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found[-1]
