"""Run a project under simulation: workers, clients, faults, checks, trace.

One run = one seed. Every random choice is drawn from a stream derived from
the seed per subsystem (network, faults, clients), so a run is a pure
function of (code, seed, options): its trace hash proves it, and a changed
fault plan does not reshuffle the network.

Phases: the *main* phase runs clients and the fault plan for ``duration``
virtual seconds. When it ends the apps' own sources (tasks, timers,
crontabs) stop on every worker, and stay stopped on any worker that starts
later; the clients send what is left of their records, the last faults
happen and crashed workers come back (*heal*). The *settle* phase must then
converge within ``SETTLE_BOUND``: every worker up, every consumed partition
committed to its end, no table recovering, no table write waiting for its
changelog record, no produced record in flight or in an open transaction.
That is a consistent cut: the tables are compared
with their changelogs there, before anything can move again. Checks then
read the trace and the final topics, and the final read (``sim.final_read``)
compares every written topic with the history of writes, Jepsen style.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import operator
import tempfile
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from detstream._types import ConsumerRecord
from detstream.faust_compat import faust_alias
from detstream.loader import cached_lookups, load_isolated

from . import checks
from .client_faults import ClientFaults
from .cluster import ClusterConfig, SimCluster
from .driver import current_cluster
from .fault_effects import apply_fault
from .faults import BROKER_KINDS, Fault, FaultPlan, plan_faults
from .final_read import final_read
from .group import member_client
from .loop import VirtualEventLoop
from .producer import SimProducer
from .sandbox import EPOCH
from .scenario import ProducerSpec, Scenario, encode, load_scenario_file
from .seeds import SeedStreams
from .testing import run_sandboxed
from .trace import Trace, TraceEvent, takes_over
from .workers import SimWorker

if TYPE_CHECKING:
    from .wire.cluster import WireCluster

#: how a simulated client turns one key or value into bytes.
Encoder = Callable[[Any], bytes | None]

#: virtual seconds allowed after the main phase for the run to settle.
SETTLE_BOUND = 300.0
#: how long a commit-triggered crash waits for its worker's next commit before firing anyway.
COMMIT_WAIT = 10.0


@dataclass(frozen=True)
class SimOptions:
    seed: int
    workers: int = 3
    duration: float = 30.0
    faults: str = "none"
    #: a fixed plan (``--plan FILE``, shrinking); overrides ``faults``.
    plan: FaultPlan | None = None
    #: permute ready callbacks each loop iteration (seeded): explores interleavings.
    shuffle: bool = False
    #: brokers of the simulated cluster (partition leaders, coordinators).
    brokers: int = 3
    #: a Python file defining ``sim_scenario(sim)``, used instead of the target's own hook.
    scenario: str | None = None
    #: what the workers' Apps talk to the cluster with: ``sim`` (the sim driver stands in
    #: for the Kafka client) or ``aiokafka`` (the production driver, on the wire: ``sim.wire``).
    driver: str = "sim"
    #: static membership (KIP-345): each worker joins with its slot's name (``w1``, ...) as its
    #: ``consumer_group_instance_id``, as a StatefulSet names its pods; so does a restart of it,
    #: and a ``twin`` fault's replacement (two live processes with one instance id).
    static_membership: bool = False
    #: ``"on"``/``"force"``: the project's ``import faust`` resolves to detstream during the run
    #: (``--faust-compat``, see ``detstream.faust_compat``); ``"force"`` hides a real faust.
    faust_compat: str | None = None


@dataclass
class SimReport:
    """Outcome of one run: set-up and summary lines, violations and the trace."""

    options: SimOptions
    target: str
    trace: Trace
    plan: FaultPlan
    setup: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    violations: list[checks.Violation] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)
    #: the simulated cluster at the end of the run (topics, groups, write history).
    cluster: SimCluster | None = None
    #: the faults of the plan that happened, in the order they were applied (the
    #: trace's ``fault`` lines name only their kind and target).
    applied: list[Fault] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def sha256(self) -> str:
        return self.trace.sha256()


class RunResult:
    """What scenario checks see after the run: client input, faults and final topics."""

    def __init__(self, cluster: SimCluster, apps: list[Any], produced: dict[str, list[Any]], faults: list[Fault]):
        self._cluster = cluster
        self.apps = apps
        self._produced = produced
        #: faults that happened, in order.
        self.faults = faults

    @property
    def crashes(self) -> int:
        """Faults after which at-least-once may process input twice.

        Kill -9s, zombie stalls and twins, graceful stops with the cluster
        unreachable (their final commit cannot land); and the faults that can
        make a commit fail or a plain producer's retry append twice: dropped
        and delayed requests, broker crashes and restarts, leader moves.
        """
        return sum(1 for f in self.faults if f.kind in _REPROCESSING_KINDS or f.unreachable)

    @property
    def exactly_once(self) -> bool:
        return self.apps[0].conf.processing_guarantee == "exactly_once"

    def produced(self, topic: str) -> list[Any]:
        """Values the simulated clients produced to ``topic``, in order."""
        return list(self._produced.get(topic, []))

    def records(self, topic: str) -> list[ConsumerRecord]:
        """Every record in ``topic`` at the end (the final full read)."""
        return self._cluster.records(topic)

    def overtaken_keys(self, topic: str) -> set[bytes | None]:
        """Keys of ``topic`` whose last record is older than the last write of the key known to land.

        A late write: one a gone process sent (a stop that gave up while its
        host was cut off, a crash), held by the network and appended after the
        partition's new owner wrote the key, so the key's latest record is
        stale (a changelog: the table recovered from it loses the newer
        updates). At-least-once would have no way to fence it (Kafka Streams
        under at_least_once has the hole); detstream's Kafka driver aborts a
        connection closed with requests in flight, and every connection of a
        dying process, so the kernel discards such a request
        (``detstream.transport.kafka.abortive_close``): this set should be
        empty, and tests say so.

        A key counts when its last record in the log matches no write of the
        key sent at or after the last one known to have landed (acknowledged,
        or appended where the history knows its offset): a gone process never
        hears of its late write, so its offset is not always known.
        """
        writes: dict[tuple[int, bytes | None], list[Any]] = {}
        for write in self._cluster.history.writes:  # in send order
            if write.tp.topic == topic:
                writes.setdefault((write.tp.partition, write.key), []).append(write)
        last: dict[tuple[int, bytes | None], bytes | None] = {}
        for record in self._cluster.records(topic):  # partition by partition, in offset order
            last[(record.partition, record.key)] = record.value
        stale = set()
        for (partition, key), value in last.items():
            sent = writes.get((partition, key), [])
            landed = [i for i, write in enumerate(sent) if write.acked or write.offsets]
            if landed and all(write.value != value for write in sent[landed[-1]:]):
                stale.add(key)
        return stale

    def events(self, kind: str) -> list[TraceEvent]:
        """The run's trace events of ``kind``, in order (e.g. ``window-close``)."""
        return list(self._cluster.trace.of_kind(kind))

    @staticmethod
    def wall_time(event: TraceEvent) -> float:
        """The virtual wall clock (``time.time()`` in the run) when ``event`` happened."""
        return EPOCH + event.time

    def table(self, name: str) -> dict[Any, Any]:
        """The table as its changelog describes it (what a recovering worker rebuilds)."""
        table = self.apps[0].tables.tables[name]
        return checks.fold_changelog(table, self._cluster)


