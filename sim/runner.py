"""Run a project under simulation: workers, clients, checks, trace.

One run = one seed. Every random choice of the run is drawn from streams
derived from the seed per subsystem (network, clients, app), so the run is a
pure function of (code, seed, options) and its trace hash proves it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from detstream._types import ConsumerRecord
from detstream.loader import load_isolated

from . import checks
from .cluster import SimCluster
from .driver import SimTransport, current_cluster
from .scenario import ProducerSpec, Scenario, encode
from .testing import run_sandboxed
from .trace import Trace

#: virtual seconds allowed after the main phase for the run to settle.
SETTLE_BOUND = 300.0


@dataclass(frozen=True)
class SimOptions:
    seed: int
    workers: int = 3
    duration: float = 30.0


@dataclass
class SimReport:
    """Outcome of one run: summary lines, violations and the trace."""

    options: SimOptions
    target: str
    trace: Trace
    summary: list[str] = field(default_factory=list)
    violations: list[checks.Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def sha256(self) -> str:
        return self.trace.sha256()


class RunResult:
    """What scenario checks see after the run: client input and final topic contents."""

    def __init__(self, cluster: SimCluster, apps: list[Any], produced: dict[str, list[Any]]):
        self._cluster = cluster
        self.apps = apps
        self._produced = produced

    def produced(self, topic: str) -> list[Any]:
        """Values the simulated clients produced to ``topic``, in order."""
        return list(self._produced.get(topic, []))

    def records(self, topic: str) -> list[ConsumerRecord]:
        """Every record in ``topic`` at the end (the final full read)."""
        return self._cluster.records(topic)

    def table(self, name: str) -> dict[Any, Any]:
        """The table as its changelog describes it (what a recovering worker rebuilds)."""
        table = self.apps[0].tables.tables[name]
        return checks.fold_changelog(table, self._cluster)


def run(
    target: str, options: SimOptions, *, scenario: Callable[[Scenario], None] | None = None
) -> SimReport:
    """Run ``target`` once under simulation with ``options``.

    ``scenario`` replaces the module's ``sim_scenario`` hook (benchmarks and
    tests use it to feed other input to the same app).
    """

    async def main() -> SimReport:
        return await Simulation(target, options, scenario=scenario).run()

    return run_sandboxed(main, seed=options.seed)


class Simulation:
    """The main coroutine of a run."""

    def __init__(
        self,
        target: str,
        options: SimOptions,
        *,
        scenario: Callable[[Scenario], None] | None = None,
    ):
        self.target = target
        self._scenario_hook = scenario
        self.options = options
        self.trace = Trace(asyncio.get_running_loop().time)
        seed = options.seed
        self.cluster = SimCluster(self.trace, rng=random.Random(f"{seed}/network"))
        self.client_rng = random.Random(f"{seed}/clients")
        self.apps: list[Any] = []
        self.produced: dict[str, list[Any]] = {}
        self.report = SimReport(options, target, self.trace)

    async def run(self) -> SimReport:
        token = current_cluster.set(self.cluster)
        try:
            scenario = self._load_scenario()
            for spec in scenario.topics:
                self.cluster.create_topic(spec.name, spec.partitions, spec.config, by="operator")
            await self._start_workers()
            clients = [asyncio.ensure_future(self._feed(spec)) for spec in scenario.producers]
            await asyncio.sleep(self.options.duration)
            await asyncio.gather(*clients)
            await self._settle()
            self._check(checks.tables_match_changelog(self.apps, self.cluster))
            for app in self.apps:
                await app.stop()
            self._final_checks(scenario)
            self._summarise(scenario)
            return self.report
        finally:
            current_cluster.reset(token)

    # -- set-up ---------------------------------------------------------------
    def _load_scenario(self) -> Scenario:
        module, _ = load_isolated(self.target)
        scenario = Scenario()
        hook = self._scenario_hook or getattr(module, "sim_scenario", None)
        if callable(hook):
            hook(scenario)
        return scenario

    async def _start_workers(self) -> None:
        for index in range(self.options.workers):
            _, app = load_isolated(self.target)
            name = f"w{index + 1}"
            app.transport = SimTransport(cluster=self.cluster, name=name)
            app.client_name = name
            app.trace_hook = self.trace.record
            self.apps.append(app)
        for app in self.apps:
            await app.start()

    async def _feed(self, spec: ProducerSpec) -> None:
        producer = SimTransport(cluster=self.cluster, name=spec.name).create_producer(
            client_id=spec.name
        )
        await asyncio.sleep(spec.start)
        sent = self.produced.setdefault(spec.topic, [])
        for item in spec.records:
            key, value = item if spec.keyed else (None, item)
            await producer.send(spec.topic, key=encode(key), value=encode(value))
            sent.append(value)
            if spec.every:
                await asyncio.sleep(spec.every)

    async def _settle(self) -> None:
        """Wait (bounded) until every consumed partition is committed to its end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_BOUND
        while loop.time() < deadline:
            if checks.converged(self.cluster, self._group_id, self._consumed_topics) is None:
                return
            await asyncio.sleep(0.5)

    # -- checks ----------------------------------------------------------------
    @property
    def _group_id(self) -> str:
        return self.apps[0].conf.id

    @property
    def _consumed_topics(self) -> set[str]:
        return {name for topic in self.apps[0].acking_topics() for name in topic.topics}

    def _check(self, violation: checks.Violation | None) -> None:
        if violation is not None:
            self.report.violations.append(violation)

    def _final_checks(self, scenario: Scenario) -> None:
        topics = self._consumed_topics
        self._check(checks.converged(self.cluster, self._group_id, topics))
        self._check(checks.partition_order(self.trace))
        self._check(checks.no_lost_input(self.trace, self.cluster, topics))
        result = RunResult(self.cluster, self.apps, self.produced)
        for name, fun in scenario.checks:
            try:
                fun(result)
            except AssertionError as exc:
                self._check(checks.Violation(name, str(exc) or "assertion failed"))

    def _summarise(self, scenario: Scenario) -> None:
        lines = self.report.summary
        for spec in scenario.producers:
            lines.append(f"client {spec.name}: produced {len(self.produced.get(spec.topic, []))} records to {spec.topic!r}")
        for app in self.apps:
            count = sum(1 for e in self.trace.events if e.actor == app.client_name and e.kind == "deliver")
            lines.append(f"worker {app.client_name}: processed {count} events")
        rebalances = sum(1 for _ in self.trace.of_kind("rebalance"))
        lines.append(f"group {self._group_id}: {rebalances} rebalance(s), {len(self.trace.lines)} trace lines")

