"""What every bench module shares: timing the best of several runs, and printing rows.

A bench is a function returning one dict (a printed row) that pairs each
figure with a peer measured in the same run; ``python bench/X.py [word ...]``
runs the benches whose names contain one of the words.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Bench = Callable[[], dict[str, object]]


def best_of(repeat: int, fn: Callable[[], object], clock: Callable[[], float]) -> float:
    """The shortest of ``repeat`` timings of ``fn`` by ``clock`` (wall or CPU)."""
    best = float("inf")
    for _ in range(repeat):
        start = clock()
        fn()
        best = min(best, clock() - start)
    return best


def run_benches(benches: Sequence[Bench], words: Sequence[str] = ()) -> list[dict[str, object]]:
    """Run the benches named by ``words`` (all if none), printing each row as ``key=value``."""
    rows = []
    for bench in benches:
        if words and not any(word in bench.__name__ for word in words):
            continue
        row = bench()
        rows.append(row)
        print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows
