"""Coverage of two rebalance windows: a rebalance that interrupts another, a recovery cut short."""

from __future__ import annotations

import asyncio
from collections import Counter

from sim.group import GroupCoordinator, RebalanceInProgressError
from sim.loop import VirtualEventLoop
from sim.runner import recoveries_interrupted
from sim.trace import Trace

TIMEOUTS = {"session_timeout": 10.0, "rebalance_timeout": 10.0}


def test_a_revocation_during_a_recovery_counts_once_a_crash_or_a_finished_one_not():
    trace = Trace(lambda: 0.0)
    trace.record("w1", "recovery-start", tps=["t[0]"])
    trace.record("w2", "recovery-start", tps=["t[1]"])
    trace.record("w1", "revoked", tps=["t[0]"])  # interrupted
    trace.record("w1", "revoked", tps=["t[2]"])  # no recovery open any more
    trace.record("w2", "recovery-done")
    trace.record("w2", "revoked", tps=["t[1]"])  # after its recovery ended
    trace.record("w3", "recovery-start", tps=["t[3]"])
    trace.record("w3", "crash")  # a crash, not a rebalance
    trace.record("w3", "revoked", tps=["t[3]"])
    assert recoveries_interrupted(trace) == 1


def test_a_join_while_members_wait_for_their_assignment_interrupts_the_rebalance():
    loop = VirtualEventLoop()
    stats: Counter[str] = Counter()

    def join(group: GroupCoordinator, member_id: str | None, client: str) -> asyncio.Future:
        return asyncio.ensure_future(
            group.join(member_id, client_id=client, subscription=frozenset({"t"}), **TIMEOUTS))

    async def main() -> tuple[list[int], BaseException | None]:
        group = GroupCoordinator("g", Trace(loop.time), initial_rebalance_delay=0.0, stats=stats)
        first = await join(group, None, "w1")
        await group.sync(first.member_id, first.generation, {first.member_id: set()})
        second = join(group, None, "w2")  # a second member: the round ends once w1 rejoins
        await asyncio.sleep(0)
        rejoined = await join(group, first.member_id, "w1")
        joined = await second
        # the leader sends the assignment; the other member waits for it
        follower = joined if joined.member_id != joined.leader_id else rejoined
        waiting = asyncio.ensure_future(group.sync(follower.member_id, follower.generation, None))
        await asyncio.sleep(0)
        counts = [stats["rebalance-interrupted"]]
        third = join(group, None, "w3")  # before the leader's assignment: a new round begins
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        counts.append(stats["rebalance-interrupted"])
        third.cancel()
        return counts, waiting.exception() if waiting.done() else None

    try:
        counts, error = loop.run_until_complete(main())
    finally:
        loop.close()
    assert counts == [0, 1]
    assert isinstance(error, RebalanceInProgressError)