def _nothing_in_flight(app: Any) -> bool:
    """No record the app sent is unacknowledged, or waits in its open transaction."""
    if app.tables.unflushed:  # table writes whose changelog record waits for a commit
        return False
    producer = app._producer
    if producer is None:
        return True
    if producer.transactional and producer.in_transaction:
        return False
    return producer.settled


#: fault kinds after which an at-least-once app may process some input twice.
#: a trace event's actor (``Counter(map(_ACTOR, events))``: counted in C).
_ACTOR = operator.attrgetter("actor")


def recoveries_interrupted(trace: Trace) -> int:
    """Table recoveries whose worker lost partitions to a rebalance before they ended.

    A window the membership faults must reach: a worker still rebuilding its
    tables for one assignment is told to give partitions up for the next. A
    crash ends a recovery too, but that is counted as a crash.
    """
    recovering: set[str] = set()
    interrupted = 0
    for event in trace.of_kinds("recovery-start", "recovery-done", "revoked", "crash"):
        if event.kind == "recovery-start":
            recovering.add(event.actor)
        elif event.actor in recovering:
            recovering.discard(event.actor)
            interrupted += event.kind == "revoked"
    return interrupted


_REPROCESSING_KINDS = frozenset(
    {"crash", "stall", "twin", "drop", "delay", "refuse", "deny_reads", "cut", *BROKER_KINDS}
)


