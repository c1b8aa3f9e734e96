"""Small value types shared by the engine and every transport driver."""

from __future__ import annotations

from typing import NamedTuple


class TP(NamedTuple):
    """A topic partition (Faust's ``TP``)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


class ConsumerRecord(NamedTuple):
    """One record as a consumer fetches it (the shape aiokafka returns)."""

    topic: str
    partition: int
    offset: int
    timestamp: float
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


class RecordMetadata(NamedTuple):
    """Where the broker stored a produced record."""

    topic: str
    partition: int
    offset: int
    timestamp: float

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)
