"""Fixups: an App adapting itself to the framework it runs in (Faust's ``faust.fixups``).

``app.fixups`` is the list of the fixups enabled in this environment, found
when it is first read: each known fixup class is made for the App and asked
``enabled()``. The known ones are Django's (:mod:`detstream.fixups.django`)
and those other distributions register under the entry-point groups
``detstream.fixups`` or Faust's ``faust.fixups`` (``name = "pkg.module:Fixup"``).

What an enabled fixup does, and when (:mod:`detstream.autodiscover`):
``autodiscover_modules()`` adds modules to autodiscovery when ``autodiscover``
is on, ``on_worker_init()`` runs once per App before a worker, a command or
the simulator's worker starts it (before autodiscovery, as in Faust), and
``shared_modules()`` names the modules the simulator's fresh imports of a
project must keep (see :mod:`detstream.fixups.base`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from importlib import metadata
from typing import TYPE_CHECKING

from detstream.errors import ImproperlyConfigured

from .base import Fixup

if TYPE_CHECKING:
    from detstream.app import App

__all__ = ["FIXUPS", "Fixup", "by_name", "fixup_classes", "fixups"]

#: detstream's own fixups by name, as ``module:Class`` (imported when first asked for).
FIXUPS: dict[str, str] = {
    "django": "detstream.fixups.django:Fixup",
}

#: entry-point groups naming other distributions' fixups (Faust's is ``faust.fixups``).
ENTRY_POINT_GROUPS = ("detstream.fixups", "faust.fixups")


def by_name(name: str) -> type[Fixup]:
    """The fixup class of a name of :data:`FIXUPS` (``"django"``) or a ``module:Class`` path."""
    path = FIXUPS.get(name, name)
    module_name, _, attr = path.partition(":")
    if not attr:
        raise ImproperlyConfigured(
            f"unknown fixup {name!r}: name one of {sorted(FIXUPS)} or give 'module:Class'"
        )
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(f"fixup {name!r} ({path}) cannot be loaded: {exc}") from exc
    if not isinstance(cls, type):
        raise ImproperlyConfigured(f"fixup {name!r} ({path}) is {type(cls).__name__}, not a class")
    return cls


@functools.cache
def fixup_classes() -> tuple[type[Fixup], ...]:
    """detstream's fixups, then the entry points' (looked up once per process)."""
    classes = [by_name(name) for name in FIXUPS]
    for group in ENTRY_POINT_GROUPS:
        for entry in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            try:
                loaded = entry.load()
            except Exception as exc:
                raise ImproperlyConfigured(
                    f"the fixup {entry.name!r} registered in the entry-point group {group!r} "
                    f"({entry.value}) cannot be loaded: {type(exc).__name__}: {exc}; "
                    "repair or uninstall the distribution that registers it"
                ) from exc
            if loaded not in classes:
                classes.append(loaded)
    return tuple(classes)


def fixups(app: App) -> Iterator[Fixup]:
    """The fixups enabled for ``app`` in this environment (what ``app.fixups`` lists)."""
    for cls in fixup_classes():
        fixup = cls(app)
        if fixup.enabled():
            yield fixup
