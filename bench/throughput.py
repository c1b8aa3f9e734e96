"""Throughput on a real broker: detstream vs faust-streaming vs raw aiokafka.

Run on demand (not part of the tests)::

    .venv/bin/python bench/throughput.py [--events 50000] [--wc-events N] [--broker HOST:PORT]
                                         [--live] [--profile DIR]

Without ``--broker`` a local Kafka is started with ``scripts/kafka-local`` in a temp
dir and stopped at the end. Workloads, each on fresh topics and a fresh app id:

  plain    one agent consuming a 4-partition topic of JSON events
  wc       word count: split sentences (5 words) -> repartition by word -> count in a table
  wc-eos   the same with processing_guarantee="exactly_once"

Each runs once per system, one worker process, the same app source (``import detstream as
faust`` or ``import faust``): detstream from this repo's venv, faust-streaming from a
separate venv (~/.cache/detstream/bench-venv, created here if missing), and for ``plain`` a
raw per-message aiokafka consume loop (``getmany`` + ``json.loads`` per record) as the
ceiling. "Processed" is when the final agent handles the event (for wc: when the word's
count is updated, for every word; for wc-eos that is before its transaction commits).

**Backlog mode** (the default): the bench first produces all N events with a raw aiokafka
producer (``create_batch``/``send_batch``, as fast as the broker takes them), then starts
the worker and times the drain. ``events/s`` = N / (last processed - first processed), where
"first processed" is when the first agent receives its first event: the drain alone,
without interpreter start, imports, group join and recovery. ``total s`` is worker spawn to
last processed (all of that included); ``cpu s`` the worker's CPU time (user + system) up
to then, which tells a busy drain from a waiting one; ``gc s`` the time the drain spent in
Python's garbage collector (``gc.callbacks``; not for raw); ``us/ev`` the CPU time of the
drain (``time.process_time``, first to last processed) per input event, which other load on
the machine disturbs less than wall time does. ``peak MB`` is the worker process's peak RSS
(``VmHWM`` of ``/proc/<pid>/status``, read after the last event, before it is stopped).

**Live mode** (``--live``): the worker is warmed up first (until it has processed a marker
event per partition); then the bench produces N events as fast as it can, each carrying its
produce wall-clock time; latency is processed minus produce time, so it includes queueing
under this saturating load. events/s = N / (last processed - first produced).

``--profile DIR`` (backlog mode): the detstream worker runs cProfile from its first event to
its last and writes ``DIR/detstream-<workload>.prof`` (read it with ``pstats``). The
figures of a profiled run are not comparable to unprofiled ones. ``--py-spy DIR`` samples the
drain with py-spy instead (wall clock, waiting included, little overhead; collapsed stacks
in ``DIR/detstream-<workload>.txt``); py-spy is found on PATH or in ``BENCH_PY_SPY``.

Ratios are computed from rows of the same run; figures depend on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DETSTREAM_PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable
BENCH_VENV = Path.home() / ".cache" / "detstream" / "bench-venv"
FAUST_PY = str(BENCH_VENV / "bin" / "python")
FAUST_REQUIREMENT = "faust-streaming==0.15.3"
KAFKA_LOCAL = REPO / "scripts" / "kafka-local"
PARTITIONS = 4
WARM = PARTITIONS  # live mode: warm-up events, one per partition
WORDS_PER_SENTENCE = 5
VOCAB = [f"w{i}" for i in range(200)]
RUN_DEADLINE_S = 300.0
#: py-spy for ``--py-spy`` (``BENCH_PY_SPY`` overrides; not a dependency of the project)
PY_SPY = os.environ.get("BENCH_PY_SPY") or shutil.which("py-spy") or "py-spy"

_wall = time.time  # noqa: TID251 - a benchmark measures real time
_mono = time.monotonic  # noqa: TID251 - a benchmark measures real time

APP_SOURCE = '''
import gc
import json
import os
import time

if os.environ["BENCH_SYSTEM"] == "detstream":
    import detstream as faust
else:
    import faust

N = int(os.environ["BENCH_N"])
WARM = int(os.environ["BENCH_WARM"])
OUT = os.environ["BENCH_OUT"]
WORKLOAD = os.environ["BENCH_WORKLOAD"]
LIVE = os.environ["BENCH_MODE"] == "live"
PROFILE = os.environ.get("BENCH_PROFILE")
TOTAL = N * int(os.environ["BENCH_WORDS"]) if WORKLOAD != "plain" else N


class Word(faust.Record):
    text: str
    ts: float


app = faust.App(
    os.environ["BENCH_APP_ID"],
    broker=os.environ["BENCH_BROKER"],
    topic_partitions=int(os.environ["BENCH_PARTITIONS"]),
    processing_guarantee="exactly_once" if WORKLOAD == "wc-eos" else "at_least_once",
    web_enabled=False,
    store="memory://",
    datadir=os.environ["BENCH_DATADIR"],
)
source = app.topic(os.environ["BENCH_TOPIC"], value_serializer="json")
state = {"warm": 0, "n": 0, "lat": [], "first": None, "profiler": None}
gc_time = {"s": 0.0, "n": 0, "t0": 0.0}


def gc_timer(phase, info):
    # time spent in the garbage collector, once the drain started
    if state["first"] is None:
        return
    if phase == "start":
        gc_time["t0"] = time.perf_counter()
    else:
        gc_time["s"] += time.perf_counter() - gc_time["t0"]
        gc_time["n"] += info["generation"] == 2


gc.callbacks.append(gc_timer)


def started():
    # the first agent received an event: the drain starts (backlog mode)
    if state["first"] is None:
        state["first"] = time.time()
        state["cpu_first"] = time.process_time()
        with open(OUT + ".first", "w") as f:
            f.write("ok")
        if PROFILE:
            import cProfile

            state["profiler"] = cProfile.Profile()
            state["profiler"].enable()


def seen(ts, warm):
    now = time.time()
    if warm:
        state["warm"] += 1
        if state["warm"] == WARM:
            with open(OUT + ".warm", "w") as f:
                f.write("ok")
        return
    state["n"] += 1
    if LIVE:
        state["lat"].append(now - ts)
    if state["n"] == TOTAL:
        if state["profiler"] is not None:
            state["profiler"].disable()
            state["profiler"].dump_stats(PROFILE)
        with open(OUT + ".tmp", "w") as f:
            json.dump({"n": state["n"], "first": state["first"], "last": now, "lat": state["lat"],
                       "cpu": time.process_time() - state["cpu_first"], "gc_s": gc_time["s"],
                       "gc2": gc_time["n"]}, f)
        os.replace(OUT + ".tmp", OUT)


if WORKLOAD == "plain":
    @app.agent(source)
    async def consume(stream):
        async for event in stream:
            started()
            seen(event["ts"], event.get("warm", False))
else:
    words = app.topic(os.environ["BENCH_APP_ID"] + "-words", value_type=Word, internal=True)
    word_counts = app.Table("word_counts", default=int, key_type=str, value_type=int)

    @app.agent(source, sink=[words])
    async def split_sentences(stream):
        async for event in stream:
            started()
            if event.get("warm"):
                yield Word(text="__warm__", ts=event["ts"])
                continue
            for text in event["text"].split():
                yield Word(text=text, ts=event["ts"])

    @app.agent(words)
    async def count_words(stream):
        async for word in stream.group_by(Word.text):
            word_counts[word.text] += 1
            seen(word.ts, word.text == "__warm__")


if os.environ.get("BENCH_HOOK"):  # ad hoc diagnostics: a file run in this module's namespace
    exec(compile(open(os.environ["BENCH_HOOK"]).read(), os.environ["BENCH_HOOK"], "exec"))

if __name__ == "__main__":
    app.main()
'''


# -- broker --------------------------------------------------------------------------
def start_broker(rundir: Path) -> str:
    for args, timeout in ((["fetch"], 900), (["start", "--dir", str(rundir), "--timeout", "120",
                                             "--watch-pid", str(os.getpid())], 240)):
        proc = subprocess.run([sys.executable, str(KAFKA_LOCAL), *args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise SystemExit(f"scripts/kafka-local {args[0]} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def stop_broker(rundir: Path) -> None:
    subprocess.run([sys.executable, str(KAFKA_LOCAL), "stop", "--dir", str(rundir)],
                   capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


async def create_topic(bootstrap: str, name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)])
        deadline = _mono() + 30
        while True:
            (desc,) = await admin.describe_topics([name])
            parts = desc.get("partitions") or []
            if len(parts) == PARTITIONS and all(p.get("leader", -1) >= 0 for p in parts):
                return
            if _mono() > deadline:
                raise TimeoutError(f"topic {name} not ready: {desc}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


# -- faust-streaming venv ----------------------------------------------------------------
def ensure_faust() -> str | None:
    """Returns None when faust-streaming is usable, else why not."""
    check = [FAUST_PY, "-c", "import faust, aiokafka; print(faust.__version__)"]
    try:
        if not Path(FAUST_PY).exists():
            print(f"creating {BENCH_VENV} and installing {FAUST_REQUIREMENT} ...", flush=True)
            BENCH_VENV.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True,
                           capture_output=True, text=True, timeout=300)
        if subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
            proc = subprocess.run([FAUST_PY, "-m", "pip", "install", "-q", FAUST_REQUIREMENT],
                                  capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                return f"pip install {FAUST_REQUIREMENT} failed: {proc.stderr.strip()[-500:]}"
        proc = subprocess.run(check, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            return f"faust does not import: {proc.stderr.strip()[-500:]}"
        print(f"faust-streaming {proc.stdout.strip()} in {BENCH_VENV}", flush=True)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot set up {BENCH_VENV}: {exc!r}"


# -- producing -----------------------------------------------------------------------------
def sentence(i: int) -> str:
    return " ".join(VOCAB[(i * 7 + k * 13) % len(VOCAB)] for k in range(WORDS_PER_SENTENCE))


async def produce_live(bootstrap: str, topic: str, n: int, warm: bool) -> float:
    """Produce n events (or WARM warm-up markers, one per partition); returns first send time."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await producer.start()
    try:
        if warm:
            for p in range(PARTITIONS):
                await producer.send_and_wait(topic, json.dumps({"ts": _wall(), "warm": True}).encode(),
                                             partition=p)
            return _wall()
        first = _wall()
        pending = []
        for i in range(n):
            value = json.dumps({"ts": _wall(), "text": sentence(i)}).encode()
            pending.append(await producer.send(topic, value))
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        return first
    finally:
        await producer.stop()


