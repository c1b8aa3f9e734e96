"""``detstream.clock``: the sanctioned sources of wall time, UUIDs and randomness."""

from __future__ import annotations

import random

from detstream.clock import new_random, uuid_str
from sim.testing import run_sandboxed


def test_new_random_replays_with_the_seed_and_shifts_no_other_stream():
    async def draws() -> tuple[list[float], str]:
        own = new_random()
        return [own.random() for _ in range(3)], uuid_str()

    async def no_draws() -> str:
        new_random()
        return uuid_str()

    first, second = run_sandboxed(draws, seed=7), run_sandboxed(draws, seed=7)
    assert first == second and run_sandboxed(draws, seed=8)[0] != first[0]
    assert first[1] == run_sandboxed(no_draws, seed=7)  # its draws took nothing from UUIDs
    assert isinstance(new_random(), random.Random) and new_random() is not new_random()
