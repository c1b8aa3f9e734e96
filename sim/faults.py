"""Fault plans: which worker faults happen when, drawn from the seed.

A plan is data (a list of timed faults), drawn from its own random stream
(``{seed}/faults``) so that the rest of the run does not shift when a plan
changes. Each seed also switches whole fault kinds on or off (swarm testing):
a run with only crashes reaches states a uniform mix of everything rarely does.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from detstream.errors import InvalidArgument

#: crash: kill -9 (no graceful shutdown, memory lost), restarted after ``downtime``;
#: restart: graceful stop, then start again; join: a new worker joins the group;
#: leave: a worker stops gracefully for good; stall: a zombie — the worker's group
#: consumer stops heartbeating for ``downtime`` (longer than the session timeout)
#: while its agents keep running, so the group expels it and rejects its commits
#: until it resumes and rejoins.
KINDS = ("crash", "restart", "join", "leave", "stall")

#: how long a drawn stall lasts (virtual s): past the 60 s session timeout of the sim consumer.
STALL_RANGE = (65.0, 90.0)

PROFILES = {
    #: profile -> (min faults, max faults, kinds it may use)
    "none": (0, 0, ()),
    "default": (1, 3, ("crash", "restart")),
    "chaos": (3, 8, KINDS),
}


@dataclass(frozen=True)
class Fault:
    at: float
    kind: str
    worker: str
    downtime: float = 0.0

    def describe(self) -> str:
        text = f"t={self.at:.3f}s {self.kind} {self.worker}"
        if self.kind == "crash":
            return text + f" (down {self.downtime:.3f}s)"
        if self.kind == "stall":
            return text + f" (for {self.downtime:.3f}s)"
        return text


@dataclass(frozen=True)
class FaultPlan:
    profile: str
    kinds: tuple[str, ...]
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> FaultPlan:
        """Read a plan written by ``to_json`` (or by hand); validates every fault."""
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"fault plan {str(path)!r} is not a valid plan file: {exc}") from exc

    @classmethod
    def from_dict(cls, data: dict) -> FaultPlan:
        try:
            faults = tuple(Fault(**f) for f in data.get("faults", []))
        except TypeError as exc:
            raise ValueError(f"bad fault entry: {exc}") from exc
        for fault in faults:
            if fault.kind not in KINDS:
                raise ValueError(f"unknown fault kind {fault.kind!r}; use one of {KINDS}")
        kinds = tuple(data.get("kinds") or sorted({f.kind for f in faults}))
        return cls(data.get("profile", "file"), kinds, faults)

    def without(self, index: int) -> FaultPlan:
        return FaultPlan(self.profile, self.kinds, self.faults[:index] + self.faults[index + 1 :])


def plan_faults(seed: int, profile: str, workers: int, duration: float) -> FaultPlan:
    """Draw the plan for ``seed``: fault count, enabled kinds (swarm), times and targets."""
    if profile not in PROFILES:
        raise InvalidArgument(f"unknown fault profile {profile!r}: use one of {sorted(PROFILES)}")
    low, high, allowed = PROFILES[profile]
    rng = random.Random(f"{seed}/faults")
    if not allowed:
        return FaultPlan(profile, ())
    kinds = tuple(k for k in allowed if rng.random() < 0.6) or (rng.choice(allowed),)
    count = rng.randint(low, high)
    times = sorted(round(rng.uniform(0.1, 0.8) * duration, 3) for _ in range(count))
    alive = [f"w{i + 1}" for i in range(workers)]
    next_index = workers + 1
    faults = []
    for at in times:
        kind = rng.choice(kinds)
        if kind == "leave" and len(alive) <= 1:
            kind = "join" if "join" in kinds else "restart"
        if kind == "join":
            worker = f"w{next_index}"
            next_index += 1
            alive.append(worker)
        else:
            worker = rng.choice(alive)
            if kind == "leave":
                alive.remove(worker)
        downtime = 0.0
        if kind == "crash":
            downtime = round(rng.uniform(1.0, 20.0), 3)
        elif kind == "stall":
            downtime = round(rng.uniform(*STALL_RANGE), 3)
        faults.append(Fault(at, kind, worker, downtime))
    return FaultPlan(profile, kinds, tuple(faults))
