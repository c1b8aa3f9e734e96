"""A simulated worker process: an App built from the project, started, crashed, restarted.

Each incarnation imports the project afresh, so a crash really throws its
memory away; its tasks are found by owner (``sim.loop.task_owner``) and
cancelled, and its transport is severed first so no cleanup code of the dead
process reaches the cluster. Its data directory survives, as a disk would.
So do its host's network conditions (``LinkConditions``: delay and drop
faults), which every incarnation's link shares.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from detstream.autodiscover import init_worker
from detstream.loader import load_isolated
from detstream.models import reset_registry, use_registry
from detstream.stopping import SHUTDOWN_TIMEOUT, stop_deadline

from .cluster import SimCluster
from .driver import SimTransport
from .loop import describe_task, task_code_files, task_owner
from .network import LinkConditions
from .trace import Trace

if TYPE_CHECKING:
    from .wire.cluster import WireCluster


class _StartFailed(Exception):
    """``app.start()`` raised (the cause): the incarnation's process exits."""


#: how long the process supervisor waits before restarting a worker whose App crashed.
SUPERVISOR_RESTART_DELAY = 5.0


class CrashReport(NamedTuple):
    """What a kill -9 interrupted."""

    #: processed-or-in-flight messages not yet committed (work at-least-once redoes).
    uncommitted: int
    #: a produce batch was queued or in flight, or a fetched batch was not fully processed.
    mid_batch: bool


