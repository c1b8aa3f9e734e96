"""The test and test run of the running task: context variables, as stacks.

``current_test()`` is the test execution the running code serves: set by
``Case.maybe_trigger`` around the code that triggered it, by LiveCheck's
sensor around an agent's event that carries test headers, by its web
middleware around a request that does, and around a test's own run. Sends
made meanwhile carry it on (``detstream.livecheck.propagation``). A task
inherits the context it was created in, so a callback or task started under
a test serves it too. ``current_execution()`` is the ``TestRunner`` running
a case, on the LiveCheck worker.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .models import TestExecution

if TYPE_CHECKING:
    from .runners import TestRunner

__all__ = [
    "LocalStack", "current_execution", "current_execution_stack", "current_test",
    "current_test_stack",
]

T = TypeVar("T")


class LocalStack(Generic[T]):
    """A stack held in a context variable: each task sees its own (Faust's ``LocalStack``)."""

    def __init__(self, name: str) -> None:
        self._var: contextvars.ContextVar[tuple[T, ...]] = contextvars.ContextVar(name, default=())

    @property
    def top(self) -> T | None:
        stack = self._var.get()
        return stack[-1] if stack else None

    @contextmanager
    def push(self, item: T) -> Iterator[T]:
        """``item`` on top for the block."""
        token = self.push_without_automatic_cleanup(item)
        try:
            yield item
        finally:
            self.pop(token)

    def push_without_automatic_cleanup(self, item: T) -> contextvars.Token[tuple[T, ...]]:
        """``item`` on top until ``pop(token)`` (a sensor's in and out hooks)."""
        return self._var.set((*self._var.get(), item))

    def pop(self, token: contextvars.Token[tuple[T, ...]] | None = None) -> None:
        """Undo the push that gave ``token`` (or drop the top item, without one)."""
        if token is not None:
            try:
                self._var.reset(token)
                return
            except ValueError:  # another context made it: drop the top instead
                pass
        self._var.set(self._var.get()[:-1])

    def __len__(self) -> int:
        return len(self._var.get())


current_test_stack: LocalStack[TestExecution] = LocalStack("detstream_livecheck_test")
current_execution_stack: LocalStack[Any] = LocalStack("detstream_livecheck_execution")


def current_test() -> TestExecution | None:
    """The test execution the running code serves, if any."""
    return current_test_stack.top


def current_execution() -> TestRunner | None:
    """The test run the running code is part of (on the LiveCheck worker), if any."""
    return current_execution_stack.top
