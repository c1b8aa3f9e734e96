"""How fast does the simulation runtime go?  Run: ``.venv/bin/python bench/sim_speed.py``.

Each benchmark is a function returning one dict (a printed row).  Every
figure is paired with a peer measured in the same run on the same machine,
so the ratio means something even where absolute numbers do not.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rows import best_of, run_benches  # noqa: E402
from sim import runner  # noqa: E402
from sim.gc_policy import own_the_heap  # noqa: E402
from sim.loop import run  # noqa: E402

_clock = time.perf_counter  # noqa: TID251 - a benchmark measures real time
#: CPU seconds of this process: what a run costs, whatever else shares the machine.
_cpu = time.process_time  # noqa: TID251 - a benchmark measures CPU time

WORD_COUNT = "examples/word_count.py"

TICKS = 3600


def _best_of(repeat: int, fn: Callable[[], object]) -> float:
    return best_of(repeat, fn, _clock)


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


class _GcMeter:
    """CPU seconds spent in the cyclic garbage collector while it is installed.

    A ``gc.callbacks`` hook sees every collection start and stop, whoever
    triggers it (automatic thresholds or an explicit ``gc.collect``).
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = _cpu()
        else:
            self.seconds += _cpu() - self._began
            self.collections += 1


@contextmanager
def _gc_metered() -> Iterator[_GcMeter]:
    meter = _GcMeter()
    gc.callbacks.append(meter)
    try:
        yield meter
    finally:
        gc.callbacks.remove(meter)


