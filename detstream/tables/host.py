"""What the table manager and its standby reader need of the application, as protocols.

``TableManager`` (recovery, write caches, closing stores) and
``StandbyReader`` (background reads of standby changelogs) are built with
the App but reach it only through these members; ``detstream.App``
implements them (mypy checks it where the App builds its table manager).
A ``Table`` itself keeps ``table.app``: that is Faust's public API.
"""

from __future__ import annotations

from collections.abc import Awaitable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from detstream.settings import Settings
    from detstream.tracing import Tracer
    from detstream.transport.base import Transport

__all__ = ["StandbyHost", "TablesHost"]


class StandbyHost(Protocol):
    """What the standby reader needs: a reader to make, names, the tracer and the crash path."""

    @property
    def transport(self) -> Transport: ...

    @property
    def client_name(self) -> str: ...

    @property
    def exactly_once(self) -> bool: ...

    @property
    def tracer(self) -> Tracer: ...

    def crash(self, reason: BaseException) -> Awaitable[None]: ...


class GlobalTableStores(Protocol):
    """The app's global tables, whose stores close with the other tables'."""

    def close(self) -> None: ...


class TablesHost(StandbyHost, Protocol):
    """What the table manager needs besides: settings, the app's stop contexts, global tables."""

    @property
    def conf(self) -> Settings: ...

    @property
    def global_tables(self) -> GlobalTableStores: ...

    def add_context(self, context: AbstractContextManager[Any]) -> Any:
        """Close ``context`` when the app stops (mode's ``Service.add_context``)."""
        ...
