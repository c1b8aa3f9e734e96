"""Kafka's default partitioner for keyed records: murmur2 of the key bytes.

Using the exact function the Java client and aiokafka use means a key lands on
the same partition under `detstream sim` and on a real broker, and that the
same key always lands on the same partition across runs.
"""

from __future__ import annotations

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


#: murmur2 of keys seen (keys repeat: a table's keys, a repartitioned word); bounded.
_HASHES: dict[bytes, int] = {}
_HASHES_KEPT = 65_536
#: longer keys are hashed each time (they rarely repeat, and would fill the memory).
_HASHES_KEY_BYTES = 64


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 hash of ``data``, as a signed int like Java's.

    Remembered per key: a pure-Python hash costs a few microseconds, and
    every keyed send (a table write's changelog record, a repartitioned
    event) asks for it.
    """
    known = _HASHES.get(data)
    if known is not None:
        return known
    h = _murmur2(data)
    if len(data) <= _HASHES_KEY_BYTES and type(data) is bytes:
        if len(_HASHES) >= _HASHES_KEPT:
            _HASHES.clear()
        _HASHES[data] = h
    return h


def _murmur2(data: bytes) -> int:
    length = len(data)
    h = (_SEED ^ length) & _MASK
    whole = length - (length % 4)
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
