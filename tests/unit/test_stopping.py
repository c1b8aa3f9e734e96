"""A stop's wait for the broker ends at its budget, or sooner once the membership is in doubt.

``finish_unless_in_doubt`` is what a stopping conductor awaits its final commit
with: a member cut off from its group coordinator must give up its writes
before the group can give its partitions to another member.
"""

import asyncio

import pytest

from detstream.stopping import DONE, IN_DOUBT, TIMED_OUT, finish_unless_in_doubt
from sim.testing import simulate


def _doubt_from(at: float):
    """An ``in_doubt`` that holds from loop time ``at`` on."""
    return lambda: asyncio.get_running_loop().time() >= at


async def _forever(ran: list[str]) -> None:
    ran.append("started")
    try:
        await asyncio.sleep(10_000.0)
    except asyncio.CancelledError:
        ran.append("cancelled")
        raise


def test_work_done_in_time_is_done() -> None:
    async def main(cluster):
        loop = asyncio.get_running_loop()
        how = await finish_unless_in_doubt(asyncio.sleep(1.5), 10.0, _doubt_from(99.0), 1.0)
        return how, loop.time()

    assert simulate(main) == (DONE, 1.5)


def test_work_outlasting_the_budget_is_given_up_and_cancelled_at_the_budget() -> None:
    async def main(cluster):
        ran: list[str] = []
        loop = asyncio.get_running_loop()
        how = await finish_unless_in_doubt(_forever(ran), 4.5, _doubt_from(99.0), 1.0)
        return how, loop.time(), ran

    assert simulate(main) == (TIMED_OUT, 4.5, ["started", "cancelled"])


def test_work_is_given_up_at_the_first_look_after_the_doubt_begins_even_without_a_budget() -> None:
    async def main(cluster):
        ran: list[str] = []
        loop = asyncio.get_running_loop()
        how = await finish_unless_in_doubt(_forever(ran), None, _doubt_from(2.5), 1.0)
        return how, loop.time(), ran

    assert simulate(main) == (IN_DOUBT, 3.0, ["started", "cancelled"])


def test_in_doubt_already_the_work_is_not_waited_for_at_all() -> None:
    async def main(cluster):
        ran: list[str] = []
        loop = asyncio.get_running_loop()
        how = await finish_unless_in_doubt(_forever(ran), 30.0, _doubt_from(0.0), 1.0)
        return how, loop.time(), ran

    assert simulate(main) == (IN_DOUBT, 0.0, [])  # cancelled before it ran


def test_an_error_of_the_work_is_raised() -> None:
    async def failing() -> None:
        await asyncio.sleep(0.5)
        raise RuntimeError("commit refused")

    async def main(cluster):
        await finish_unless_in_doubt(failing(), 10.0, _doubt_from(99.0), 1.0)

    with pytest.raises(RuntimeError, match="commit refused"):
        simulate(main)


def test_a_cancelled_stop_cancels_the_work_with_it() -> None:
    async def main(cluster):
        ran: list[str] = []
        waiting = asyncio.ensure_future(
            finish_unless_in_doubt(_forever(ran), None, _doubt_from(99.0), 1.0))
        await asyncio.sleep(2.0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        return ran

    assert simulate(main) == ["started", "cancelled"]
