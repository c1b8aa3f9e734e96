"""App signals, connectable on an instance or on the App class.

Handlers run in the order they were connected (class handlers first), which
keeps runs deterministic; mode's signals keep receivers in a set, whose order
depends on memory addresses. Handlers are called as ``handler(sender, **kw)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


class _BoundSignal:
    def __init__(self, signal: BaseSignal, sender: Any) -> None:
        self._signal = signal
        self._sender = sender
        self._receivers: list[Callable[..., Any]] = []

    def connect(self, fun: Callable[..., Any]) -> Callable[..., Any]:
        self._receivers.append(fun)
        return fun

    def disconnect(self, fun: Callable[..., Any]) -> None:
        if fun in self._receivers:
            self._receivers.remove(fun)

    def receivers(self) -> list[Callable[..., Any]]:
        return [*self._signal.receivers(), *self._receivers]

    def has_receivers(self) -> bool:
        """Whether a send would call anything (a hot path checks this before building arguments)."""
        return bool(self._receivers or self._signal._receivers)

    def __repr__(self) -> str:
        return f"<{type(self._signal).__name__}: {self._signal.name} of {self._sender!r}>"


class BaseSignal:
    """A descriptor: the class attribute holds class-wide handlers."""

    def __init__(self) -> None:
        self.name = ""
        self._receivers: list[Callable[..., Any]] = []

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        bound = instance.__dict__.get(self.name)
        if bound is None:
            bound = self._bind(instance)
            instance.__dict__[self.name] = bound
        return bound

    def _bind(self, instance: Any) -> _BoundSignal:
        raise NotImplementedError

    def connect(self, fun: Callable[..., Any]) -> Callable[..., Any]:
        self._receivers.append(fun)
        return fun

    def disconnect(self, fun: Callable[..., Any]) -> None:
        if fun in self._receivers:
            self._receivers.remove(fun)

    def receivers(self) -> list[Callable[..., Any]]:
        return list(self._receivers)


class _BoundAsyncSignal(_BoundSignal):
    async def send(self, **kwargs: Any) -> None:
        for receiver in self.receivers():
            result = receiver(self._sender, **kwargs)
            if inspect.isawaitable(result):
                await result


class _BoundSyncSignal(_BoundSignal):
    def send(self, **kwargs: Any) -> None:
        for receiver in self.receivers():
            receiver(self._sender, **kwargs)


class Signal(BaseSignal):
    """An asynchronous signal: handlers may be ``async def`` or plain functions."""

    def _bind(self, instance: Any) -> _BoundSignal:
        return _BoundAsyncSignal(self, instance)


class SyncSignal(BaseSignal):
    """A synchronous signal: handlers must be plain functions."""

    def _bind(self, instance: Any) -> _BoundSignal:
        return _BoundSyncSignal(self, instance)
