"""How much does a Record cost on the wire?  Run: ``.venv/bin/python bench/codec_speed.py``.

Each benchmark is a function returning one dict (a printed row).  Every
figure is paired with a peer measured in the same run on the same machine:
plain ``json.dumps``/``json.loads`` (or a plain dict) doing the same work on
the same data, so the ratio says what the Record layer adds over the floor,
whatever the machine.  Times are CPU seconds of this process, best of
``repeat`` runs.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.rows import best_of, run_benches  # noqa: E402
from detstream.models import Record  # noqa: E402
from detstream.serializers import Schema  # noqa: E402

#: CPU seconds of this process: what the work costs, whatever else shares the machine.
_cpu = time.process_time  # noqa: TID251 - a benchmark measures real time

N = 100_000


class Trade(Record):
    """Five typed fields: the shape of a typical event record."""

    account: str
    symbol: str
    qty: int
    price: float
    buy: bool


def _trades(n: int) -> list[Trade]:
    return [Trade(f"acct-{i % 97}", "ABC" if i % 2 else "XYZ", i, i * 0.25, i % 3 == 0)
            for i in range(n)]


def _best_of(repeat: int, fn: Callable[[], object]) -> float:
    return best_of(repeat, fn, _cpu)


def _row(bench: str, n: int, ours: float, peer: str, theirs: float) -> dict[str, object]:
    return {
        "bench": bench,
        "ops": n,
        "us_per_op": round(ours / n * 1e6, 2),
        "peer": peer,
        "peer_us_per_op": round(theirs / n * 1e6, 2),
        "ratio": round(ours / theirs, 2),
    }


def bench_record_round_trip(n: int = N, repeat: int = 3) -> dict[str, object]:
    """``Trade.loads(trade.dumps())`` against ``json.loads(json.dumps(d))`` of the same payload dicts.

    The peer's dicts are the records' own payloads (fields plus the
    ``__faust`` namespace), so both sides move the same bytes.
    """
    trades = _trades(n)
    payloads = [t.to_representation() for t in trades]
    assert Trade.loads(trades[0].dumps()) == trades[0]

    def ours() -> None:
        loads = Trade.loads
        for trade in trades:
            loads(trade.dumps())

    def theirs() -> None:
        dumps, loads = json.dumps, json.loads
        for payload in payloads:
            loads(dumps(payload).encode())

    return _row("record_round_trip", n, _best_of(repeat, ours),
                "json.loads(json.dumps(dict))", _best_of(repeat, theirs))


def bench_schema_round_trip(n: int = N, repeat: int = 3) -> dict[str, object]:
    """A topic's path: ``Schema.dumps_value`` then ``Schema.loads_value`` of a Record value.

    This is what every produced and every delivered event pays (with the
    topic/partition/offset a consumer passes for error messages).
    """
    schema = Schema(value_type=Trade)
    trades = _trades(n)
    payloads = [t.to_representation() for t in trades]

    def ours() -> None:
        dumps, loads = schema.dumps_value, schema.loads_value
        for offset, trade in enumerate(trades):
            data = dumps(trade, default_serializer="json")
            loads(data, default_serializer="json", topic="trades", partition=0, offset=offset)

    def theirs() -> None:
        dumps, loads = json.dumps, json.loads
        for payload in payloads:
            loads(dumps(payload).encode())

    return _row("schema_round_trip", n, _best_of(repeat, ours),
                "json.loads(json.dumps(dict))", _best_of(repeat, theirs))


def bench_construct(n: int = N, repeat: int = 3) -> dict[str, object]:
    """``Trade(...)`` by keyword against building the same dict: the cost of ``__init__``."""
    args = [(f"acct-{i % 97}", "ABC", i, i * 0.25, i % 3 == 0) for i in range(n)]

    def ours() -> None:
        for a, s, q, p, b in args:
            Trade(account=a, symbol=s, qty=q, price=p, buy=b)

    def theirs() -> None:
        for a, s, q, p, b in args:
            dict(account=a, symbol=s, qty=q, price=p, buy=b)

    return _row("construct_kwargs", n, _best_of(repeat, ours),
                "dict(**same kwargs)", _best_of(repeat, theirs))


def bench_decode_scalars(n: int = N, repeat: int = 3) -> dict[str, object]:
    """``Schema(key_type=str, value_type=int)`` decoding as a table changelog does, against json.loads.

    Word count's table writes a str key and an int value per word and reads
    both back to prove they round-trip.
    """
    schema = Schema(key_type=str, value_type=int)
    pairs: list[tuple[Any, Any]] = [
        (json.dumps(f"word{i % 200}").encode(), json.dumps(i).encode()) for i in range(n)]

    def ours() -> None:
        key, value = schema.loads_key, schema.loads_value
        for k, v in pairs:
            key(k, default_serializer="json", topic="changelog")
            value(v, default_serializer="json", topic="changelog")

    def theirs() -> None:
        loads = json.loads
        for k, v in pairs:
            loads(k)
            loads(v)

    return _row("changelog_decode_str_int", n, _best_of(repeat, ours),
                "json.loads x2", _best_of(repeat, theirs))


#: Benchmarks run by main(), in order; append more (each returns one row).
BENCHES: list[Callable[[], dict[str, object]]] = [
    bench_record_round_trip, bench_schema_round_trip, bench_construct, bench_decode_scalars,
]


def main(benches: list[Callable[[], dict[str, object]]] | None = None) -> list[dict[str, object]]:
    """Run each benchmark and print its row as ``key=value`` pairs."""
    return run_benches(BENCHES if benches is None else benches)


if __name__ == "__main__":
    run_benches(BENCHES, sys.argv[1:])  # ``python bench/X.py [name ...]``: only those
