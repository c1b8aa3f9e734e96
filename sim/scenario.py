"""What a project declares next to its app for ``detstream sim``.

Input comes from outside the workers, as in production: *clients* produce to
topics on a schedule in virtual time and are not restarted when a worker is,
so checks can count what went in. A module defines::

    def sim_scenario(sim):
        sim.topic('sentences', partitions=4)
        sim.producer('sentences', SENTENCES, every=0.05)

        @sim.check
        def counts_are_right(result):
            assert result.table('word_counts') == expected
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from detstream.errors import InvalidArgument

Check = Callable[["Any"], None]


@dataclass
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass
class ProducerSpec:
    """A client feeding ``topic`` with ``records``, one every ``every`` virtual seconds."""

    name: str
    topic: str
    records: Iterable[Any]
    every: float
    start: float
    keyed: bool


class Scenario:
    """Collects topics, producer clients and checks declared by ``sim_scenario``."""

    def __init__(self, seed: int = 0) -> None:
        #: the run's seed: records drawn from a hypothesis strategy depend on it.
        self.seed = seed
        self.topics: list[TopicSpec] = []
        self.producers: list[ProducerSpec] = []
        self.checks: list[tuple[str, Check]] = []

    def topic(self, name: str, *, partitions: int = 1, config: dict[str, str] | None = None) -> None:
        """Create ``name`` before the workers start (as an operator would)."""
        if not isinstance(partitions, int) or partitions < 1:
            raise InvalidArgument(f"sim.topic({name!r}): partitions must be an int >= 1")
        self.topics.append(TopicSpec(name, partitions, dict(config or {})))

    def producer(
        self,
        topic: str,
        records: Iterable[Any],
        *,
        every: float = 0.1,
        start: float = 0.0,
        keyed: bool = False,
        name: str | None = None,
    ) -> None:
        """Feed ``records`` to ``topic``: values, or ``(key, value)`` pairs when ``keyed``.

        ``records`` is a list, any iterable (a generator), or a hypothesis
        strategy of lists, drawn from the run's seed (so a seed names its input).
        """
        if every < 0 or start < 0:
            raise InvalidArgument("sim.producer(): every= and start= must be >= 0")
        label = name or f"client-{len(self.producers) + 1}"
        if _is_strategy(records):
            records = StrategyRecords(records, zlib.crc32(f"{self.seed}/clients/{label}".encode()))
        self.producers.append(ProducerSpec(label, topic, records, float(every), float(start), keyed))

    def check(self, fun: Check) -> Check:
        """Register ``fun(result)``; it fails the run by raising (e.g. ``assert``)."""
        self.checks.append((fun.__name__, fun))
        return fun


def _is_strategy(records: Any) -> bool:
    """True for a hypothesis strategy, without importing hypothesis for list-fed scenarios."""
    return any(cls.__name__ == "SearchStrategy" for cls in type(records).__mro__)


class StrategyRecords:
    """Records drawn from a hypothesis strategy when the client starts feeding."""

    def __init__(self, strategy: Any, seed: int) -> None:
        self.strategy = strategy
        self.seed = seed

    def __iter__(self) -> Iterator[Any]:
        from .strategies import draw

        drawn = draw(self.strategy, self.seed)
        if not isinstance(drawn, (list, tuple)):
            raise InvalidArgument(
                f"sim.producer(): the strategy must draw a list of records, it drew {drawn!r}; "
                "wrap a strategy of single records in st.lists(...)"
            )
        return iter(drawn)


def encode(value: Any) -> bytes | None:
    """Encode a client's key or value: bytes as is, str as UTF-8, Records and the rest as JSON."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if type(value) is int:  # what json.dumps writes for an int, without making an encoder
        return str(value).encode()
    dumps = getattr(value, "dumps", None)
    if callable(dumps):
        return dumps()
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def load_scenario_file(path: str) -> Callable[[Scenario], None]:
    """The ``sim_scenario`` function of the Python file at ``path`` (``--scenario FILE``).

    A scenario kept apart from the app lets one project be run against
    several workloads without editing its modules.
    """
    import runpy

    try:
        namespace = runpy.run_path(path)
    except OSError as exc:
        raise InvalidArgument(f"--scenario {path!r}: cannot read it: {exc}") from None
    hook = namespace.get("sim_scenario")
    if not callable(hook):
        raise InvalidArgument(f"--scenario {path!r} defines no sim_scenario(sim) function")
    return hook
