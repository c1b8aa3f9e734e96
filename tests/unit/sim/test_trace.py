"""The trace records structured steps and renders text only when read; the hash is over that text."""

from __future__ import annotations

import enum
import hashlib
import os
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

from detstream._types import TP
from sim.trace import Trace, TraceEvent, format_value

ROOT = Path(__file__).resolve().parents[3]


class Color(enum.Enum):
    RED = 1


def eager_line(now: float, actor: str, kind: str, fields: dict[str, Any]) -> str:
    """How a line was formatted at record time before rendering became lazy: the reference."""
    rendered = " ".join(f"{k}={format_value(v)}" for k, v in fields.items())
    return f"{now:012.6f} {actor} {kind} {rendered}".rstrip()


#: one step per kind of value the engine and the sim record, and the odd ones apps may.
STEPS: list[tuple[str, str, dict[str, Any]]] = [
    ("operator", "create-topic", {"topic": "sentences", "partitions": 4}),
    ("w1", "produce", {"tp": TP("words", 3), "offset": 0, "key": b"seed", "value": b'{"text":"x"}'}),
    ("w1", "produce", {"tp": TP("words", 3), "offset": 1, "key": None, "value": b"a" * 25}),
    ("w1", "deliver", {"tp": TP("t", 0), "offset": 7, "key": b"with space"}),
    ("w1", "table-write", {"table": "counts", "partition": 0, "key": "two words", "value": -3}),
    ("w1", "listener-lag", {"seconds": 0.1234567}),
    ("w1", "stall", {"incarnation": 1, "duration": 2.0}),
    ("net", "request-dropped", {"request": "produce", "applied": True}),
    ("g", "rebalance", {"generation": 2, "leader": "w1-1", "members": ["w1-1", "w2-2"]}),
    ("w1", "assigned", {"generation": 2, "tps": [TP("a", 1), TP("b", 0)]}),
    ("w1", "odd", {"set": {"b", "a", "c"}, "frozen": frozenset({3, 1}), "tuple": (1, None, b"k")}),
    ("w1", "odd", {"enum": Color.RED, "nested": [[1, 2], {"z", "y"}], "dict": {"k": 1}}),
    ("w1", "recovery-done", {}),
    ("w1", "odd", {"text": "trailing\n"}),
]


