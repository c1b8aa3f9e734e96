"""Coverage-guided search on top of seeds: keep the runs that reach rare paths, mutate their plans.

A sweep reaches common paths in every seed and rare ones (a retried batch
deduplicated, a standby promoted, a fetch raced by a seek, a zombie's
commit) in a few seeds out of hundreds, and a bug on a rare path is caught
in at most those few. Fuzzers (AFL) and Hypothesis' targeted search answer
this by keeping the inputs that reached something rare and mutating them.
Here the input is a run's fault plan, and "reached" is its coverage
counters: after the seeds, every other run takes a parent from the corpus
(chosen by how rare the counters it reached are), mutates a copy of its plan
(a fault moved in time, retargeted, dropped, or a new one of any kind the
profile draws, next to an existing one) and runs it with the parent's seed;
the runs between are fresh seeds, so the search keeps exploring too. A run
that reaches a counter few runs have reached joins the corpus.

Everything is drawn from ``random.Random("sim.guided:{search_seed}")``: the
same search finds the same runs. Each failing run is replayable on its own
(``detstream sim TARGET --seed S --plan FILE`` with the plan printed).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace

from .explore import SeedOutcome, run_seed, sweep
from .faults import (
    BROKER_KINDS,
    KINDS,
    LATE_GROUPS,
    PROFILES,
    Fault,
    FaultPlan,
    _Drawer,
    plan_faults,
)
from .runner import SimOptions

__all__ = ["Guided", "Probe", "guided_search", "mutate_plan"]

#: a counter reached by at most this many runs so far is rare: a run reaching it is kept.
RARE_RUNS = 2
#: how far (virtual s) a moved fault, or a new one drawn next to another, lands from it.
NEAR = 1.0


@dataclass(frozen=True)
class Probe:
    """One run of the search: the seed, the plan it ran, and what came of it."""

    seed: int
    plan: FaultPlan
    outcome: SeedOutcome
    #: the corpus entry this run's plan was mutated from (None: a plain seed).
    parent: int | None = None


@dataclass
class Guided:
    """What a search ran, kept and found."""

    probes: list[Probe] = field(default_factory=list)
    #: indexes into ``probes`` of the runs kept to mutate.
    corpus: list[int] = field(default_factory=list)
    #: per coverage counter, how many runs reached it.
    reached: Counter[str] = field(default_factory=Counter)

    @property
    def failures(self) -> list[Probe]:
        return [probe for probe in self.probes if not probe.outcome.ok]

    def add(self, probe: Probe) -> bool:
        """Record ``probe``; keep it in the corpus if it reached a rare counter. Whether kept."""
        counters = [name for name, count in probe.outcome.coverage.items() if count]
        rare = any(self.reached[name] < RARE_RUNS for name in counters)
        self.reached.update(counters)
        self.probes.append(probe)
        if rare:
            self.corpus.append(len(self.probes) - 1)
        return rare

    def rarity(self, index: int) -> float:
        """How rare what a probe reached is: the sum of 1 / (runs reaching it) over its counters."""
        coverage = self.probes[index].outcome.coverage
        return sum(1.0 / self.reached[name] for name, count in coverage.items() if count)


def guided_search(
    target: str, options: SimOptions, seeds: range, runs: int, *, search_seed: int = 0, jobs: int = 1,
) -> Guided:
    """Sweep ``seeds``, then ``runs`` more runs of mutated plans of the rarest runs."""
    rng = random.Random(f"sim.guided:{search_seed}")
    search = Guided()
    swept = sweep(target, options, seeds, jobs=jobs)
    for outcome in swept.outcomes:
        plan = plan_faults(outcome.seed, options.faults, options.workers, options.duration,
                           options.brokers)
        search.add(Probe(outcome.seed, plan, outcome))
    fresh = seeds.stop
    for number in range(runs):
        if number % 2:  # explore: a seed not run yet (its own plan, network and timing draws)
            outcome = run_seed(target, replace(options, seed=fresh))
            plan = plan_faults(fresh, options.faults, options.workers, options.duration, options.brokers)
            search.add(Probe(fresh, plan, outcome))
            fresh += 1
            continue
        if not search.corpus:
            search.corpus = list(range(len(search.probes)))  # nothing rare yet: any run will do
        parent = _pick(rng, search)
        base = search.probes[parent]
        plan = mutate_plan(rng, base.plan, options)
        outcome = run_seed(target, replace(options, seed=base.seed, plan=plan))
        search.add(Probe(base.seed, plan, outcome, parent))
    return search


def _pick(rng: random.Random, search: Guided) -> int:
    weights = [search.rarity(index) for index in search.corpus]
    return rng.choices(search.corpus, weights=weights)[0] if any(weights) else rng.choice(search.corpus)


def mutate_plan(rng: random.Random, plan: FaultPlan, options: SimOptions) -> FaultPlan:
    """A copy of ``plan`` with one to three changes: faults moved, retargeted, dropped or added."""
    faults = list(plan.faults)
    # a new fault may be of any kind the profile draws, not only of the plan's swarm subset
    kinds = tuple(k for k in _profile_kinds(options.faults) + plan.kinds if k in KINDS) or ("crash",)
    drawer = _Drawer(rng, options.workers, options.brokers)
    last = 0.9 * options.duration
    for _ in range(rng.randint(1, 3)):
        operator = rng.choice(("move", "retarget", "drop", "add", "add")) if faults else "add"
        if operator == "add":
            near = rng.choice(faults).at if faults else rng.uniform(0.1, last)
            at = round(min(max(0.1, near + rng.uniform(-NEAR, NEAR)), last), 3)
            faults.append(drawer.draw(at, kinds))
            continue
        index = rng.randrange(len(faults))
        fault = faults[index]
        if operator == "drop":
            del faults[index]
        elif operator == "move":
            at = round(min(max(0.1, fault.at + rng.uniform(-NEAR, NEAR)), last), 3)
            faults[index] = replace(fault, at=at)
        else:
            faults[index] = replace(fault, worker=_other_target(rng, fault, options))
    faults.sort(key=lambda fault: fault.at)
    used = tuple(sorted({fault.kind for fault in faults}))
    return FaultPlan("guided", used, tuple(faults))


def _profile_kinds(profile: str) -> tuple[str, ...]:
    groups = PROFILES.get(profile, ()) + LATE_GROUPS.get(profile, ())
    return tuple(dict.fromkeys(kind for _, _, kinds in groups for kind in kinds))


def _other_target(rng: random.Random, fault: Fault, options: SimOptions) -> str:
    if fault.kind in BROKER_KINDS:
        return f"b{1 + rng.randrange(options.brokers)}"
    if fault.kind == "join":
        return fault.worker  # a new worker's name: keep it
    return f"w{1 + rng.randrange(options.workers)}"
