"""Errors raised by the simulation runtime.

They are separate from ``detstream.errors`` because ``sim`` must stay
importable without the engine, and because these errors describe the
simulation itself going wrong (or being asked for something it cannot do),
not the app.
"""

from __future__ import annotations

DEFAULT_HINT = (
    "reach the broker through the app's transport, or run this code outside `detstream sim`"
)


class SimulationError(Exception):
    """Base class: the simulation cannot continue or was misused."""


class Deadlock(SimulationError):
    """Nothing is runnable and no timer is scheduled: the run can never progress.

    A real loop would hang forever here; the virtual loop raises instead, with
    one description per pending task in :attr:`tasks` (also in the message).
    """

    def __init__(self, message: str, tasks: list[str]) -> None:
        super().__init__(message)
        self.tasks: list[str] = list(tasks)


class RealIOForbidden(SimulationError):
    """Code under simulation tried to touch the real world (network, threads, processes).

    Such calls would make the run depend on things outside the seed, so they
    are refused with the name of the call, instead of silently misbehaving.
    """

    def __init__(self, call: str, what: str = "real network I/O", hint: str = DEFAULT_HINT) -> None:
        super().__init__(
            f"{call} is {what}, which a simulation cannot run deterministically: {hint}"
        )
        self.call: str = call
