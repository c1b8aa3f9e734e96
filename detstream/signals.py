"""App signals, connectable on an instance or on the App class.

Handlers run in the order they were connected (class handlers first), which
keeps runs deterministic; mode's signals keep receivers in a set, whose order
depends on memory addresses. Handlers are called as mode and Faust call
them, ``handler(sender, *args, signal=signal, **kwargs)``: the payload goes
positionally (``on_partitions_revoked.send(revoked)``), so a handler may
name its parameters as it likes. A handler without ``**kwargs`` (which the
Faust guide asks for) is called without ``signal=`` rather than made to
crash the worker.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any


class _BoundSignal:
    def __init__(self, signal: BaseSignal, sender: Any) -> None:
        self._signal = signal
        self._sender = sender
        self._receivers: list[Callable[..., Any]] = []

    def connect(self, fun: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """Call ``fun`` with every send; ``@signal.connect`` and ``@signal.connect()`` both work."""
        return _connect(self._receivers, fun, kwargs)

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

    def connect(self, fun: Callable[..., Any] | None = None, **kwargs: Any) -> Any:
        """Call ``fun`` on every instance's send (class-wide); with or without parentheses."""
        return _connect(self._receivers, fun, kwargs)

    def disconnect(self, fun: Callable[..., Any]) -> None:
        if fun in self._receivers:
            self._receivers.remove(fun)

    def receivers(self) -> list[Callable[..., Any]]:
        return list(self._receivers)


def _connect(receivers: list[Callable[..., Any]], fun: Callable[..., Any] | None,
             options: dict[str, Any]) -> Any:
    """Add ``fun``; without it, a decorator that adds what it decorates (mode's ``connect()``).

    mode's ``weak=`` and ``sender=`` options are not taken: receivers are kept
    strongly, and a signal of an instance is that instance's already.
    """
    if options:
        raise TypeError(f"signal.connect() takes no options {sorted(options)} on detstream: "
                        "receivers are kept strongly, and per instance when connected to one")
    if fun is None:
        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            receivers.append(f)
            return f

        return decorate
    receivers.append(fun)
    return fun


def _takes_signal(fun: Callable[..., Any]) -> bool:
    """Whether ``fun`` can be given mode's ``signal=`` keyword (it has ``**kwargs``, or names it).

    Looked up once per receiver (``on_produce_message`` sends per record), in
    a bounded cache: receivers come and go with agents; one that cannot be
    hashed is looked at each time.
    """
    try:
        return _takes_signal_cached(fun)
    except TypeError:  # unhashable
        return _signature_takes_signal(fun)


def _signature_takes_signal(fun: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: call it as mode would
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == "signal" for p in parameters)


_takes_signal_cached = functools.lru_cache(maxsize=1024)(_signature_takes_signal)


class _BoundAsyncSignal(_BoundSignal):
    async def send(self, *args: Any, **kwargs: Any) -> None:
        for receiver in self.receivers():
            if _takes_signal(receiver):
                result = receiver(self._sender, *args, signal=self, **kwargs)
            else:
                result = receiver(self._sender, *args, **kwargs)
            if inspect.isawaitable(result):
                await result


class _BoundSyncSignal(_BoundSignal):
    def send(self, *args: Any, **kwargs: Any) -> None:
        for receiver in self.receivers():
            if _takes_signal(receiver):
                receiver(self._sender, *args, signal=self, **kwargs)
            else:
                receiver(self._sender, *args, **kwargs)


class Signal(BaseSignal):
    """An asynchronous signal: handlers may be ``async def`` or plain functions."""

    def _bind(self, instance: Any) -> _BoundSignal:
        return _BoundAsyncSignal(self, instance)


class SyncSignal(BaseSignal):
    """A synchronous signal: handlers must be plain functions."""

    def _bind(self, instance: Any) -> _BoundSignal:
        return _BoundSyncSignal(self, instance)
