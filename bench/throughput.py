"""Throughput and latency on a real broker: detstream vs faust-streaming vs raw aiokafka.

Run on demand (not part of the tests)::

    .venv/bin/python bench/throughput.py [--events 20000] [--wc-events N] [--broker HOST:PORT]

Without ``--broker`` a local Kafka is started with ``scripts/kafka-local`` in a temp
dir and stopped at the end. Workloads, each on fresh topics and a fresh app id:

  plain    one agent consuming a 4-partition topic of JSON events
  wc       word count: split sentences (5 words) -> repartition by word -> count in a table
  wc-eos   the same with processing_guarantee="exactly_once"

Each runs once per system, one worker process, the same app source (``import detstream as
faust`` or ``import faust``): detstream from this repo's venv, faust-streaming from a
separate venv (~/.cache/detstream/bench-venv, created here if missing), and for ``plain`` a
raw aiokafka consume loop as the ceiling. The worker is warmed up first (until it has
processed a marker event per partition); then the bench produces N events as fast as it
can, each carrying its produce wall-clock time. "Processed" is when the final agent handles
the event (for wc: when the word's count is updated, for every word); latency is processed
minus produce time, so it includes queueing under this saturating load, and for wc-eos it
does not include the wait for the transaction commit. events/s = N / (last processed -
first produced). Figures depend on this machine; compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DETSTREAM_PY = str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv").is_dir() else sys.executable
BENCH_VENV = Path.home() / ".cache" / "detstream" / "bench-venv"
FAUST_PY = str(BENCH_VENV / "bin" / "python")
KAFKA_LOCAL = REPO / "scripts" / "kafka-local"
PARTITIONS = 4
WARM = PARTITIONS  # warm-up events, one per partition
WORDS_PER_SENTENCE = 5
VOCAB = [f"w{i}" for i in range(200)]
RUN_DEADLINE_S = 240.0

_wall = time.time  # noqa: TID251 - a benchmark measures real time
_mono = time.monotonic  # noqa: TID251 - a benchmark measures real time

APP_SOURCE = '''
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
state = {"warm": 0, "n": 0, "lat": []}


def seen(ts, warm):
    now = time.time()
    if warm:
        state["warm"] += 1
        if state["warm"] == WARM:
            with open(OUT + ".warm", "w") as f:
                f.write("ok")
        return
    state["n"] += 1
    state["lat"].append(now - ts)
    if state["n"] == TOTAL:
        with open(OUT + ".tmp", "w") as f:
            json.dump({"n": state["n"], "last": now, "lat": state["lat"]}, f)
        os.replace(OUT + ".tmp", OUT)


if WORKLOAD == "plain":
    @app.agent(source)
    async def consume(stream):
        async for event in stream:
            seen(event["ts"], event.get("warm", False))
else:
    words = app.topic(os.environ["BENCH_APP_ID"] + "-words", value_type=Word, internal=True)
    word_counts = app.Table("word_counts", default=int, key_type=str, value_type=int)

    @app.agent(source, sink=[words])
    async def split_sentences(stream):
        async for event in stream:
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
            print(f"creating {BENCH_VENV} and installing faust-streaming ...", flush=True)
            BENCH_VENV.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([sys.executable, "-m", "venv", str(BENCH_VENV)], check=True,
                           capture_output=True, text=True, timeout=300)
        if subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
            proc = subprocess.run([FAUST_PY, "-m", "pip", "install", "-q", "faust-streaming"],
                                  capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                return f"pip install faust-streaming failed: {proc.stderr.strip()[-500:]}"
        proc = subprocess.run(check, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            return f"faust does not import: {proc.stderr.strip()[-500:]}"
        print(f"faust-streaming {proc.stdout.strip()} in {BENCH_VENV}", flush=True)
        return None
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot set up {BENCH_VENV}: {exc!r}"


# -- one run -------------------------------------------------------------------------------
def sentence(i: int) -> str:
    return " ".join(VOCAB[(i * 7 + k * 13) % len(VOCAB)] for k in range(WORDS_PER_SENTENCE))


async def produce(bootstrap: str, topic: str, n: int, warm: bool) -> float:
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


def wait_file(path: Path, proc: subprocess.Popen, deadline: float, log: Path) -> bool:
    while not path.exists():
        if proc.poll() is not None:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise RuntimeError(f"worker exited {proc.returncode}:\n{tail}")
        if _mono() > deadline:
            return False
        time.sleep(0.02)
    return True


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


#: how long a worker may take to join, recover and process the warm-up markers
#: (``BENCH_WARM_DEADLINE`` overrides: faust-streaming's exactly_once start is slow).
WARM_DEADLINE_S = float(os.environ.get("BENCH_WARM_DEADLINE", "120"))


def run_one(system: str, workload: str, bootstrap: str, n: int, workdir: Path) -> dict[str, object]:
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
           "BENCH_DATADIR": str(rundir / "data"), "PYTHONUNBUFFERED": "1"}
    if system == "raw":
        cmd = [DETSTREAM_PY, str(Path(__file__).resolve()), "--raw-consumer"]
    else:
        (rundir / "app.py").write_text(APP_SOURCE)
        python = DETSTREAM_PY if system == "detstream" else FAUST_PY
        cmd = [python, "app.py", "worker", "--without-web", "-l", os.environ.get("BENCH_LOGLEVEL", "warn")]
    log = rundir / "worker.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, cwd=rundir, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    row: dict[str, object] = {"system": system, "workload": workload, "events": n}
    try:
        start = _mono()
        asyncio.run(produce(bootstrap, topic, n, warm=True))
        if not wait_file(Path(str(out) + ".warm"), proc, _mono() + WARM_DEADLINE_S, log):
            row["error"] = f"not warm after {WARM_DEADLINE_S:.0f} s"
            return row
        row["warmup_s"] = round(_mono() - start, 1)
        first = asyncio.run(produce(bootstrap, topic, n, warm=False))
        produced = _wall()
        if not wait_file(out, proc, _mono() + RUN_DEADLINE_S, log):
            row["error"] = f"not done after {RUN_DEADLINE_S:.0f} s"
            return row
        result = json.loads(out.read_text())
        lat = sorted(result["lat"])
        elapsed = result["last"] - first
        row.update(events_per_s=round(n / elapsed), elapsed_s=round(elapsed, 2),
                   produce_s=round(produced - first, 2),
                   p50_ms=round(pct(lat, 0.50) * 1e3, 1), p99_ms=round(pct(lat, 0.99) * 1e3, 1),
                   samples=len(lat))
        return row
    except RuntimeError as exc:
        row["error"] = str(exc)
        return row
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


# -- raw aiokafka consumer (subprocess mode) --------------------------------------------
async def raw_consumer() -> None:
    from aiokafka import AIOKafkaConsumer

    n, out = int(os.environ["BENCH_N"]), os.environ["BENCH_OUT"]
    consumer = AIOKafkaConsumer(os.environ["BENCH_TOPIC"], group_id=os.environ["BENCH_APP_ID"],
                                bootstrap_servers=os.environ["BENCH_BROKER"].removeprefix("kafka://"),
                                auto_offset_reset="earliest", enable_auto_commit=True)
    await consumer.start()
    warm, count, lat = 0, 0, []
    try:
        while count < n:
            for records in (await consumer.getmany(timeout_ms=100, max_records=1000)).values():
                for r in records:
                    now = _wall()
                    event = json.loads(r.value)
                    if event.get("warm"):
                        warm += 1
                        if warm == WARM:
                            Path(out + ".warm").write_text("ok")
                        continue
                    count += 1
                    lat.append(now - event["ts"])
                    if count == n:
                        Path(out + ".tmp").write_text(json.dumps({"n": n, "last": now, "lat": lat}))
                        os.replace(out + ".tmp", out)
        await asyncio.sleep(3600)  # until terminated, like a worker
    finally:
        await consumer.stop()


# -- main ----------------------------------------------------------------------------------
def fmt(row: dict[str, object]) -> str:
    if "error" in row:
        return f"{row['system']:<10} {row['workload']:<7} ERROR: {row['error']}"
    return (f"{row['system']:<10} {row['workload']:<7} {row['events']:>7} {row['events_per_s']:>9} "
            f"{row['p50_ms']:>9} {row['p99_ms']:>9} {row['elapsed_s']:>8} {row['produce_s']:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--wc-events", type=int, help="events for wc and wc-eos (default: --events)")
    parser.add_argument("--broker", help="host:port of a running broker (default: start one)")
    parser.add_argument("--workloads", default="plain,wc,wc-eos")
    parser.add_argument("--systems", default="detstream,faust,raw")
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
    workdir = Path(tempfile.mkdtemp(prefix="detstream-bench-"))
    brokerdir = workdir / "kafka"
    bootstrap = args.broker
    try:
        if not bootstrap:
            brokerdir.mkdir()
            bootstrap = start_broker(brokerdir)
            print(f"broker {bootstrap} (scripts/kafka-local, {brokerdir})", flush=True)
        rows: list[dict[str, object]] = []
        print(f"{'system':<10} {'load':<7} {'events':>7} {'events/s':>9} {'p50 ms':>9} {'p99 ms':>9}"
              f" {'elapsed':>8} {'produce':>8}", flush=True)
        for workload in args.workloads.split(","):
            for system in systems:
                if system == "raw" and workload != "plain":
                    continue
                n = args.events if workload == "plain" else (args.wc_events or args.events)
                row = run_one(system, workload, bootstrap, n, workdir)
                rows.append(row)
                print(fmt(row), flush=True)
        print("\nratios (events/s, p99 latency):")
        by = {(r["system"], r["workload"]): r for r in rows if "error" not in r}
        for workload in args.workloads.split(","):
            ds = by.get(("detstream", workload))
            for peer in ("faust", "raw"):
                other = by.get((peer, workload))
                if ds and other:
                    print(f"  {workload:<7} detstream/{peer:<5} throughput x{ds['events_per_s'] / other['events_per_s']:.2f}"
                          f"  p99 x{ds['p99_ms'] / max(other['p99_ms'], 0.1):.2f}")
    finally:
        if not args.broker and brokerdir.exists():
            stop_broker(brokerdir)
        if os.environ.get("BENCH_KEEP"):
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