def run(
    target: str, options: SimOptions, *, scenario: Callable[[Scenario], None] | None = None
) -> SimReport:
    """Run ``target`` once under simulation with ``options``.

    ``scenario`` replaces the module's ``sim_scenario`` hook (benchmarks and
    tests use it to feed other input to the same app).
    """

    # Made before the sandbox: inside it, tempfile would seed its name generator
    # from the run's seeded randomness and shift every later draw of the process.
    # The run's worker starts look the project's files up once (``cached_lookups``).
    with tempfile.TemporaryDirectory(prefix="detstream-sim-") as datadir, _faust_alias(options), \
            cached_lookups():

        async def main() -> SimReport:
            return await Simulation(target, options, Path(datadir), scenario=scenario).run()

        return run_sandboxed(main, seed=options.seed, shuffle=options.shuffle)


def _text_as(encode_text: Callable[[str], bytes | None]) -> Callable[[Any], bytes | None]:
    """:func:`~sim.scenario.encode`, but str through ``encode_text`` (a topic's schema)."""

    def encode_item(item: Any) -> bytes | None:
        return encode_text(item) if isinstance(item, str) else encode(item)

    return encode_item


def _faust_alias(options: SimOptions) -> contextlib.AbstractContextManager[None]:
    """The Faust alias for the run, if asked (a no-op where the process installed it already)."""
    if not options.faust_compat:
        return contextlib.nullcontext()
    return faust_alias(force=options.faust_compat == "force")


