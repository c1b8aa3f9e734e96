"""What a fixup is: Faust's hook for running an App inside another framework.

A fixup is enabled or not by its environment (Django's: the variable
``DJANGO_SETTINGS_MODULE``); an enabled one adds modules to autodiscovery
and prepares the framework before a worker or a command runs. ``app.fixups``
lists the enabled ones (see :mod:`detstream.fixups`).

Besides Faust's three methods, ``shared_modules`` says which modules the
framework holds for the whole process. The simulator imports a project
afresh for every worker it starts (``detstream.loader.load_isolated``); a
module a framework registered once (Django's models) must not be imported
again, or the framework would hold two versions of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from detstream.app import App

__all__ = ["Fixup"]


class Fixup:
    """Base class of fixups (Faust's ``faust.fixups.base.Fixup``): enabled nowhere, adds nothing."""

    def __init__(self, app: App) -> None:
        self.app = app

    def enabled(self) -> bool:
        """Whether this fixup applies in this environment."""
        return False

    def autodiscover_modules(self) -> Iterable[str]:
        """Modules autodiscovery imports besides the App's own (when ``autodiscover`` is on)."""
        return []

    def on_worker_init(self) -> None:
        """Prepare the framework before a worker or a command runs (once per App)."""

    def shared_modules(self) -> Iterable[str]:
        """Modules the framework holds for the whole process: isolated loads keep them imported."""
        return []

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} of {self.app!r}>"
