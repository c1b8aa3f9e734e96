"""What each kind of fault does to a running simulation.

``sim.faults`` draws *when* and *where* faults happen (a plan is data);
this module says *what* one does when its time comes. Each kind has one
effect, registered under its name in ``EFFECTS``; the runner looks the
effect up and applies it to itself through the small ``FaultTarget``
protocol (the workers, the cluster, the trace, the coverage counters, and
the few run-level actions an effect needs). A new kind is one function
here plus its drawing in ``sim.faults``; a test checks that every kind a
plan may hold has an effect.

An effect returns False when its target cannot take it now (a worker that
is down, the last live worker asked to leave, a broker already stopped);
the runner then records the fault as skipped. An applied effect records
``fault`` in the trace before it acts, so the trace shows cause before
consequence.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from .brokers import parse_broker
from .cluster import SimCluster
from .faults import Fault
from .trace import Trace
from .workers import SimWorker

__all__ = ["EFFECTS", "FaultTarget", "apply_fault"]


class FaultTarget(Protocol):
    """The running simulation as a fault sees it."""

    trace: Trace
    cluster: SimCluster
    #: live and stopped workers by name (a worker that left is not in it).
    workers: dict[str, SimWorker]

    @property
    def coverage(self) -> Counter[str]:
        """The report's coverage counters (what the run reached)."""
        ...

    def live_workers(self) -> list[SimWorker]: ...

    def add_worker(self, name: str) -> Awaitable[SimWorker]: ...

    def replace_worker(self, worker: SimWorker) -> Awaitable[SimWorker]:
        """Start a new process in ``worker``'s slot (same name) while ``worker`` runs on."""
        ...

    def retire(self, worker: SimWorker) -> None:
        """``worker`` left the group for good."""
        ...

    def stop_or_kill(self, worker: SimWorker) -> Awaitable[None]:
        """A graceful stop within the shutdown timeout, else a violation and a kill."""
        ...

    def until_healed(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background; the fault phase ends only once it is done."""
        ...


Effect = Callable[[Fault, FaultTarget], Awaitable[bool]]

#: fault kind -> its effect.
EFFECTS: dict[str, Effect] = {}


def _effect(*kinds: str) -> Callable[[Effect], Effect]:
    def register(effect: Effect) -> Effect:
        for kind in kinds:
            assert kind not in EFFECTS, f"two effects for fault kind {kind!r}"
            EFFECTS[kind] = effect
        return effect

    return register


async def apply_fault(fault: Fault, run: FaultTarget) -> bool:
    """Apply ``fault`` to ``run``; False if its target could not take it now."""
    return await EFFECTS[fault.kind](fault, run)


def _announce(fault: Fault, run: FaultTarget) -> None:
    run.trace.record("faults", "fault", fault=fault.kind, worker=fault.worker)


def _worker_up(fault: Fault, run: FaultTarget) -> SimWorker | None:
    worker = run.workers.get(fault.worker)
    return worker if worker is not None and worker.up else None


# -- worker processes -----------------------------------------------------------------
@_effect("join")
async def _join(fault: Fault, run: FaultTarget) -> bool:
    """A new worker starts and joins the group."""
    if fault.worker in run.workers:
        return False
    _announce(fault, run)
    await run.add_worker(fault.worker)
    return True


@_effect("crash")
async def _crash(fault: Fault, run: FaultTarget) -> bool:
    """kill -9: no graceful shutdown, memory lost; the worker comes back after ``downtime``."""
    worker = _worker_up(fault, run)
    if worker is None:
        return False
    _announce(fault, run)
    crash = await worker.crash()
    run.coverage["crash-with-uncommitted-work"] += crash.uncommitted > 0
    run.coverage["crash-mid-batch"] += crash.mid_batch
    run.until_healed(_start_later(worker, fault.downtime))
    return True


async def _start_later(worker: SimWorker, downtime: float) -> None:
    await asyncio.sleep(downtime)
    await worker.start()


@_effect("restart", "leave")
async def _graceful_stop(fault: Fault, run: FaultTarget) -> bool:
    """SIGTERM: a graceful stop (maybe with the cluster unreachable), then a start or nothing."""
    worker = _worker_up(fault, run)
    if worker is None:
        return False
    if fault.kind == "leave" and len(run.live_workers()) <= 1:
        return False  # the last worker stays: a group with nobody in it tests nothing
    _announce(fault, run)
    if fault.unreachable:
        worker.network.drop(asyncio.get_running_loop().time() + fault.downtime)
        run.coverage["stop-unreachable"] += 1
    await run.stop_or_kill(worker)
    if fault.kind == "restart":
        await worker.start()
    else:
        run.retire(worker)
    return True


@_effect("stall")
async def _stall(fault: Fault, run: FaultTarget) -> bool:
    """A zombie: the group consumer stops heartbeating for ``downtime`` while agents run on."""
    worker = _worker_up(fault, run)
    if worker is None:
        return False
    _announce(fault, run)
    run.until_healed(worker.stall(fault.downtime))
    return True


@_effect("twin")
async def _twin(fault: Fault, run: FaultTarget) -> bool:
    """A zombie and its replacement: two live processes with one name (one transactional id).

    The worker's host is cut off from its group (no heartbeat for
    ``downtime``, agents and producer running on), and a replacement starts
    elsewhere under the same name, as an orchestrator reschedules a pod it
    lost touch with. The zombie keeps processing what it fetched, producing
    and trying to commit until it is fenced (the replacement's producer
    bumps the epoch of their transactional id; the group expels the zombie
    after its session timeout) and, at the latest, until its host is shut
    down when ``downtime`` ends. Nobody restarts it.
    """
    zombie = _worker_up(fault, run)
    if zombie is None:
        return False
    _announce(fault, run)
    zombie.ending = True  # its crashes are not restarted: a replacement took its slot
    run.until_healed(_haunt(zombie, fault.downtime))
    await asyncio.sleep(0)  # cut off first, then the replacement starts
    await run.replace_worker(zombie)
    return True


async def _haunt(zombie: SimWorker, downtime: float) -> None:
    """The zombie's life: stalled for ``downtime``, then its host is shut down (kill -9)."""
    await zombie.stall(downtime)
    if zombie.up:
        await zombie.crash()