async def produce_backlog(bootstrap: str, topic: str, n: int) -> None:
    """Produce n events round-robin over the partitions, a batch per request, and wait for acks."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        acks: list[asyncio.Future[object]] = []
        batches = {p: producer.create_batch() for p in range(PARTITIONS)}
        for i in range(n):
            p = i % PARTITIONS
            value = json.dumps({"ts": _wall(), "text": sentence(i)}).encode()
            if batches[p].append(key=None, value=value, timestamp=None) is None:  # full
                batches[p].close()
                acks.append(await producer.send_batch(batches[p], topic, partition=p))
                batches[p] = producer.create_batch()
                batches[p].append(key=None, value=value, timestamp=None)
        for p, batch in batches.items():
            if batch.record_count():
                batch.close()
                acks.append(await producer.send_batch(batch, topic, partition=p))
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


# -- one run -------------------------------------------------------------------------------
def wait_file(path: Path, proc: subprocess.Popen[bytes], deadline: float, log: Path) -> bool:
    while not path.exists():
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"worker exited {proc.returncode}:\n{tail}")
        if _mono() > deadline:
            return False
        time.sleep(0.02)
    return True


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (VmHWM), in MiB; None if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds the process used so far; None if it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


#: how long a worker may take to join, recover and process the warm-up markers
#: (``BENCH_WARM_DEADLINE`` overrides: faust-streaming's exactly_once start is slow).
WARM_DEADLINE_S = float(os.environ.get("BENCH_WARM_DEADLINE", "120"))


def run_one(system: str, workload: str, bootstrap: str, n: int, workdir: Path, *, live: bool,
            profile: Path | None, deadline: float, py_spy: Path | None = None) -> dict[str, object]:
    tag = f"{system}-{workload}-{secrets.token_hex(3)}"
    rundir = workdir / tag
    rundir.mkdir()
    topic = f"bench-{tag}"
    asyncio.run(create_topic(bootstrap, topic))
    out = rundir / "result.json"
    env = {**os.environ, "BENCH_SYSTEM": system, "BENCH_N": str(n), "BENCH_WARM": str(WARM),
           "BENCH_OUT": str(out), "BENCH_WORKLOAD": workload, "BENCH_WORDS": str(WORDS_PER_SENTENCE),
           "BENCH_APP_ID": f"bench-{tag}", "BENCH_BROKER": f"kafka://{bootstrap}",
           "BENCH_PARTITIONS": str(PARTITIONS), "BENCH_TOPIC": topic,
           "BENCH_MODE": "live" if live else "backlog",
           "BENCH_DATADIR": str(rundir / "data"), "PYTHONUNBUFFERED": "1"}
    env.pop("BENCH_PROFILE", None)
    if profile is not None and system == "detstream" and not live:
        env["BENCH_PROFILE"] = str(profile / f"detstream-{workload}.prof")
    if system == "raw":
        cmd = [DETSTREAM_PY, str(Path(__file__).resolve()), "--raw-consumer"]
    else:
        (rundir / "app.py").write_text(APP_SOURCE)
        python = DETSTREAM_PY if system == "detstream" else FAUST_PY
        cmd = [python, "app.py", "worker", "--without-web", "-l", os.environ.get("BENCH_LOGLEVEL", "warn")]
    row: dict[str, object] = {"system": system, "workload": workload, "events": n}
    if not live:
        start = _mono()
        asyncio.run(produce_backlog(bootstrap, topic, n))
        row["produce_s"] = round(_mono() - start, 2)
    log = rundir / "worker.log"
    spawned = _wall()
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=rundir, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    sampler: subprocess.Popen[bytes] | None = None
    try:
        if py_spy is not None and system == "detstream" and not live:
            if not wait_file(Path(str(out) + ".first"), proc, _mono() + WARM_DEADLINE_S, log):
                row["error"] = f"no event processed after {WARM_DEADLINE_S:.0f} s"
                return row
            sampler = subprocess.Popen(
                [PY_SPY, "record", "--pid", str(proc.pid), "--idle", "--nonblocking", "--rate", "250",
                 "--format", "raw", "-o", str(py_spy / f"detstream-{workload}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        if live:
            start = _mono()
            asyncio.run(produce_live(bootstrap, topic, n, warm=True))
            if not wait_file(Path(str(out) + ".warm"), proc, _mono() + WARM_DEADLINE_S, log):
                row["error"] = f"not warm after {WARM_DEADLINE_S:.0f} s"
                return row
            row["warmup_s"] = round(_mono() - start, 1)
            first = asyncio.run(produce_live(bootstrap, topic, n, warm=False))
            row["produce_s"] = round(_wall() - first, 2)
        if not wait_file(out, proc, _mono() + deadline, log):
            row["error"] = f"not done after {deadline:.0f} s"
            return row
        row["peak_mb"] = peak_rss_mb(proc.pid)
        row["cpu_s"] = cpu_s(proc.pid)
        result = json.loads(out.read_text())
        if live:
            lat = sorted(result["lat"])
            elapsed = result["last"] - first
            row.update(p50_ms=round(pct(lat, 0.50) * 1e3, 1), p99_ms=round(pct(lat, 0.99) * 1e3, 1))
        else:
            elapsed = result["last"] - result["first"]
            row["total_s"] = round(result["last"] - spawned, 2)
            if "gc_s" in result:
                row["gc_s"] = round(result["gc_s"], 2)
            row["cpu_us"] = round(result["cpu"] / n * 1e6, 1)
        row.update(events_per_s=round(n / elapsed), elapsed_s=round(elapsed, 2))
        return row
    except RuntimeError as exc:
        row["error"] = str(exc)
        return row
    finally:
        if sampler is not None:  # py-spy writes its samples when interrupted
            sampler.send_signal(signal.SIGINT)
            sampler.wait(60)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


# -- raw aiokafka consumer (subprocess mode) --------------------------------------------
async def raw_consumer() -> None:
    """The ceiling for ``plain``: one aiokafka consumer, a json.loads per record, auto-commit."""
    from aiokafka import AIOKafkaConsumer

    n, out = int(os.environ["BENCH_N"]), os.environ["BENCH_OUT"]
    live = os.environ["BENCH_MODE"] == "live"
    consumer = AIOKafkaConsumer(os.environ["BENCH_TOPIC"], group_id=os.environ["BENCH_APP_ID"],
                                bootstrap_servers=os.environ["BENCH_BROKER"].removeprefix("kafka://"),
                                auto_offset_reset="earliest", enable_auto_commit=True)
    await consumer.start()
    warm, count, first, cpu_first, lat = 0, 0, None, 0.0, []
    try:
        while count < n:
            for records in (await consumer.getmany(timeout_ms=100, max_records=1000)).values():
                for r in records:
                    now = _wall()
                    if first is None:
                        first, cpu_first = now, time.process_time()
                    event = json.loads(r.value)
                    if event.get("warm"):
                        warm += 1
                        if warm == WARM:
                            Path(out + ".warm").write_text("ok")
                        continue
                    count += 1
                    if live:
                        lat.append(now - event["ts"])
                    if count == n:
                        result = {"n": n, "first": first, "last": now, "lat": lat,
                                  "cpu": time.process_time() - cpu_first}
                        Path(out + ".tmp").write_text(json.dumps(result))
                        os.replace(out + ".tmp", out)
        await asyncio.sleep(3600)  # until terminated, like a worker
    finally:
        await consumer.stop()


# -- main ----------------------------------------------------------------------------------
def header(live: bool) -> str:
    if live:
        return (f"{'system':<10} {'load':<7} {'events':>7} {'events/s':>9} {'p50 ms':>9} {'p99 ms':>9}"
                f" {'elapsed':>8} {'produce':>8} {'peak MB':>8}")
    return (f"{'system':<10} {'load':<7} {'events':>7} {'events/s':>9} {'drain s':>8} {'total s':>8}"
            f" {'cpu s':>7} {'gc s':>6} {'us/ev':>7} {'produce':>8} {'peak MB':>8}")


def fmt(row: dict[str, object], live: bool) -> str:
    if "error" in row:
        return f"{row['system']:<10} {row['workload']:<7} ERROR: {row['error']}"
    if live:
        return (f"{row['system']:<10} {row['workload']:<7} {row['events']:>7} {row['events_per_s']:>9} "
                f"{row['p50_ms']:>9} {row['p99_ms']:>9} {row['elapsed_s']:>8} {row['produce_s']:>8}"
                f" {row['peak_mb']!s:>8}")
    return (f"{row['system']:<10} {row['workload']:<7} {row['events']:>7} {row['events_per_s']:>9} "
            f"{row['elapsed_s']:>8} {row['total_s']:>8} {row['cpu_s']!s:>7} {row.get('gc_s', '-')!s:>6}"
            f" {row['cpu_us']:>7} {row['produce_s']:>8}"
            f" {row['peak_mb']!s:>8}")


#: (label, (system, workload) measured, (system, workload) compared with, target ratio)
RATIOS = [
    ("plain: detstream / faust", ("detstream", "plain"), ("faust", "plain"), 10.0),
    ("plain: detstream / raw aiokafka", ("detstream", "plain"), ("raw", "plain"), 0.7),
    ("wc: detstream / faust", ("detstream", "wc"), ("faust", "wc"), 30.0),
    ("wc-eos: detstream / faust", ("detstream", "wc-eos"), ("faust", "wc-eos"), None),
    ("detstream: wc-eos / wc", ("detstream", "wc-eos"), ("detstream", "wc"), 0.7),
]


def print_ratios(rows: list[dict[str, object]], live: bool) -> None:
    by = {(r["system"], r["workload"]): r for r in rows if "error" not in r}
    print("\nratios, same run (events/s; and CPU per event, the inverse ratio of us/ev):")
    for label, mine, other, target in RATIOS:
        a, b = by.get(mine), by.get(other)
        if not a or not b:
            continue
        ratio = _num(a["events_per_s"]) / _num(b["events_per_s"])
        verdict = "" if target is None else f"  (target >= {target:g}: {'met' if ratio >= target else 'NOT met'})"
        extra = ""
        if "cpu_us" in a and "cpu_us" in b:
            extra += f"  cpu x{_num(b['cpu_us']) / max(_num(a['cpu_us']), 0.01):.2f}"
        if live:
            extra += f"  p99 x{_num(a['p99_ms']) / max(_num(b['p99_ms']), 0.1):.2f}"
        print(f"  {label:<34} x{ratio:.2f}{verdict}{extra}")


def _num(value: object) -> float:
    assert isinstance(value, (int, float)), value
    return float(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=50000)
    parser.add_argument("--wc-events", type=int, help="events for wc and wc-eos (default: --events)")
    parser.add_argument("--broker", help="host:port of a running broker (default: start one)")
    parser.add_argument("--workloads", default="plain,wc,wc-eos")
    parser.add_argument("--systems", default="detstream,faust,raw")
    parser.add_argument("--live", action="store_true",
                        help="the old mode: warm the worker up, then produce while it consumes")
    parser.add_argument("--profile", type=Path,
                        help="backlog mode: write a cProfile of each detstream worker's drain here")
    parser.add_argument("--py-spy", type=Path, dest="py_spy",
                        help="backlog mode: sample each detstream worker's drain with py-spy (wall "
                             "clock, idle included) into DIR/detstream-<workload>.txt")
    parser.add_argument("--deadline", type=float, default=RUN_DEADLINE_S,
                        help="seconds a worker may take to process everything (default %(default)s)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each detstream and raw row; the ratios take the fastest "
                             "(faust runs once: its runs take minutes, so its row may be a slow one)")
    parser.add_argument("--raw-consumer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw_consumer:
        asyncio.run(raw_consumer())
        return

    systems = args.systems.split(",")
    if "faust" in systems:
        why = ensure_faust()
        if why:
            print(f"faust-streaming skipped: {why}", flush=True)
            systems.remove("faust")
    for folder in ("profile", "py_spy"):
        if getattr(args, folder) is not None:
            setattr(args, folder, getattr(args, folder).resolve())
            getattr(args, folder).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="detstream-bench-"))
    brokerdir = workdir / "kafka"
    bootstrap = args.broker
    try:
        if not bootstrap:
            brokerdir.mkdir()
            bootstrap = start_broker(brokerdir)
            print(f"broker {bootstrap} (scripts/kafka-local, {brokerdir})", flush=True)
        print(f"mode: {'live' if args.live else 'backlog'}", flush=True)
        rows: list[dict[str, object]] = []
        print(header(args.live), flush=True)
        for workload in args.workloads.split(","):
            for system in systems:
                if system == "raw" and workload != "plain":
                    continue
                n = args.events if workload == "plain" else (args.wc_events or args.events)
                best: dict[str, object] | None = None
                for _ in range(args.repeat if system != "faust" else 1):
                    row = run_one(system, workload, bootstrap, n, workdir, live=args.live,
                                  profile=args.profile, deadline=args.deadline, py_spy=args.py_spy)
                    print(fmt(row, args.live), flush=True)
                    if best is None or "error" in best or (
                        "error" not in row and _num(row["events_per_s"]) > _num(best["events_per_s"])
                    ):
                        best = row
                assert best is not None
                rows.append(best)
        if args.repeat > 1:
            print("\nbest of each:")
            for row in rows:
                print(fmt(row, args.live))
        print_ratios(rows, args.live)
    finally:
        if not args.broker and brokerdir.exists():
            stop_broker(brokerdir)
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
