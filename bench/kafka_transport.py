"""The aiokafka driver alone on a real broker: its producer and consumer vs raw aiokafka.

    .venv/bin/python bench/kafka_transport.py --broker HOST:PORT [--records 100000]

Four rows, each on a fresh 4-partition topic, all in this process:

  produce/raw        AIOKafkaProducer.send per record (keyed), then wait for every ack
  produce/detstream  KafkaProducer.enqueue per record (keyed), then wait for every ack
  consume/raw        AIOKafkaConsumer.getmany until every record was read
  consume/detstream  KafkaConsumer.getmany (records converted to detstream's) likewise

``rec/s`` is wall clock, ``us/rec`` CPU time (``time.process_time``) per record, which
other load on the machine disturbs less. Without ``--broker`` one is started with
``scripts/kafka-local``. Ratios are detstream / raw of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import PARTITIONS, create_topic, start_broker, stop_broker  # noqa: E402

_wall = time.perf_counter  # noqa: TID251 - a benchmark measures real time


async def produce(bootstrap: str, topic: str, n: int, system: str) -> tuple[float, float]:
    value = b"x" * 60
    keys = [f"k{i}".encode() for i in range(1000)]
    if system == "raw":
        from aiokafka import AIOKafkaProducer

        raw = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1)
        await raw.start()
        try:
            wall, cpu = _wall(), time.process_time()
            acks = [await raw.send(topic, value=value, key=keys[i % 1000]) for i in range(n)]
            await asyncio.gather(*acks)
            return _wall() - wall, time.process_time() - cpu
        finally:
            await raw.stop()
    import detstream

    app = detstream.App(f"bench-{secrets.token_hex(3)}", broker=f"kafka://{bootstrap}", producer_acks=1)
    producer = app.transport.create_producer(client_id="bench")
    await producer.start()
    try:
        wall, cpu = _wall(), time.process_time()
        futures = [await producer.enqueue(topic, key=keys[i % 1000], value=value) for i in range(n)]
        await asyncio.gather(*futures)
        return _wall() - wall, time.process_time() - cpu
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, n: int, system: str) -> tuple[float, float]:
    from aiokafka import TopicPartition

    if system == "raw":
        from aiokafka import AIOKafkaConsumer

        raw = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                               enable_auto_commit=False)
        await raw.start()
        try:
            raw.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
            await raw.seek_to_beginning()
            wall, cpu, seen = _wall(), time.process_time(), 0
            while seen < n:
                for records in (await raw.getmany(timeout_ms=1000, max_records=500)).values():
                    seen += len(records)
            return _wall() - wall, time.process_time() - cpu
        finally:
            await raw.stop()
    import detstream
    from detstream._types import TP

    app = detstream.App(f"bench-{secrets.token_hex(3)}", broker=f"kafka://{bootstrap}")
    consumer = app.transport.create_consumer(client_id="bench", group_id=None)
    consumer.assign([TP(topic, p) for p in range(PARTITIONS)])
    await consumer.start()
    try:
        for p in range(PARTITIONS):
            consumer.seek(TP(topic, p), 0)
        wall, cpu, seen = _wall(), time.process_time(), 0
        while seen < n:
            for records in (await consumer.getmany(1.0)).values():
                seen += len(records)
        return _wall() - wall, time.process_time() - cpu
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--broker")
    parser.add_argument("--records", type=int, default=100000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the fastest is kept")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="detstream-bench-"))
    bootstrap = args.broker
    try:
        if not bootstrap:
            bootstrap = start_broker(workdir)
        n = args.records
        best: dict[tuple[str, str], tuple[float, float]] = {}
        for _ in range(args.repeat):
            for system in ("raw", "detstream"):
                topic = f"bench-transport-{secrets.token_hex(4)}"
                asyncio.run(create_topic(bootstrap, topic))
                for what, run in (("produce", produce), ("consume", consume)):
                    wall, cpu = asyncio.run(run(bootstrap, topic, n, system))
                    old = best.get((what, system))
                    best[(what, system)] = (min(wall, old[0]), min(cpu, old[1])) if old else (wall, cpu)
        print(f"{'row':<20} {'records':>8} {'rec/s':>9} {'us/rec':>8}")
        for what in ("produce", "consume"):
            for system in ("raw", "detstream"):
                wall, cpu = best[(what, system)]
                print(f"{what + '/' + system:<20} {n:>8} {n / wall:>9.0f} {cpu / n * 1e6:>8.1f}")
        for what in ("produce", "consume"):
            (rw, rc), (dw, dc) = best[(what, "raw")], best[(what, "detstream")]
            print(f"{what}: detstream / raw  rec/s x{rw / dw:.2f}  cpu x{rc / dc:.2f}")
    finally:
        if not args.broker:
            stop_broker(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