# -- brokers ----------------------------------------------------------------------------
@_effect("broker_crash", "broker_restart", "leader_move")
async def _broker(fault: Fault, run: FaultTarget) -> bool:
    """Crash, restart (controlled) or move the leaders of a broker; False if it is down."""
    brokers = run.cluster.brokers
    broker = parse_broker(fault.worker)
    if broker is None or broker not in brokers.up or not brokers.up[broker]:
        return False
    _announce(fault, run)
    if fault.kind == "leader_move":
        brokers.move_leaders(broker)
        return True
    if fault.kind == "broker_crash":
        brokers.crash(broker)
    else:
        brokers.shutdown(broker)
    run.until_healed(_restart_broker_later(run.cluster, broker, fault.downtime))
    return True


async def _restart_broker_later(cluster: SimCluster, broker: int, downtime: float) -> None:
    await asyncio.sleep(downtime)
    cluster.brokers.restart(broker)


# -- a worker host's network and permissions -----------------------------------------
_LINK_ACTIONS: dict[str, Callable[[Any, Fault, float], None]] = {
    "delay": lambda network, fault, until: network.delay(fault.latency, until),
    "drop": lambda network, fault, until: network.drop(until, fault.loss),
    "refuse": lambda network, fault, until: network.refuse(until),
    "deny_reads": lambda network, fault, until: network.deny_reads(until),
    "cut": lambda network, fault, until: network.drop(until, 1.0),
}


@_effect(*_LINK_ACTIONS)
async def _link(fault: Fault, run: FaultTarget) -> bool:
    """Delay, drop, cut off or refuse the requests of a worker's host for ``downtime`` seconds.

    A host outlives its worker's crashes, so a worker that is down still
    takes the fault (it meets it when it comes back).
    """
    worker = run.workers.get(fault.worker)
    if worker is None:
        return False
    _announce(fault, run)
    until = asyncio.get_running_loop().time() + fault.downtime
    _LINK_ACTIONS[fault.kind](worker.network, fault, until)
    return True
