"""Where the engine reports its steps: the simulator's trace, or nowhere.

Engine code calls ``tracer.record(kind, **fields)`` for every step a check
or a trace reader needs (a delivery, a commit, a rebalance). In production
nothing listens and ``record`` discards. Under ``detstream sim`` the
simulator binds a hook (``Trace.record``) and the worker's name, and
``record`` becomes that hook with the name already applied: a delivery
costs one call into the trace, not a detour through the App.

Components get the ``Tracer`` at construction and keep it; the App rebinds
it when its ``client_name`` or hook changes, so a component never holds a
stale name.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from detstream._types import TP

__all__ = ["TraceHook", "Tracer"]

#: ``hook(client_name, kind, **fields)``: what the simulator installs.
TraceHook = Callable[..., None]
#: ``atoms_hook(client_name, kind, fields)``: the simulator's path for a step whose fields
#: the engine built as a dict of immutable values (str, bytes, int, float, bool, None, TP).
AtomsHook = Callable[[str, str, dict[str, Any]], None]

#: the value types ``record_atoms`` takes as they are (anything else goes through ``record``).
ATOMS = frozenset({str, bytes, int, float, bool, type(None), TP})


def _discard(kind: str, **fields: Any) -> None:
    """No listener: a step is dropped."""


class Tracer:
    """``record(kind, **fields)`` sends one step to the hook, named after the client.

    ``record_atoms(kind, fields)`` is the same for the hottest steps (a
    delivery, a table write): the caller builds the dict and vouches that
    every value is an immutable atom (``ATOMS``), which spares the simulator
    its check of each field. With no atoms hook it goes through ``record``.
    """

    __slots__ = ("_hook", "_atoms_hook", "_client_name", "record", "record_atoms", "enabled")

    def __init__(self, client_name: str, hook: TraceHook | None = None) -> None:
        self._client_name = client_name
        self._hook = hook
        self._atoms_hook: AtomsHook | None = None
        self.record: Callable[..., None] = _discard
        self.record_atoms: Callable[[str, dict[str, Any]], None] = self._atoms_via_record
        self.enabled = False
        self._bind()

    @property
    def hook(self) -> TraceHook | None:
        return self._hook

    @hook.setter
    def hook(self, hook: TraceHook | None) -> None:
        """Also drops the atoms hook: one set for another hook must not outlive it."""
        self._hook = hook
        self._atoms_hook = None
        self._bind()

    @property
    def atoms_hook(self) -> AtomsHook | None:
        return self._atoms_hook

    @atoms_hook.setter
    def atoms_hook(self, hook: AtomsHook | None) -> None:
        self._atoms_hook = hook
        self._bind()

    @property
    def client_name(self) -> str:
        return self._client_name

    @client_name.setter
    def client_name(self, name: str) -> None:
        self._client_name = name
        self._bind()

    def _bind(self) -> None:
        self.record = _discard if self._hook is None else partial(self._hook, self._client_name)
        atoms = self._atoms_hook
        self.record_atoms = (
            self._atoms_via_record if atoms is None or self._hook is None
            else partial(atoms, self._client_name)
        )
        #: someone listens: a hot path checks it before building a step's fields for nobody.
        self.enabled = self._hook is not None

    def _atoms_via_record(self, kind: str, fields: dict[str, Any]) -> None:
        self.record(kind, **fields)