def _word_count_inputs(sentences: int) -> list[str]:
    from examples.word_count import SENTENCES

    return (SENTENCES * (sentences // len(SENTENCES) + 1))[:sentences]


def bench_word_count_cpu(sentences: int = 2000, repeat: int = 3) -> dict[str, object]:
    """CPU µs per delivered event of word count (1 worker, exactly_once) against a decode-and-count loop.

    examples/word_count.py declares ``processing_guarantee="exactly_once"``
    (asserted below, so the figure cannot silently change meaning). An event
    is one delivery to an agent: each sentence, and each word twice (the
    ``words`` topic, then its repartition by text). The peer, in the same
    process, takes the very payloads the run delivered (read back from the
    simulated topics) and does the least any stream processor must do per
    event: decode it (``json.loads``: the word records and the sentences,
    JSON text as a ``value_type=str`` topic carries it) and update a dict. Best of ``repeat`` on both sides; the GC
    share is the cyclic collector's part of the best run's CPU time.
    """
    inputs = _word_count_inputs(sentences)

    def scenario(sim: object) -> None:
        sim.topic("sentences", partitions=4)  # type: ignore[attr-defined]
        sim.producer("sentences", inputs, every=0.0)  # type: ignore[attr-defined]

    options = runner.SimOptions(seed=1, workers=1, duration=1.0)
    best = (float("inf"), 0.0, 0)
    report = None
    for _ in range(repeat):
        report = None  # a kept report would double the heap the next run's GC walks
        gc.collect()  # earlier garbage (another bench's runs) is not this run's cost
        with _gc_metered() as meter:
            start = _cpu()
            report = runner.run(WORD_COUNT, options, scenario=scenario)
            spent = _cpu() - start
        if spent < best[0]:
            best = (spent, meter.seconds, meter.collections)
    assert report is not None and report.ok, report and report.violations
    guarantee = _guarantee(WORD_COUNT)
    assert guarantee == "exactly_once", guarantee
    delivered = [e for e in report.trace.events if e.kind == "deliver"]
    payloads = _delivered_payloads(report, delivered)

    def reference() -> None:
        counts: dict[str, int] = {}
        loads = json.loads
        for is_word, value in payloads:
            payload = loads(value)
            if is_word:
                text = payload["text"]
                counts[text] = counts.get(text, 0) + 1
            else:
                for word in payload.lower().split():
                    counts[word] = counts.get(word, 0) + 1

    peer_s = float("inf")
    for _ in range(max(repeat, 5)):
        start = _cpu()
        reference()
        peer_s = min(peer_s, _cpu() - start)
    events = len(delivered)
    sim_us = best[0] / events * 1e6
    peer_us = peer_s / events * 1e6
    return {
        "bench": "word_count_cpu_1_worker_eos",
        "events": events,
        "sim_cpu_s": round(best[0], 3),
        "sim_us_per_event": round(sim_us, 1),
        "gc_share": round(best[1] / best[0], 3),
        "gc_collections": best[2],
        "peer": "json.loads + dict update per delivered payload",
        "peer_us_per_event": round(peer_us, 2),
        "ratio": round(sim_us / peer_us, 1),
        "target_ratio": 10,
    }


def _guarantee(target: str) -> str:
    from detstream.loader import load_isolated

    _, app = load_isolated(target)
    return str(app.conf.processing_guarantee)


def _delivered_payloads(report: runner.SimReport, delivered: list[Any]) -> list[tuple[bool, bytes]]:
    """(is a word record, not a sentence; value bytes) of each delivered event, read back from the
    final topics."""
    assert report.cluster is not None
    values: dict[tuple[str, int, int], bytes] = {}
    for topic in {e.fields["tp"].topic for e in delivered}:
        for record in report.cluster.records(topic):
            values[(topic, record.partition, record.offset)] = record.value
    return [
        (e.fields["tp"].topic != "sentences", values[(e.fields["tp"].topic, e.fields["tp"].partition,
                                                       e.fields["offset"])])
        for e in delivered
    ]


def bench_chaos_seeds(seeds: range = range(1, 7)) -> dict[str, object]:
    """Seeds per CPU-minute of 3-worker word count under ``faults="chaos"`` (20 virtual seconds each).

    What a ``--seeds`` sweep can afford: like a sweep's worker process
    (``sim.parallel``), this process owns its heap from here on
    (``gc_policy.own_the_heap``: run it last), each seed's trace hash is
    taken (the trace text is rendered for it) and its report dropped before
    the next. The peer is the target of issue 10 (300 seeds per
    CPU-minute); ``failures`` must stay 0 and the GC share says how much of
    the CPU went to the cyclic collector.
    """
    failures = 0
    events = 0
    own_the_heap()  # collects earlier garbage (another bench's runs) first
    with _gc_metered() as meter:
        start = _cpu()
        for seed in seeds:
            report = runner.run(WORD_COUNT, runner.SimOptions(seed=seed, duration=20.0, faults="chaos"))
            failures += not report.ok
            events += sum(1 for e in report.trace.events if e.kind == "deliver")
            assert len(report.sha256) == 64
            del report  # as a sweep does: the next run does not keep this one alive
        spent = _cpu() - start
    return {
        "bench": "chaos_seeds_word_count_3_workers",
        "seeds": len(seeds),
        "failures": failures,
        "cpu_s": round(spent, 2),
        "cpu_s_per_seed": round(spent / len(seeds), 3),
        "us_per_event": round(spent / max(events, 1) * 1e6, 1),
        "gc_share": round(meter.seconds / spent, 3),
        "seeds_per_cpu_minute": round(60 * len(seeds) / spent, 1),
        "target": 300,
    }


#: Benchmarks run by main(), in order; append more (each returns one row).
BENCHES: list[Callable[[], dict[str, object]]] = [
    bench_timer_hour, bench_word_count, bench_word_count_cpu, bench_chaos_seeds,
]


def main(benches: list[Callable[[], dict[str, object]]] | None = None) -> list[dict[str, object]]:
    """Run each benchmark and print its row as ``key=value`` pairs."""
    return run_benches(BENCHES if benches is None else benches)


if __name__ == "__main__":
    run_benches(BENCHES, sys.argv[1:])  # ``python bench/X.py [name ...]``: only those