class SimWorker:
    """One worker slot (``w1``, ``w2``, ...) and its current incarnation."""

    #: as ``detstream worker``'s: a graceful stop that takes longer is cancelled there.
    shutdown_timeout = SHUTDOWN_TIMEOUT

    def __init__(
        self, name: str, target: str, cluster: SimCluster, trace: Trace, datadir: Path,
        *, actor: str | None = None, wire: WireCluster | None = None, static_membership: bool = False,
    ):
        self.name = name
        #: each incarnation joins its group as static member ``name`` (``consumer_group_instance_id``).
        self.static_membership = static_membership
        #: who its trace lines are from: the name, or for a second live process with this name
        #: (a ``twin`` fault's replacement) a name of its own, so checks tell the two apart.
        self.actor = actor or name
        #: the production driver on the simulated brokers' wire (``--driver aiokafka``), or
        #: None: the sim driver stands in for the Kafka client.
        self.wire = wire
        self.target = target
        self.cluster = cluster
        self.trace = trace
        self.datadir = datadir
        self.incarnation = 0
        self.app: Any = None
        self.transport: SimTransport | None = None
        self.up = False
        #: the host's network: delay and drop faults outlive a crash of the process.
        self.network = LinkConditions()
        self._watcher: asyncio.Future[None] | None = None
        #: the run's main phase is over: tasks, timers and crontabs stay stopped, restarts included.
        self.quiesced = False
        #: an App crash of this process is not restarted: the run is ending (its workers are
        #: being stopped), or a replacement took its slot (a ``twin`` fault's zombie).
        self.ending = False

    @property
    def owner(self) -> str:
        return f"{self.actor}#{self.incarnation}"

    async def start(self) -> None:
        """Start a fresh incarnation: new import, new App, same name and datadir.

        One process per worker slot, as under a process supervisor: if an
        incarnation is up already (the supervisor restarted a crashed App
        while a ``restart`` fault was stopping it), this start does nothing.
        """
        if self.up:
            self.trace.record(self.actor, "start-skipped", incarnation=self.incarnation)
            return
        self.incarnation += 1
        # A process of its own: its Record classes are the only ones it decodes to
        # (tasks the app starts below inherit the registry from this context).
        registry_token = use_registry({})
        try:
            await self._start_incarnation()
        except _StartFailed as failed:
            await self._start_failed(failed.__cause__)
            return
        finally:
            reset_registry(registry_token)
        # Owned by the runner, not the incarnation: it outlives the crash it handles.
        self._watcher = asyncio.ensure_future(self._exit_when_crashed(self.app, self.incarnation))

    async def _start_incarnation(self) -> None:
        _, app = load_isolated(self.target)
        if self.wire is None:
            self.transport = SimTransport(
                cluster=self.cluster, name=self.actor, app=app, conditions=self.network
            )
            app.transport = self.transport
        else:
            self.wire.host(self.actor, self.network)
            app.transport = self.wire.transport_for(app)
        app.client_name = self.name  # its transactional id: the same for a twin's two processes
        if self.actor == self.name:
            app.trace_hook, app.trace_atoms_hook = self.trace.record, self.trace.record_atoms
        else:
            app.trace_hook, app.trace_atoms_hook = self._record_as_actor, self._record_atoms_as_actor
        app.conf.datadir = str(self.datadir)
        if self.static_membership:  # the slot's name: the same for a restart and for a twin
            app.conf.consumer_group_instance_id = self.name
        self.app = app
        if self.quiesced:  # a start after the main phase: the app's own sources stay off
            await app.stop_sources()
        init_worker(app)  # on_worker_init, as `detstream worker` sends it in each process
        if self.incarnation > 1:
            self.trace.record(self.actor, "start", incarnation=self.incarnation)
        token = task_owner.set(self.owner)
        try:
            await app.start()
        except Exception as exc:
            raise _StartFailed() from exc
        finally:
            task_owner.reset(token)
        self.up = True

    def _record_as_actor(self, _client_name: str, kind: str, **fields: Any) -> None:
        """The app's trace hook when its client name is shared with a twin: lines name the actor."""
        self.trace.record(self.actor, kind, **fields)

    def _record_atoms_as_actor(self, _client_name: str, kind: str, fields: dict[str, Any]) -> None:
        """``_record_as_actor`` for the app's atoms hook."""
        self.trace.record_atoms(self.actor, kind, fields)

    async def _start_failed(self, error: BaseException | None) -> None:
        """``app.start()`` raised (a table it must read first is refused to it, say).

        ``detstream worker`` then exits with status 1, as when the App
        crashes later: the incarnation is torn down as a kill -9 and the
        process supervisor starts a new one after ``SUPERVISOR_RESTART_DELAY``.
        """
        incarnation = self.incarnation
        self.trace.record(self.actor, "app-crashed", incarnation=incarnation,
                          error=type(error).__name__ if error is not None else "-")
        await self.crash()
        self._watcher = asyncio.ensure_future(self._restart_later(incarnation))

    async def _restart_later(self, incarnation: int) -> None:
        """What the process supervisor does after the process exited: start it again."""
        await asyncio.sleep(SUPERVISOR_RESTART_DELAY)
        if not self.up and self.incarnation == incarnation and not self.ending:
            await self.start()

    async def _exit_when_crashed(self, app: Any, incarnation: int) -> None:
        """The process ends when its App crashes; a process supervisor restarts it.

        ``detstream worker`` exits with status 1 when the App crashes (an agent
        under ``CrashingSupervisor``, a supervisor past its restart limit, an
        engine loop that failed); systemd or Kubernetes then start it again.
        The simulated worker does the same: no graceful stop, restart after
        ``SUPERVISOR_RESTART_DELAY`` virtual seconds.
        """
        await app._crashed.wait()  # mode.Service's crash event (app.crashed reads it)
        if not self.up or self.incarnation != incarnation:
            return
        reason = app.crash_reason
        self.trace.record(self.actor, "app-crashed", incarnation=incarnation,
                          error=type(reason).__name__ if reason is not None else "-")
        await self.crash()
        await self._restart_later(incarnation)

    async def quiesce(self) -> None:
        """The main phase is over: stop the app's tasks, timers and crontabs, now and after restarts.

        They are the app's own sources of input (a timer that sends every
        100 ms never lets the run drain). Agents, commits and table writes
        go on, so what they sent is processed. Traced as ``sources-stopped``
        when the running app has any.
        """
        self.quiesced = True
        app = self.app
        if app is None:
            return
        names = app.source_names()
        if self.up and names:
            self.trace.record(self.actor, "sources-stopped", names=names)
        await app.stop_sources()

    async def stop(self) -> bool:
        """Graceful stop: in-flight events finish, offsets are committed, the group is left.

        Under the deadline ``detstream worker`` sets: what waits for the cluster
        past it is given up, so the stop ends within ``shutdown_timeout`` even
        with the brokers unreachable (the runner holds it to that). False if
        there was nothing to stop (the process had crashed meanwhile).
        """
        if not self.up:
            return False  # the process is gone already (it crashed meanwhile): nothing gets the SIGTERM
        self.up = False
        self._stop_watching()
        self.app.stop_deadline = stop_deadline(asyncio.get_running_loop().time(), self.shutdown_timeout)
        await self.app.stop()
        return True

    async def exit(self) -> list[tuple[str, list[str]]]:
        """The process exits after its graceful stop, as ``detstream worker`` does: what still runs dies.

        Returns each task that was still running (its description and the
        files of its coroutine chain), for the runner's ``stopped-app-idle``
        check; traced as ``exit-killed`` when there are any.
        """
        left = asyncio.get_running_loop().tasks_owned_by(self.owner)  # type: ignore[attr-defined]
        if not left:
            return []
        found = [(describe_task(task), task_code_files(task)) for task in left]
        self.trace.record(self.actor, "exit-killed", incarnation=self.incarnation,
                          tasks=[task.get_name() for task in left])
        await _kill(left)
        return found

    def _stop_watching(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()

    async def stall(self, duration: float) -> None:
        """Zombie: the group consumer stops heartbeating for ``duration``; agents keep running.

        For a share of stalls drawn from the seed (``sim.client_faults``) the
        process also lost touch with its group coordinator: its commits and
        TxnOffsetCommit wait for the stall's end too (on the wire they always do).

        Returns when the stall is over (the consumer then finds it was
        expelled, if the stall outlasted the session timeout, and rejoins).
        """
        incarnation = self.incarnation
        self.trace.record(self.actor, "stall", incarnation=incarnation, duration=duration)
        if self.wire is not None:  # aiokafka's coordination connections hold their requests
            self.wire.cut_from_group(self.actor, asyncio.get_running_loop().time() + duration)
        else:
            assert self.transport is not None
            hold = self.cluster.client_faults.stall_holds_group()
            if hold:
                self.cluster.stats["stall-holds-group"] += 1
                self.trace.record(self.actor, "stall-holds-group", incarnation=incarnation)
            self.transport.stall(duration, hold_group=hold)
        await asyncio.sleep(duration)
        if self.up and self.incarnation == incarnation:
            self.trace.record(self.actor, "stall-end", incarnation=incarnation)

    async def crash(self) -> CrashReport:
        """kill -9: no graceful code reaches the cluster.

        Reports how many processed-or-in-flight messages were not yet committed
        (the work at-least-once will redo, and a lost-update bug would lose),
        and whether a batch was in the middle of being produced or processed.
        """
        app = self.app  # this incarnation's: a restart may make the next one while its tasks die
        uncommitted = app.conductor.uncommitted()
        busy = self.transport.busy() if self.transport is not None else False
        mid_batch = busy or _processing_a_batch(app.conductor)
        self.trace.record(self.actor, "crash", incarnation=self.incarnation, uncommitted=uncommitted)
        self.up = False
        self._stop_watching()
        if self.transport is not None:
            self.transport.sever()
        if self.wire is not None:  # the process's sockets close; what it sent still arrives
            self.wire.sever(self.owner)
        await _kill(asyncio.get_running_loop().tasks_owned_by(self.owner))  # type: ignore[attr-defined]
        # writes not yet on disk are lost, as in a real crash, and the process's file locks
        # go with it (a RocksDB partition's LOCK, which the next incarnation takes)
        app.tables.close()
        return CrashReport(uncommitted, mid_batch)


#: virtual seconds after which a killed process's tasks still running are cancelled again.
KILL_GRACE = 1.0


async def _kill(tasks: list[asyncio.Task[Any]]) -> None:
    """End every task of a killed process: a cancellation a task swallows is repeated.

    kill -9 leaves no code running, but a cancelled task can swallow its
    cancellation: Python 3.11's ``asyncio.wait_for`` returns the result when
    its awaitable finishes in the same step, and the task goes on (a revoke
    listener then waited on a dead producer: concurrent_actors, default seed
    192, ran to 30,000 virtual seconds). Every ``KILL_GRACE`` seconds the
    tasks still running are cancelled again; a run where every task ends
    at the first cancellation is scheduled exactly as before.
    """
    if not tasks:
        return
    loop = asyncio.get_running_loop()
    for task in tasks:
        task.cancel()
    watchdog: list[asyncio.TimerHandle] = []

    def cancel_again() -> None:
        running = [task for task in tasks if not task.done()]
        for task in running:
            task.cancel()
        if running:
            watchdog[0] = loop.call_later(KILL_GRACE, cancel_again)

    watchdog.append(loop.call_later(KILL_GRACE, cancel_again))
    try:
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        watchdog[0].cancel()


def _processing_a_batch(conductor: Any) -> bool:
    """Whether the conductor holds fetched messages not yet delivered, or delivered and not acked."""
    if getattr(conductor, "undelivered", ()):
        return True
    return any(conductor.tracker.in_flight(tp) for tp in sorted(conductor.assignment()))