class Clock:
    """Moves a quarter of a second before each step."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 0.25
        return self.now


def recorded(steps: list[tuple[str, str, dict[str, Any]]] = STEPS, trace: Trace | None = None) -> Trace:
    trace = trace if trace is not None else Trace(Clock())
    for actor, kind, fields in steps:
        trace.record(actor, kind, **fields)
    return trace


def test_lines_are_the_canonical_text_of_each_step() -> None:
    trace = recorded()
    expected = [eager_line(0.25 * (i + 1), a, k, f) for i, (a, k, f) in enumerate(STEPS)]
    assert list(trace.lines) == expected
    crc = zlib.crc32(b'{"text":"x"}')
    assert trace.lines[1] == f"00000.500000 w1 produce tp=words[3] offset=0 key=b'seed' value=crc:{crc:08x}/12"
    assert trace.lines[-2] == "00003.250000 w1 recovery-done"


def test_events_keep_the_structured_fields_the_checks_read() -> None:
    trace = recorded()
    first = trace.events[1]
    assert isinstance(first, TraceEvent)
    assert (first.time, first.actor, first.kind) == (0.5, "w1", "produce")
    assert first.fields["tp"] == TP("words", 3)
    assert [e.fields["offset"] for e in trace.of_kind("produce")] == [0, 1]


def test_sha256_is_the_sha256_of_the_written_text(tmp_path: Path) -> None:
    trace = recorded()
    path = tmp_path / "run.trace"
    trace.write(path)
    body = path.read_bytes()
    assert body == "".join(line + "\n" for line in trace.lines).encode()
    assert trace.sha256() == hashlib.sha256(body).hexdigest()


def test_sha256_is_incremental_and_equals_a_fresh_hash() -> None:
    half = len(STEPS) // 2
    trace = recorded(STEPS[:half])
    early = trace.sha256()
    assert early == recorded(STEPS[:half]).sha256()
    recorded(STEPS[half:], trace)
    assert trace.sha256() == recorded().sha256() != early
    assert trace.sha256() == trace.sha256()


def test_a_value_mutated_after_it_was_recorded_shows_as_it_was() -> None:
    trace = Trace(lambda: 1.0)
    value = [1, 2]
    tps = [TP("t", 0)]
    trace.record("w1", "table-write", table="lists", partition=0, key="k", value=value)
    trace.record("w1", "assigned", generation=1, tps=tps)
    value.append(3)
    tps.clear()
    assert list(trace.lines) == [
        "00001.000000 w1 table-write table=lists partition=0 key=k value=[1,2]",
        "00001.000000 w1 assigned generation=1 tps=[t[0]]",
    ]


def test_different_steps_give_different_hashes() -> None:
    base = recorded().sha256()
    for index, (actor, kind, fields) in enumerate(STEPS):
        for changed in (
            (actor + "x", kind, fields),
            (actor, kind + "x", fields),
            (actor, kind, {**fields, "extra": 0}),
        ):
            steps = list(STEPS)
            steps[index] = changed
            assert recorded(steps).sha256() != base, changed
    assert recorded(STEPS[:-1]).sha256() != base
    assert recorded(STEPS[1:]).sha256() != base


def test_lines_view_counts_without_rendering_and_compares_as_a_list() -> None:
    trace = recorded()
    lines = trace.lines
    assert len(lines) == len(STEPS) and bool(lines)
    assert lines == recorded().lines
    assert lines == list(recorded().lines) and list(recorded().lines) == lines
    assert lines == tuple(lines)
    assert lines != recorded(STEPS[:-1]).lines
    assert lines[1:3] == [lines[1], lines[2]]
    trace.record("w9", "late")
    assert len(lines) == len(STEPS) + 1 and lines[-1] == f"{0.25 * (len(STEPS) + 1):012.6f} w9 late"
    assert not Trace(lambda: 0.0).lines


def test_next_event_still_wakes_on_a_matching_step() -> None:
    from sim.loop import run

    async def main() -> TraceEvent:
        trace = Trace(lambda: 0.0)
        waiting = trace.next_event(lambda e: e.kind == "crash")
        trace.record("w1", "start", incarnation=1)
        assert not waiting.done()
        trace.record("w1", "crash", incarnation=1, uncommitted=0)
        return await waiting

    assert run(main()).kind == "crash"


_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from detstream._types import TP
    from sim.trace import Trace
    trace = Trace(lambda: 1.5)
    for i in range(50):
        trace.record("w1", "step", names={f"name-{i}", "other", "third"}, tp=TP("t", i % 3), v=i / 7)
    print(trace.sha256())
    """
)


def test_the_hash_does_not_depend_on_the_process_or_its_hash_seed() -> None:
    hashes = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", _IN_A_FRESH_PROCESS, str(ROOT)],
            capture_output=True, text=True, env=env, check=True, timeout=120,
        )
        hashes.add(done.stdout.strip())
    assert len(hashes) == 1


_A_RUN_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    ballast = [[i] for i in range(int(sys.argv[2]))]  # another heap: automatic GC would fire elsewhere
    from sim.runner import SimOptions, run
    report = run("examples/word_count.py", SimOptions(seed=4, workers=2, duration=6.0, faults="chaos"))
    print(len(report.trace.lines), report.sha256)
    """
)


def test_a_run_gives_the_same_hash_in_processes_with_different_heaps() -> None:
    outputs = set()
    for ballast in ("0", "300000"):
        done = subprocess.run(
            [sys.executable, "-c", _A_RUN_IN_A_FRESH_PROCESS, str(ROOT), ballast],
            capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
            check=True, timeout=300, cwd=ROOT,
        )
        outputs.add(done.stdout.strip())
    assert len(outputs) == 1, outputs