class Simulation:
    """The main coroutine of a run."""

    def __init__(
        self,
        target: str,
        options: SimOptions,
        datadir: Path,
        *,
        scenario: Callable[[Scenario], None] | None = None,
    ):
        self.target = target
        self.options = options
        self.datadir = datadir
        self._scenario_hook = scenario
        loop = asyncio.get_running_loop()
        self.trace = Trace(loop.clock if isinstance(loop, VirtualEventLoop) else loop.time)
        seed = options.seed
        streams = SeedStreams(seed)
        self.cluster = SimCluster(
            self.trace, rng=streams.network(), errors=streams.errors(), members=streams.members(),
            admin=streams.admin(), stops=streams.stops(),
            config=ClusterConfig(brokers=options.brokers),
            client_faults=ClientFaults(stalls=streams.stalls(), senders=streams.client_faults(),
                                       refusals=streams.refusals()),
        )
        self.plan = options.plan or plan_faults(
            seed, options.faults, options.workers, options.duration, options.brokers
        )
        self.workers: dict[str, SimWorker] = {}
        self.retired: list[SimWorker] = []
        #: the simulated brokers on the wire, for ``driver="aiokafka"`` (made in ``run``).
        self.wire: WireCluster | None = None
        self.produced: dict[str, list[Any]] = {}
        self.client_counts: Counter[str] = Counter()
        self.applied: list[Fault] = []
        self._restarts: list[asyncio.Task[None]] = []
        #: the main phase is over: workers (started later too) run no tasks, timers or crontabs.
        self.quiesced = False
        self.report = SimReport(options, target, self.trace, self.plan, cluster=self.cluster,
                                applied=self.applied)

    async def run(self) -> SimReport:
        token = current_cluster.set(self.cluster)
        self.cluster.cleaner.start()
        if self.options.driver == "aiokafka":
            from .wire.cluster import WireCluster

            self.wire = WireCluster(self.cluster)
        try:
            scenario = self._load_scenario()
            self._describe_setup()
            for spec in scenario.topics:
                self.cluster.create_topic(spec.name, spec.partitions, spec.config, by="operator")
            await self._start_workers()
            clients = [asyncio.ensure_future(self._feed(spec, self._client_encoders(spec.topic)))
                       for spec in scenario.producers]
            faults = asyncio.ensure_future(self._apply_faults())
            await asyncio.sleep(self.options.duration)
            await self._quiesce()
            await asyncio.gather(*clients)
            await faults
            await self._settle()
            self._check_at_cut(checks.tables_match_changelog(self._live_apps(), self.cluster))
            await self._stop_all()
            self._final_checks(scenario)
            self._summarise(scenario)
            return self.report
        finally:
            self.cluster.cleaner.stop()
            if self.wire is not None:
                self.wire.finish()
            current_cluster.reset(token)

    # -- set-up ---------------------------------------------------------------
    def _load_scenario(self) -> Scenario:
        module, _ = load_isolated(self.target)
        scenario = Scenario(seed=self.options.seed)
        hook = self._scenario_hook
        if hook is None and self.options.scenario is not None:
            hook = load_scenario_file(self.options.scenario)
        if hook is None:
            hook = getattr(module, "sim_scenario", None)
        if callable(hook):
            hook(scenario)
        return scenario

    def _describe_setup(self) -> None:
        plan = self.plan
        kinds = ",".join(plan.kinds) or "-"
        self.report.setup.append(
            f"workers={self.options.workers} brokers={self.options.brokers} faults={plan.profile} "
            f"kinds={kinds} planned={len(plan.faults)}"
        )
        self.report.setup.extend(f"plan: {fault.describe()}" for fault in plan.faults)

    # -- what a fault acts on (sim.fault_effects.FaultTarget) ----------------------------
    @property
    def coverage(self) -> Counter[str]:
        return self.report.coverage

    def retire(self, worker: SimWorker) -> None:
        self.retired.append(self.workers.pop(worker.name))

    def until_healed(self, work: Coroutine[Any, Any, None]) -> None:
        self._restarts.append(asyncio.ensure_future(work))

    async def _start_workers(self) -> None:
        """Start the run's workers, each as a process of its own would start.

        On the production driver an App's start returns once its consumer has
        joined the group, so one start awaited after another would stagger the
        joins by a rebalance each and hold the clients' input back until the
        last one joined: those workers start side by side, as a deploy starts
        them. The sim driver's start returns before the join, so its workers
        join together either way; they start one after the other, which keeps
        every sim-driver trace (and each seed pinned by a test) as it was.
        """
        names = [f"w{index + 1}" for index in range(self.options.workers)]
        if self.wire is not None:
            await asyncio.gather(*(self.add_worker(name) for name in names))
            return
        for name in names:
            await self.add_worker(name)

    async def add_worker(self, name: str) -> SimWorker:
        worker = SimWorker(
            name, self.target, self.cluster, self.trace, self.datadir / name, wire=self.wire,
            static_membership=self.options.static_membership,
        )
        worker.quiesced = self.quiesced
        self.workers[name] = worker
        await worker.start()
        return worker

    async def replace_worker(self, worker: SimWorker) -> SimWorker:
        """A new process in ``worker``'s slot, on another host (its own disk), ``worker`` running on.

        Its incarnations continue ``worker``'s numbering, so ``name#n`` stays unique.
        """
        name = worker.name
        replacement = SimWorker(
            name, self.target, self.cluster, self.trace, self.datadir / f"{name}.{worker.incarnation + 1}",
            actor=f"{worker.actor}'", wire=self.wire, static_membership=self.options.static_membership,
        )
        replacement.incarnation = worker.incarnation
        replacement.quiesced = self.quiesced
        self.retired.append(worker)
        self.workers[name] = replacement
        await replacement.start()
        return replacement

    async def _feed(self, spec: ProducerSpec, encoders: tuple[Encoder, Encoder]) -> None:
        # An upstream system's producer: idempotent, Kafka's default since 3.0.
        producer = SimProducer(self.cluster, spec.name, idempotent=True)
        await producer.start()
        await asyncio.sleep(spec.start)
        sent = self.produced.setdefault(spec.topic, [])
        encode_key, encode_value = encoders
        if not spec.every:
            await self._feed_pipelined(producer, spec, sent, encode_key, encode_value)
            return
        for item in spec.records:
            key, value = item if spec.keyed else (None, item)
            await producer.send(spec.topic, key=encode_key(key), value=encode_value(value))
            sent.append(value)
            self.client_counts[spec.name] += 1
            await asyncio.sleep(spec.every)

    async def _feed_pipelined(
        self, producer: SimProducer, spec: ProducerSpec, sent: list[Any],
        encode_key: Callable[[Any], bytes | None], encode_value: Callable[[Any], bytes | None],
    ) -> None:
        """``every=0``: as fast as the producer takes them, acks awaited at the end.

        An upstream that sends a backlog does not wait for each ack before the
        next send (aiokafka's ``send`` returns once the record is queued): the
        records of a partition go out in batches, as they would on Kafka.
        """
        acks = []
        for item in spec.records:
            key, value = item if spec.keyed else (None, item)
            acks.append(await producer.enqueue(
                spec.topic, key=encode_key(key), value=encode_value(value)))
            sent.append(value)
            self.client_counts[spec.name] += 1
        for ack in acks:
            await ack

    def _client_encoders(self, topic_name: str) -> tuple[Encoder, Encoder]:
        """How a client writes keys and values to ``topic_name``: text as the app's topic reads it.

        A topic the app reads as ``value_type=str`` decodes its values with its
        codec, the app's ``value_serializer`` (JSON) unless it names one, as in
        Faust: an upstream producer of text for it writes ``"text"``, so a str
        value goes out through that topic's schema (a str key of a
        ``key_type=str`` topic likewise: raw under the default
        ``key_serializer``). Other keys and values (and text for other topics)
        are written as :func:`~sim.scenario.encode` writes them.

        Asked once per feed when the workers have started (``run``): an
        upstream writes the same bytes whatever state a worker is in later.
        (Asked when a feed began, a feed that began while the first worker
        restarted, its agents not subscribed yet, wrote plain text to a topic
        they read as JSON: every order undecodable, global_lookup chaos seed 6
        under ``--driver aiokafka``.)
        """
        app = next((worker.app for worker in self.live_workers()), self._any_app)
        encode_key: Encoder = encode
        encode_value: Encoder = encode
        for topic in app.topics:
            if topic_name not in topic.topics:
                continue
            schema = topic.schema
            if schema.key_type is str and encode_key is encode:
                encode_key = _text_as(functools.partial(
                    schema.encode_key, default_serializer=app.conf.key_serializer))
            if schema.value_type is str and encode_value is encode:
                encode_value = _text_as(functools.partial(
                    schema.encode_value, default_serializer=app.conf.value_serializer))
        return encode_key, encode_value

    # -- faults ------------------------------------------------------------------
    async def _apply_faults(self) -> None:
        loop = asyncio.get_running_loop()
        armed = []
        for fault in self.plan.faults:
            await asyncio.sleep(max(0.0, fault.at - loop.time()))
            if fault.after_commit is not None:
                armed.append(asyncio.ensure_future(self._fire_after_commit(fault)))
            elif fault.at_assignment:
                armed.append(asyncio.ensure_future(self._fire_at_assignment(fault)))
            else:
                await self._apply_or_skip(fault)
        if armed:
            await asyncio.gather(*armed)
        if self._restarts:
            await asyncio.gather(*self._restarts)
        # Faults end with the main phase: the network heals before the run must converge.
        heals_at = max((w.network.heals_at for w in self.workers.values()), default=0.0)
        if heals_at > loop.time():
            await asyncio.sleep(heals_at - loop.time())

    async def _apply_or_skip(self, fault: Fault) -> None:
        if await apply_fault(fault, self):
            self.applied.append(fault)
        else:
            self.trace.record("faults", "fault-skipped", fault=fault.kind, worker=fault.worker)

    def _actor(self, name: str) -> str:
        """Whose trace lines are the worker slot ``name``'s now (after a twin: the replacement's)."""
        worker = self.workers.get(name)
        return worker.actor if worker is not None else name

    async def _fire_after_commit(self, fault: Fault) -> None:
        """Apply ``fault`` ``after_commit`` seconds after its worker's next accepted commit.

        A worker that commits nothing within ``COMMIT_WAIT`` is crashed anyway.
        """
        actor = self._actor(fault.worker)
        commit = self.trace.next_event(
            lambda e: e.kind == "commit" and member_client(str(e.fields.get("member", "-"))) == actor
        )
        try:
            await asyncio.wait_for(commit, COMMIT_WAIT)
        except asyncio.TimeoutError:
            pass
        await asyncio.sleep(fault.after_commit or 0.0)
        await self._apply_or_skip(fault)

    async def _fire_at_assignment(self, fault: Fault) -> None:
        """Apply ``fault`` when its worker next takes over partitions (or ``COMMIT_WAIT`` later).

        A refusal then meets the rebalance listener's own requests (offset
        lookups for recovery) as well as the sends of the first events: the
        listener's failure path is a window a refusal at a uniform time
        rarely hits. A takeover, not any assignment: only partitions the
        worker did not hold need their tables recovered, so only there does
        a listener that fails half way leave state missing.
        """
        assigned = self.trace.next_event(takes_over(self._actor(fault.worker), self.trace.events))
        try:
            await asyncio.wait_for(assigned, COMMIT_WAIT)
        except asyncio.TimeoutError:
            pass
        await self._apply_or_skip(fault)

    async def stop_or_kill(self, worker: SimWorker) -> None:
        """Stop gracefully within the shutdown timeout; past it, a violation, and the worker is killed.

        As ``detstream worker`` on SIGTERM: a stop still waiting at the timeout
        is cancelled half way (exit 1, clients unclosed), whether or not the
        brokers are reachable.
        """
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            stopped = await asyncio.wait_for(worker.stop(), worker.shutdown_timeout)
        except asyncio.TimeoutError:
            self._check(checks.Violation(
                "graceful-stop",
                f"{worker.name} did not stop within its shutdown timeout of "
                f"{worker.shutdown_timeout:g} virtual seconds (began at t={began:.3f}s"
                f"{', the cluster unreachable' if worker.network.dropping(began) else ''}): "
                "`detstream worker` would cancel the stop half way and exit 1",
                window=(began, began + worker.shutdown_timeout),
            ))
            await worker.crash()
            return
        if not stopped:
            return  # it had crashed: its tasks are killed by the crash
        left = await worker.exit()
        if left:
            self._check(checks.stop_left_nothing_running(worker.name, left, loop.time()))

    async def _quiesce(self) -> None:
        """End of the main phase: every worker's tasks, timers and crontabs stop, for good.

        Retired workers too: a twin's zombie runs on until its host is shut
        down, and a timer of it that sent on would feed the topics after the
        group left them (timer_producer, chaos seed 51: a tick landed after
        the last commit, never processed: a false alarm).
        """
        self.quiesced = True
        for _, worker in sorted(self.workers.items()):
            await worker.quiesce()
        for worker in self.retired:
            if worker.up:
                await worker.quiesce()

    async def _stop_all(self) -> None:
        """Stop every live worker gracefully; from now on a crashed App is not restarted."""
        for worker in self.workers.values():
            worker.ending = True
        for worker in self.live_workers():
            if worker.up:  # an App that crashed while another worker stopped stays down
                await self.stop_or_kill(worker)

    # -- settling and checks -----------------------------------------------------
    def live_workers(self) -> list[SimWorker]:
        return [w for _, w in sorted(self.workers.items()) if w.up]

    def _live_apps(self) -> list[Any]:
        return [w.app for w in self.live_workers()]

    async def _settle(self) -> None:
        """Wait (bounded) for a consistent cut: everything committed, nothing in flight.

        Every worker is up (a restart or a supervisor's restart of a crashed
        App may land here), the group is stable and every worker took its
        generation's assignment (its listener is done), no table recovers, every
        consumed partition is committed to its end, and no app has a
        produced record unacknowledged or in an open transaction. The main
        phase's sources stopped, so once this holds nothing moves: the
        tables in memory can be compared with their changelogs.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SETTLE_BOUND
        while loop.time() < deadline:
            group = self.cluster.groups.get(self._group_id)
            stable = group is None or group.state in ("stable", "empty")
            everyone_up = all(worker.up for worker in self.workers.values())
            # A stable group may have members still in their listener (offset lookups,
            # a delayed link): their tables are not recovering yet, nor are they taken.
            taken = group is None or all(
                app.conductor.taken_generation == group.generation for app in self._live_apps()
            )
            recovering = any(app.tables.recovering for app in self._live_apps())
            if stable and everyone_up and taken and not recovering and checks.converged(
                self.cluster, self._group_id, self._consumed_topics
            ) is None and all(_nothing_in_flight(app) for app in self._live_apps()) and (
                not self.cluster.transactions.open_ids()  # a gone producer's: until its timeout
            ):
                return
            await asyncio.sleep(0.5)

    @property
    def _any_app(self) -> Any:
        return next(iter(self.workers.values())).app

    @property
    def _group_id(self) -> str:
        return self._any_app.conf.id

    @property
    def _consumed_topics(self) -> set[str]:
        return {name for topic in self._any_app.acking_topics() for name in topic.topics}

    def _check(self, violation: checks.Violation | None) -> None:
        if violation is not None:
            self.report.violations.append(violation)

    def _check_at_cut(self, violation: checks.Violation | None) -> None:
        """A check of the consistent cut: it cites no step, so it names the moment it judged."""
        if violation is not None:
            now = asyncio.get_running_loop().time()
            violation.window = (now, now)
        self._check(violation)

    def _final_checks(self, scenario: Scenario) -> None:
        topics = self._consumed_topics
        self._check(checks.converged(self.cluster, self._group_id, topics, self.trace))
        self._check(checks.partition_order(self.trace))
        self._check(checks.no_delivery_during_recovery(self.trace))
        self._check(checks.opened_after_listener(self.trace))
        self._check(checks.no_lost_input(self.trace, self.cluster, topics))
        self._check(checks.no_fenced_commit_accepted(self.trace))
        self._check(checks.no_stale_generation_commit(self.trace))
        self._check(checks.no_delivery_after_fenced(self.trace))
        apps = [w.app for _, w in sorted(self.workers.items())]
        changelogs = {name for app in apps for name in app.tables.changelog_topics}
        self._check(checks.no_changelog_write_after_refusal(
            self.trace, self.cluster.history.writes, changelogs))
        self._check(checks.no_crash_on_a_down_broker(self.trace))
        self._check(checks.changelog_applied_in_order(self.trace, self.cluster))
        result = RunResult(self.cluster, apps, self.produced, self.applied)
        read = final_read(self.cluster, exactly_once=result.exactly_once)
        self.report.violations.extend(read.violations)
        self.report.coverage["duplicate-result"] += read.duplicate_results
        self.report.coverage["duplicate-write"] += read.duplicate_writes
        for name, fun in scenario.checks:
            try:
                fun(result)
            except AssertionError as exc:
                self._check(checks.Violation(name, str(exc) or "assertion failed"))
            except Exception as exc:  # a broken check is a failed run, reported as such
                self._check(checks.Violation(name, f"the check raised {type(exc).__name__}: {exc}"))

    def _summarise(self, scenario: Scenario) -> None:
        lines = self.report.summary
        for spec in scenario.producers:
            count = self.client_counts[spec.name]
            lines.append(f"client {spec.name}: produced {count} records to {spec.topic!r}")
        # Counted from the trace's index by kind (a long run has many events): no Python
        # step per event.
        trace = self.trace
        kinds = trace.kind_counts()
        delivered = Counter(map(_ACTOR, trace.of_kind("deliver")))
        app_crashes = Counter(map(_ACTOR, trace.of_kind("app-crashed")))
        agent_errors = Counter(map(_ACTOR, trace.of_kind("agent-error")))
        listener_failed = sum(1 for e in trace.of_kind("engine-error") if "step" in e.fields)
        sought_back = sum(1 for e in trace.of_kind("opened") if e.fields.get("sought"))
        for name in sorted({w.actor for w in [*self.workers.values(), *self.retired]}):
            raised = f"; its agents raised {agent_errors[name]} times" if agent_errors[name] else ""
            crashed = f"; its App crashed {app_crashes[name]} times" if app_crashes[name] else ""
            lines.append(f"worker {name}: processed {delivered[name]} events{raised}{crashed}")
        for fault in self.applied:
            lines.append(f"fault: {fault.describe()}")
        coverage = self.report.coverage
        coverage["rebalance"] += kinds["rebalance"]
        coverage["recovery"] += kinds["recovery-start"]
        coverage["recovery-interrupted"] += recoveries_interrupted(trace)
        coverage["commit-rejected"] += kinds["commit-rejected"]
        coverage["crash"] += sum(1 for f in self.applied if f.kind == "crash")
        coverage["stall"] += sum(1 for f in self.applied if f.kind == "stall")
        coverage["twin"] += sum(1 for f in self.applied if f.kind == "twin")
        coverage["compact"] += kinds["compact"]
        coverage["retention"] += kinds["retention"]
        coverage["txn-aborted"] += kinds["txn-abort"]
        coverage["txn-timed-out"] += sum(
            1 for e in self.trace.of_kind("txn-abort") if e.fields.get("reason") == "timeout"
        )
        coverage["standby-promoted"] += kinds["standby-promoted"]
        coverage["app-crashed"] += kinds["app-crashed"]
        coverage["stop-gave-up"] += kinds["stop-gave-up"]
        coverage["listener-failed"] += listener_failed
        coverage["open-sought-back"] += sought_back
        always = ("rebalance-during-commit", "broker-failover", "request-dropped", "batch-deduped",
                  "fetch-before-listener", "commit-stale-generation", "fetch-stale-after-seek",
                  "connection-reset", "admin-node-not-ready", "rebalance-at-stop",
                  "stall-holds-group", "producer-sender-dead", "revoke-heartbeat", "request-abandoned",
                  "listener-race")
        for name in sorted(set(always) | set(self.cluster.stats)):
            coverage[name] += self.cluster.stats[name]
        shown = " ".join(f"{k}={coverage[k]}" for k in sorted(coverage))
        lines.append(f"coverage: {shown}")
        lines.append(f"trace: {len(self.trace.lines)} lines")
