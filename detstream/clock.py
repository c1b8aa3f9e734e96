"""The one place engine code reads wall time and fresh UUIDs.

Loop time (``loop.time()``) is the clock for intervals. Wall time is needed
only for record timestamps; reading it here, through the ``time`` module at
call time, lets the simulator's sandbox virtualise it.
"""

from __future__ import annotations

import random
import time
import uuid


def wall_time() -> float:
    """Seconds since the epoch (virtual under ``detstream sim``)."""
    return time.time()  # noqa: TID251 - the single sanctioned wall-clock read


def new_uuid() -> uuid.UUID:
    """A random UUID (seeded under ``detstream sim``)."""
    return uuid.uuid4()  # noqa: TID251 - the single sanctioned uuid source


def uuid_str() -> str:
    """A random UUID as text (Faust's ``faust.uuid()``: ids for requests and tasks)."""
    return str(new_uuid())


def new_random() -> random.Random:
    """A ``random.Random`` of its own, for one consumer of randomness (LiveCheck's sampling).

    Seeded by the OS in production. Under ``detstream sim`` the sandbox seeds
    it from the run's seed when it is made (taking one seed from the stream
    UUIDs come from), so its draws replay with the seed; from then on it is a
    stream of its own, whose draws shift neither the global ``random`` nor
    UUIDs.
    """
    return random.Random()
