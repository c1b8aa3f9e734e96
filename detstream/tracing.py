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

__all__ = ["TraceHook", "Tracer"]

#: ``hook(client_name, kind, **fields)``: what the simulator installs.
TraceHook = Callable[..., None]


def _discard(kind: str, **fields: Any) -> None:
    """No listener: a step is dropped."""


class Tracer:
    """``record(kind, **fields)`` sends one step to the hook, named after the client."""

    __slots__ = ("_hook", "_client_name", "record", "enabled")

    def __init__(self, client_name: str, hook: TraceHook | None = None) -> None:
        self._client_name = client_name
        self._hook = hook
        self.record: Callable[..., None] = _discard
        self.enabled = False
        self._bind()

    @property
    def hook(self) -> TraceHook | None:
        return self._hook

    @hook.setter
    def hook(self, hook: TraceHook | None) -> None:
        self._hook = hook
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
        #: someone listens: a hot path checks it before building a step's fields for nobody.
        self.enabled = self._hook is not None
