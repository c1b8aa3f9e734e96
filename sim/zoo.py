"""The sim's workload zoo: apps that together reach the engine paths bugs live on.

Each exercises something the others do not (an agent that awaits per
event, output forwarded without awaiting and refused by the leader, windows
that expire, standbys, RocksDB tables under kill -9), and each has exact
checks. ``detstream sim --zoo --seeds A..B`` sweeps them all;
``scripts/mutation-score`` runs every planted bug against them.

The workloads are paths in this repository (examples, and the small apps
the tests keep), in sweep order: the examples first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ROOT", "ZOO", "Workload"]

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workload:
    name: str
    #: the target, relative to the repository.
    path: str
    duration: float = 20.0


#: in sweep order: the examples first, then the apps that reach what they do not.
ZOO: tuple[Workload, ...] = (
    Workload("word_count", "examples/word_count.py"),
    Workload("page_views", "examples/page_views.py"),
    Workload("proj", "examples/proj"),
    Workload("awaiting_relay", "tests/apps/awaiting_relay.py"),
    Workload("refused_forward", "tests/apps/refused_forward.py"),
    Workload("refused_output", "tests/apps/refused_output.py"),
    Workload("foreign_changelog_record", "tests/scenarios/foreign_changelog_record.py", 15.0),
    Workload("windowed_hopping", "tests/scenarios/windowed_hopping.py", 15.0),
    Workload("standby_takeover", "tests/scenarios/standby_takeover.py", 15.0),
    Workload("kill9_rocksdb_counts", "tests/scenarios/kill9_rocksdb_counts.py", 15.0),
)
