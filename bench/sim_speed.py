"""How fast does the simulation runtime go?  Run: ``.venv/bin/python bench/sim_speed.py``.

Each benchmark is a function returning one dict (a printed row).  Every
figure is paired with a peer measured in the same run on the same machine,
so the ratio means something even where absolute numbers do not.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sim import runner  # noqa: E402
from sim.loop import run  # noqa: E402

_clock = time.perf_counter  # noqa: TID251 - a benchmark measures real time

TICKS = 3600


def _best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = _clock()
        fn()
        best = min(best, _clock() - start)
    return best


def bench_timer_hour(repeat: int = 5) -> dict[str, object]:
    """One virtual hour of a 1 s timer, against the same 3600 iterations of sleep(0) on asyncio.

    The peer is the floor of any asyncio loop doing that many wake-ups: a
    real loop would need an actual hour for the 1 s version.
    """

    async def virtual_hour() -> float:
        for _ in range(TICKS):
            await asyncio.sleep(1)
        return asyncio.get_running_loop().time()

    async def plain_spin() -> None:
        for _ in range(TICKS):
            await asyncio.sleep(0)

    assert run(virtual_hour()) == float(TICKS)
    sim_s = _best_of(repeat, lambda: run(virtual_hour()))
    peer_s = _best_of(repeat, lambda: asyncio.run(plain_spin()))
    return {
        "bench": "timer_hour",
        "virtual_s": float(TICKS),
        "sim_wall_ms": round(sim_s * 1e3, 2),
        "peer": "asyncio sleep(0) x3600",
        "peer_wall_ms": round(peer_s * 1e3, 2),
        "ratio": round(sim_s / peer_s, 2),
        "virtual_per_wall": round(TICKS / sim_s),
    }


def bench_word_count(sentences: int = 2000, repeat: int = 3) -> dict[str, object]:
    """Events per wall second through examples/word_count.py on 1 simulated worker.

    An event is one delivery to an agent (sentence, word, repartitioned word),
    so each input word costs the sim two deliveries, a table write, and the
    changelog, repartition and commit traffic. The peer is a plain Python loop
    counting the same words with a dict: the cost floor of the computation.
    """
    from collections import Counter

    from examples.word_count import SENTENCES

    inputs = (SENTENCES * (sentences // len(SENTENCES) + 1))[:sentences]
    words = [w for s in inputs for w in s.lower().split()]

    def scenario(sim: object) -> None:
        sim.topic("sentences", partitions=4)  # type: ignore[attr-defined]
        sim.producer("sentences", inputs, every=0.0)  # type: ignore[attr-defined]

    options = runner.SimOptions(seed=1, workers=1, duration=1.0)
    report = runner.run("examples/word_count.py", options, scenario=scenario)
    assert report.ok, report.violations
    events = sum(1 for e in report.trace.events if e.kind == "deliver")
    sim_s = _best_of(repeat, lambda: runner.run("examples/word_count.py", options, scenario=scenario))

    def plain() -> None:
        counts: Counter[str] = Counter()
        for sentence in inputs:
            for word in sentence.lower().split():
                counts[word] += 1

    peer_s = _best_of(repeat, plain)
    return {
        "bench": "word_count_1_worker",
        "events": events,
        "sim_wall_s": round(sim_s, 3),
        "sim_events_per_s": round(events / sim_s),
        "peer": "plain dict counting loop",
        "peer_words_per_s": round(len(words) / peer_s),
        "ratio": round((len(words) / peer_s) / (events / sim_s), 1),
    }


#: Benchmarks run by main(), in order; append more (each returns one row).
BENCHES: list[Callable[[], dict[str, object]]] = [bench_timer_hour, bench_word_count]


def main(benches: list[Callable[[], dict[str, object]]] | None = None) -> list[dict[str, object]]:
    """Run each benchmark and print its row as ``key=value`` pairs."""
    rows = []
    for bench in benches if benches is not None else BENCHES:
        row = bench()
        rows.append(row)
        print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return rows


if __name__ == "__main__":
    main()
