"""Regression mutants: switches that re-open bugs the simulator must keep catching.

Each bug found on real Kafka gets a named switch here and a test that turns
it on and proves ``detstream sim`` still catches the bug (the verdict is only
worth something if it stays red for a real bug). Engine code asks
``mutants.on("name")`` at the one place the fix lives; with no mutant active
that is one falsy-set test.

Turn them on from the environment for a manual sweep::

    DETSTREAM_MUTANTS=delivery-before-recovery detstream sim examples/word_count.py --seeds 1..50

or in a test with ``with mutants.enabled("delivery-before-recovery"): ...``.
Never set in production: each one loses data on purpose.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

#: every known mutant, with the bug it re-opens (registered by the module that holds the fix).
KNOWN: dict[str, str] = {}

ACTIVE: set[str] = set(filter(None, os.environ.get("DETSTREAM_MUTANTS", "").split(",")))


def register(name: str, bug: str) -> str:
    """Name a mutant and the bug it re-opens; returns ``name`` (for a module constant)."""
    KNOWN[name] = bug
    return name


def on(name: str) -> bool:
    """Whether the mutant ``name`` is active (the bug it names is re-opened)."""
    return bool(ACTIVE) and name in ACTIVE


@contextlib.contextmanager
def enabled(*names: str) -> Iterator[None]:
    """Activate mutants for the duration of a block (tests)."""
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        raise ValueError(f"unknown mutant(s) {unknown}; known: {sorted(KNOWN)}")
    added = set(names) - ACTIVE
    ACTIVE.update(added)
    try:
        yield
    finally:
        ACTIVE.difference_update(added)
