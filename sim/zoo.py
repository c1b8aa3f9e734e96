"""The sim's workload zoo: apps that together reach the engine paths bugs live on.

Each exercises something the others do not (an agent that awaits per
event, output forwarded without awaiting and refused by the leader, windows
that expire, standbys, RocksDB tables under kill -9, concurrent actors,
``take`` batches, agent RPC, a producing timer, a GlobalTable join, chained
``group_by``, static group membership, zombies of a short session at least once), and each has exact checks. ``detstream sim --zoo --seeds
A..B`` sweeps them all; ``scripts/mutation-score`` runs every planted bug
against them.

The workloads are paths in this repository (examples, the small apps the
tests keep, and the zoo's own apps in ``sim/workloads/``), in sweep order:
the examples first.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .runner import SimOptions

__all__ = ["ROOT", "ZOO", "Workload"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workload:
    name: str
    #: the target, relative to the repository.
    path: str
    duration: float = 20.0
    #: simulated workers (more: some survive a chaos seed's crashes, so standbys get promoted).
    workers: int = 3
    #: the workers join as static members (``SimOptions.static_membership``).
    static_membership: bool = False

    def options(self, base: SimOptions) -> SimOptions:
        """``base`` (seed, faults) at this workload's duration and worker count (and membership)."""
        options = replace(base, duration=self.duration, workers=self.workers)
        return replace(options, static_membership=True) if self.static_membership else options


#: in sweep order: the examples first, then the apps that reach what they do not.
ZOO: tuple[Workload, ...] = (
    Workload("word_count", "examples/word_count.py"),
    Workload("page_views", "examples/page_views.py"),
    Workload("proj", "examples/proj"),
    Workload("awaiting_relay", "tests/apps/awaiting_relay.py"),
    Workload("refused_forward", "tests/apps/refused_forward.py"),
    Workload("refused_output", "tests/apps/refused_output.py"),
    Workload("long_recovery", "sim/workloads/long_recovery.py", 15.0, workers=5),
    Workload("foreign_changelog_record", "tests/scenarios/foreign_changelog_record.py", 15.0),
    Workload("windowed_hopping", "tests/scenarios/windowed_hopping.py", 15.0),
    Workload("windowed_lists", "tests/scenarios/windowed_lists.py", 15.0),
    Workload("standby_takeover", "tests/scenarios/standby_takeover.py", 15.0),
    Workload("kill9_rocksdb_counts", "tests/scenarios/kill9_rocksdb_counts.py", 15.0),
    Workload("concurrent_actors", "sim/workloads/concurrent_actors.py"),
    Workload("take_batches", "sim/workloads/take_batches.py"),
    Workload("rpc_ask", "sim/workloads/rpc_ask.py"),
    Workload("timer_producer", "sim/workloads/timer_producer.py"),
    Workload("global_lookup", "sim/workloads/global_lookup.py"),
    Workload("group_by_chain", "sim/workloads/group_by_chain.py"),
    # at least once with a 6 s session: zombies (commits held in doubt, stops that give up)
    Workload("short_session_counter", "tests/scenarios/short_session_counter.py"),
    # static membership (KIP-345): restarts rejoin in place, stops do not leave, and a
    # twin's two processes share one group instance id, so one of them is fenced
    Workload("awaiting_relay_static", "tests/apps/awaiting_relay.py", static_membership=True),
    Workload("word_count_static", "examples/word_count.py", static_membership=True),
)
