"""Fault plans: which worker, broker and network faults happen when, drawn from the seed.

A plan is data (a list of timed faults), drawn from its own random stream
(``{seed}/faults``) so that the rest of the run does not shift when a plan
changes. Each seed also switches whole fault kinds on or off (swarm testing):
a run with only crashes reaches states a uniform mix of everything rarely does.
What a fault does at run time that needs randomness (which dropped requests
were applied) draws from the network stream, not from this one.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from detstream.errors import InvalidArgument

from .seeds import SeedStreams

#: Faults of a worker process (target ``wN``):
#: crash: kill -9 (no graceful shutdown, memory lost), restarted after ``downtime``;
#: restart: graceful stop, then start again; join: a new worker joins the group;
#: leave: a worker stops gracefully for good; stall: a zombie — the worker's group
#: consumer stops heartbeating for ``downtime`` (longer than the session timeout)
#: while its agents keep running, so the group expels it and rejects its commits
#: until it resumes and rejoins.
#: twin: a stall whose worker is replaced meanwhile: a new process with the same name
#: (transactional id) starts while the zombie runs on, until fenced or ``downtime`` ends.
WORKER_KINDS = ("crash", "restart", "join", "leave", "stall")
TWIN_KINDS = ("twin",)
#: Faults of a broker (target ``bN``): broker_crash: the broker dies, its partitions
#: fail over once the controller notices, it comes back after ``downtime``;
#: broker_restart: a controlled shutdown (leaders move first), back after ``downtime``;
#: leader_move: leadership of the broker's partitions moves to other replicas.
BROKER_KINDS = ("broker_crash", "broker_restart", "leader_move")
#: Faults of a worker's network link (target ``wN``), for ``downtime`` seconds:
#: delay: every request takes ``latency`` seconds more; drop: each request is lost
#: with probability ``loss`` (the client times out and retries; a lost response
#: means the broker applied it).
LINK_KINDS = ("delay", "drop")
#: Faults of the cluster's view of a worker's host (target ``wN``), for ``downtime``
#: seconds: refuse: the brokers refuse its produce and offset-lookup requests non-retriably (an
#: authorization failure, as while an ACL is being changed). The sends fail on their
#: futures only; the engine must fail their events and redo them, never commit past them.
#: deny_reads: the brokers refuse its fetches and offset commits non-retriably (authorization);
#: aiokafka raises that from getmany/commit, the engine crashes the app and the work is redone.
REFUSAL_KINDS = ("refuse", "deny_reads")
#: cut: the worker's host is cut off from the network (every request and response lost)
#: for ``downtime`` seconds, as a ``drop`` of them all: often past the session timeout,
#: so the group expels a worker that never stopped, with its requests held until the
#: link heals (a commit's writes then land after the partitions' next owner wrote).
CUT_KINDS = ("cut",)
KINDS = WORKER_KINDS + TWIN_KINDS + BROKER_KINDS + LINK_KINDS + REFUSAL_KINDS + CUT_KINDS

#: how long a drawn stall lasts (virtual s): past the 60 s session timeout of the sim consumer.
STALL_RANGE = (65.0, 90.0)
#: downtimes (virtual s) drawn for each kind that has one.
DOWNTIME_RANGES = {
    "crash": (1.0, 20.0),
    "stall": STALL_RANGE,
    "twin": STALL_RANGE,
    "broker_crash": (1.0, 20.0),
    "broker_restart": (0.5, 5.0),
    "delay": (1.0, 10.0),
    "drop": (0.5, 8.0),
    "refuse": (0.5, 5.0),
    "deny_reads": (0.5, 5.0),
}
#: how long a drawn cut lasts (virtual s), one range drawn per cut: past a short session
#: (the zoo's 6 s one), or past the sim consumer's default 60 s session.
CUT_RANGES = ((4.0, 15.0), (62.0, 80.0))
#: extra latency (virtual s) a delay fault adds to each request.
DELAY_RANGE = (0.05, 2.0)
#: share of requests a drop fault loses (1.0: a partition of the worker's host).
LOSS_RANGE = (0.1, 1.0)

#: share of drawn crashes armed to fire just after a commit of their worker (buggify-style).
COMMIT_TRIGGERED_SHARE = 0.5
#: how long after that commit (virtual s).
AFTER_COMMIT_RANGE = (0.0, 0.25)
#: share of drawn refusals armed to fire when their worker next takes an assignment.
ASSIGNMENT_TRIGGERED_SHARE = 0.5
#: share of drawn graceful stops (restart, leave) made while the cluster is unreachable,
#: and for how long (virtual s): past the 60 s shutdown timeout of a simulated worker.
UNREACHABLE_STOP_SHARE = 0.25
UNREACHABLE_RANGE = (62.0, 75.0)

#: broker and network faults: drawn on top of the worker faults, not instead of them.
INFRA_KINDS = BROKER_KINDS + LINK_KINDS

#: profile -> (min, max, kinds) per group: worker faults, broker and network faults, and
#: (chaos) refusals. Groups are drawn in this order, so a group added later leaves the
#: faults a seed drew before it as they were.
PROFILES: dict[str, tuple[tuple[int, int, tuple[str, ...]], ...]] = {
    "none": (),
    "default": ((1, 3, ("crash", "restart")), (1, 2, INFRA_KINDS)),
    "chaos": ((3, 8, WORKER_KINDS), (2, 5, INFRA_KINDS), (1, 2, ("refuse",))),
}
#: profile -> groups drawn after every other fault (and after the unreachable stops), so that
#: adding them left the plans of every seed as they were.
LATE_GROUPS: dict[str, tuple[tuple[int, int, tuple[str, ...]], ...]] = {
    "chaos": ((0, 1, ("deny_reads",)), (0, 1, TWIN_KINDS), (0, 1, CUT_KINDS)),
}


#: the import under which the reprs of ``Fault`` and ``FaultPlan`` evaluate back to equal values.
REPR_IMPORT = "from sim.faults import Fault, FaultPlan"


class _PasteableRepr:
    """A repr that is Python: pasted after ``REPR_IMPORT`` it rebuilds an equal value.

    Hypothesis prints a falsifying example through its pretty printer, which
    otherwise shows how a strategy built the value (``_plan([...], workers,
    kinds)``, naming variables of the strategy's closure): ``_repr_pretty_``
    makes it print this repr instead.
    """

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


@dataclass(frozen=True, repr=False)
class Fault(_PasteableRepr):
    """One timed fault. ``worker`` names its target: a worker ``wN``, or a broker ``bN``."""

    at: float
    kind: str
    worker: str
    downtime: float = 0.0
    #: extra request latency of a ``delay`` fault (virtual s).
    latency: float = 0.0
    #: share of requests a ``drop`` fault loses.
    loss: float = 1.0
    #: a ``crash`` armed at ``at`` fires this many seconds after the worker's next commit
    #: (None: at ``at``). Commits are where ordering bugs live: a crash just after one finds
    #: work that was committed but not done, which a crash at a uniform time rarely hits.
    after_commit: float | None = None
    #: a ``refuse`` armed at ``at`` fires when its worker next takes an assignment (then
    #: the rebalance listener's own requests are refused, a window uniform times miss).
    at_assignment: bool = False
    #: a ``restart`` or ``leave`` whose graceful stop begins as the worker's host loses the
    #: cluster (every request dropped) for ``downtime`` seconds: longer than the shutdown
    #: timeout, so a stop that waits for the brokers is cut off (SIGTERM, broker unreachable).
    unreachable: bool = False

    def describe(self) -> str:
        text = f"t={self.at:.3f}s {self.kind} {self.worker}"
        if self.at_assignment:
            text += " at its next assignment"
        if self.unreachable:
            return text + f" while the cluster is unreachable for {self.downtime:.3f}s"
        if self.kind == "crash" and self.after_commit is not None:
            return text + f" (down {self.downtime:.3f}s) {self.after_commit:.3f}s after its next commit"
        if self.kind in ("crash", "broker_crash", "broker_restart"):
            return text + f" (down {self.downtime:.3f}s)"
        if self.kind == "delay":
            return text + f" (+{self.latency:.3f}s for {self.downtime:.3f}s)"
        if self.kind == "drop":
            return text + f" ({self.loss:.0%} for {self.downtime:.3f}s)"
        if self.kind in ("stall", "twin", "refuse", "deny_reads", "cut"):
            return text + f" (for {self.downtime:.3f}s)"
        return text

    def __repr__(self) -> str:
        """``Fault(at=..., kind=..., worker=...)`` plus every field that differs from its default."""
        parts = [f"at={self.at!r}", f"kind={self.kind!r}", f"worker={self.worker!r}"]
        for spec in fields(self)[3:]:
            value = getattr(self, spec.name)
            if value != spec.default:
                parts.append(f"{spec.name}={value!r}")
        return f"Fault({', '.join(parts)})"

    def to_dict(self) -> dict[str, Any]:
        """The plan file form: ``latency`` and ``loss`` only for the kinds that use them."""
        data = asdict(self)
        if self.kind != "delay":
            del data["latency"]
        if self.kind != "drop":
            del data["loss"]
        if self.after_commit is None:
            del data["after_commit"]
        if not self.at_assignment:
            del data["at_assignment"]
        if not self.unreachable:
            del data["unreachable"]
        return data


@dataclass(frozen=True, repr=False)
class FaultPlan(_PasteableRepr):
    """A run's faults, and the profile and kinds they were drawn with; ``repr`` is Python."""

    profile: str
    kinds: tuple[str, ...]
    faults: tuple[Fault, ...] = field(default_factory=tuple)

    def __repr__(self) -> str:
        return f"FaultPlan(profile={self.profile!r}, kinds={self.kinds!r}, faults={self.faults!r})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "kinds": list(self.kinds),
            "faults": [fault.to_dict() for fault in self.faults],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

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
            expected = "b" if fault.kind in BROKER_KINDS else "w"
            if not (fault.worker[:1] == expected and fault.worker[1:].isdigit()):
                raise ValueError(
                    f"fault {fault.kind!r} targets {fault.worker!r}: expected {expected}1, {expected}2, ..."
                )
        kinds = tuple(data.get("kinds") or sorted({f.kind for f in faults}))
        return cls(data.get("profile", "file"), kinds, faults)

    def without(self, index: int) -> FaultPlan:
        return FaultPlan(self.profile, self.kinds, self.faults[:index] + self.faults[index + 1 :])

    def without_kinds(self, kinds: tuple[str, ...]) -> FaultPlan:
        """The plan with no fault of ``kinds``: a seed's plan as drawn before they were added.

        A kind added in a late group is drawn after every other fault of the
        seed, so what is left is the plan the seed drew before (and the same
        run, fault for fault): what a test pinned to a schedule it found runs.
        """
        return FaultPlan(
            self.profile, tuple(k for k in self.kinds if k not in kinds),
            tuple(f for f in self.faults if f.kind not in kinds),
        )


def plan_faults(
    seed: int, profile: str, workers: int, duration: float, brokers: int = 3
) -> FaultPlan:
    """Draw the plan for ``seed``: per group of kinds, which are on (swarm), counts, times, targets.

    Worker faults are drawn first, then broker and network faults on top of
    them, so adding the latter did not make crashes rarer (a seed's worker
    faults are the ones it drew before broker and network faults existed).
    """
    if profile not in PROFILES:
        raise InvalidArgument(f"unknown fault profile {profile!r}: use one of {sorted(PROFILES)}")
    rng = SeedStreams(seed).faults()
    drawer = _Drawer(rng, workers, brokers)
    kinds: list[str] = []
    faults: list[Fault] = []
    for group in PROFILES[profile]:
        _draw_group(rng, drawer, duration, group, kinds, faults)
    faults = [_maybe_unreachable(rng, fault) for fault in faults]  # drawn late: the rest stay
    for group in LATE_GROUPS.get(profile, ()):
        _draw_group(rng, drawer, duration, group, kinds, faults)
    faults.sort(key=lambda fault: fault.at)  # stable: equal times keep their drawing order
    return FaultPlan(profile, tuple(kinds), tuple(faults))


def _draw_group(
    rng: random.Random, drawer: _Drawer, duration: float,
    group: tuple[int, int, tuple[str, ...]], kinds: list[str], faults: list[Fault],
) -> None:
    """One group: which of its kinds are on (swarm), how many faults, when, which."""
    low, high, allowed = group
    enabled = tuple(k for k in allowed if rng.random() < 0.6) or (rng.choice(allowed),)
    count = rng.randint(low, high)
    times = sorted(round(rng.uniform(0.1, 0.8) * duration, 3) for _ in range(count))
    if count:
        kinds.extend(enabled)
    faults.extend(drawer.draw(at, enabled) for at in times)


def _maybe_unreachable(rng: random.Random, fault: Fault) -> Fault:
    """Some graceful stops begin as their host loses the cluster (SIGTERM, broker unreachable)."""
    if fault.kind not in ("restart", "leave") or rng.random() >= UNREACHABLE_STOP_SHARE:
        return fault
    return replace(fault, unreachable=True, downtime=round(rng.uniform(*UNREACHABLE_RANGE), 3))


class _Drawer:
    """Draws one fault at a time, tracking which workers exist and which brokers are down."""

    def __init__(self, rng: random.Random, workers: int, brokers: int):
        self.rng = rng
        self.workers = workers
        self.alive = [f"w{i + 1}" for i in range(workers)]
        self.next_index = workers + 1
        self.brokers = brokers
        #: broker -> when the last drawn broker fault on it ends.
        self.broker_back: dict[int, float] = {}

    def draw(self, at: float, kinds: tuple[str, ...]) -> Fault:
        """One fault at ``at`` of one of ``kinds`` (faults of one group come in time order)."""
        kind = self.rng.choice(kinds)
        if kind == "leave" and len(self.alive) <= 1:
            kind = "join" if "join" in kinds else "restart"
        if kind in BROKER_KINDS:
            broker = self._broker(at)
            if broker is None:  # keep one broker up: a dead cluster tests nothing
                kind, target = "leader_move", f"b{1 + self.rng.randrange(self.brokers)}"
            else:
                target = f"b{broker}"
        else:
            target = self._worker(kind)
        downtime = self._downtime(kind)
        latency = round(self.rng.uniform(*DELAY_RANGE), 3) if kind == "delay" else 0.0
        loss = round(self.rng.uniform(*LOSS_RANGE), 2) if kind == "drop" else 1.0
        if kind in ("broker_crash", "broker_restart"):
            self.broker_back[int(target[1:])] = at + downtime
        after_commit = None
        if kind == "crash" and self.rng.random() < COMMIT_TRIGGERED_SHARE:
            after_commit = round(self.rng.uniform(*AFTER_COMMIT_RANGE), 3)
        at_assignment = kind == "refuse" and self.rng.random() < ASSIGNMENT_TRIGGERED_SHARE
        return Fault(at, kind, target, downtime, latency, loss, after_commit, at_assignment)

    def _worker(self, kind: str) -> str:
        if kind in LINK_KINDS or kind in REFUSAL_KINDS or kind in CUT_KINDS:  # a starting worker's host
            return f"w{1 + self.rng.randrange(self.workers)}"
        if kind == "join":
            worker = f"w{self.next_index}"
            self.next_index += 1
            self.alive.append(worker)
            return worker
        worker = self.rng.choice(self.alive)
        if kind == "leave":
            self.alive.remove(worker)
        return worker

    def _broker(self, at: float) -> int | None:
        """A broker that is up at ``at``, if stopping it leaves another one up."""
        up = [b for b in range(1, self.brokers + 1) if self.broker_back.get(b, 0.0) <= at]
        if len(up) <= 1:
            return None
        return self.rng.choice(up)

    def _downtime(self, kind: str) -> float:
        bounds = self.rng.choice(CUT_RANGES) if kind == "cut" else DOWNTIME_RANGES.get(kind)
        return round(self.rng.uniform(*bounds), 3) if bounds else 0.0
