"""The transport seam: what the engine needs from a broker, and nothing more.

Two drivers implement it: ``sim.driver`` (the simulated cluster) and the
aiokafka driver. Method names and shapes follow aiokafka's clients so that the
real driver stays thin and the sim stays honest about what Kafka offers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from detstream._types import TP, ConsumerRecord, RecordMetadata

Headers = tuple[tuple[str, bytes], ...]


@runtime_checkable
class RebalanceListener(Protocol):
    """Called by a group consumer around every rebalance (aiokafka's shape)."""

    async def on_partitions_revoked(self, revoked: set[TP]) -> None: ...

    async def on_partitions_assigned(self, assigned: set[TP]) -> None: ...


class Producer(Protocol):
    """Sends records; ``send`` returns once the broker acknowledged the record."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self,
        topic: str,
        *,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        timestamp: float | None = None,
        headers: Headers = (),
    ) -> RecordMetadata: ...

    async def partitions_for(self, topic: str) -> int: ...


class Consumer(Protocol):
    """A consumer: group-managed (``subscribe``) or manually assigned (``assign``)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: Iterable[str], listener: RebalanceListener) -> None: ...

    def assign(self, tps: Iterable[TP]) -> None: ...

    def assignment(self) -> set[TP]: ...

    @property
    def generation(self) -> int: ...

    async def getmany(self, timeout: float) -> dict[TP, list[ConsumerRecord]]: ...

    def pause(self, *tps: TP) -> None: ...

    def resume(self, *tps: TP) -> None: ...

    def seek(self, tp: TP, offset: int) -> None: ...

    async def commit(self, offsets: Mapping[TP, int]) -> None: ...

    async def committed(self, tp: TP) -> int | None: ...

    async def beginning_offsets(self, tps: Iterable[TP]) -> dict[TP, int]: ...

    async def end_offsets(self, tps: Iterable[TP]) -> dict[TP, int]: ...


class Admin(Protocol):
    """Topic administration."""

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> bool:
        """Create ``name``; False if it already existed (not an error)."""
        ...

    async def partitions_for(self, name: str) -> int | None: ...


class Transport(Protocol):
    """Factory for the three clients of one broker connection."""

    def create_producer(self, *, client_id: str) -> Producer: ...

    def create_consumer(self, *, client_id: str, group_id: str | None) -> Consumer: ...

    def create_admin(self, *, client_id: str) -> Admin: ...
