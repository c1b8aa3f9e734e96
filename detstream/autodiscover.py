"""Autodiscovery: import a project's modules so that their decorators register.

In a project laid out as packages (``proj/users/agents.py``,
``proj/orders/views.py``, ...) an ``@app.agent``, ``@app.page``,
``@app.command``, ``@app.timer`` or ``app.Table`` only exists once its module
is imported. ``App(autodiscover=...)`` names what to import:

- ``autodiscover=True``: every module of the ``origin`` package;
- ``autodiscover=['proj.users', 'proj.orders']``: every module of the listed
  packages (and a listed plain module itself), *instead of* the whole origin,
  as the Faust guide describes it ("a list of modules to traverse instead");
  a callable returning such a list is called when discovery runs.

Faust scans the packages with venusian for its decorators' markers; venusian
imports every module to scan it, so importing every module is what it comes
down to. detstream imports them directly, recursively, in sorted order (the
order decides the order of agents and topics, so of a simulated run). As
Faust's scanner, it skips ``__main__`` modules (the entry point, which would
run ``app.main()``) and ``test_*`` modules. A module that fails to import
raises :class:`AutodiscoverError` naming it (Faust only logs a warning, which
leaves an app silently missing an agent).

The App's enabled fixups (``app.fixups``, :mod:`detstream.fixups`) take part,
as in Faust: when ``autodiscover`` is on, their ``autodiscover_modules()`` are
imported too (Django's: the installed apps' packages), and before a worker
or a command runs, their ``on_worker_init()`` runs once per App, before
autodiscovery (Django's ``django.setup()``).

``origin`` is the importable name of the project package. When the App does
not set it, it is inferred: the package of the module that created the App
(``proj`` for an App made in ``proj/app.py``), else that module itself.

Discovery runs when ``detstream`` loads a project (``detstream sim``,
``detstream worker``, ``-A``), when a ``Worker`` starts, in ``app.main()``
and, for an App started directly, when it starts; each module list is
imported once per App.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import FrameType, ModuleType
from typing import TYPE_CHECKING, Any

from .errors import AutodiscoverError, FixupError

if TYPE_CHECKING:
    from .app import App

__all__ = [
    "AutodiscoverError", "defining_module", "discover", "discovery_modules", "init_fixups",
    "init_worker", "origin_of",
]

#: modules skipped while walking a package, as Faust's ``SCAN_IGNORE``.
IGNORED_PREFIXES = ("test_",)
IGNORED_NAMES = ("__main__", "conftest")

#: App -> the module names already imported for it (imports run once per App).
_done: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
#: Apps whose ``on_worker_init`` was sent (``app.main()`` and then ``Worker`` send it once).
_initialized: weakref.WeakSet[Any] = weakref.WeakSet()
#: Apps whose fixups' ``on_worker_init`` ran (the loader, then the worker, ask for it).
_fixed_up: weakref.WeakSet[Any] = weakref.WeakSet()


def defining_module(app: Any) -> str | None:
    """The module whose code called ``App(...)`` (skipping subclasses' ``__init__``).

    Called from ``App.__init__``: the frames whose ``self`` is the app are the
    constructors; the first frame past them is the caller.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_locals.get("self") is app:
        frame = frame.f_back
    if frame is None:
        return None
    name = frame.f_globals.get("__name__")
    if not isinstance(name, str):
        return None
    from .agent import canonical_module

    return canonical_module(name)


def origin_of(app: App) -> str | None:
    """``conf.origin``, else the package of the module that made the App, else that module."""
    origin = app.conf.origin
    if origin:
        return str(origin)
    made_in = getattr(app, "defined_in", None)
    if not made_in or made_in == "__main__":
        return None
    parent = made_in.rpartition(".")[0]
    package = sys.modules.get(parent) if parent else None
    if package is not None and getattr(package, "__file__", None):  # a regular package
        return parent
    return made_in


def discovery_modules(app: App) -> list[str]:
    """The module names ``autodiscover`` asks for, the fixups' after the App's (empty when off)."""
    names = _setting_modules(app)
    if not names:
        return []
    for fixup in app.fixups:
        with _fixup_failures(fixup, "autodiscover_modules"):
            extra = list(fixup.autodiscover_modules())
        names += [name for name in _checked_names(app, extra) if name not in names]
    return names


def _setting_modules(app: App) -> list[str]:
    """The module names the ``autodiscover`` setting itself names."""
    setting = app.conf.autodiscover
    if callable(setting):  # Faust's lazy form: the list is computed when discovery runs
        setting = list(setting())
    if setting is False or setting is None:
        return []
    if setting is True:
        origin = origin_of(app)
        if origin is None:
            raise AutodiscoverError(
                f"App {app.conf.id!r} has autodiscover=True but no origin: pass "
                "origin='proj' (the importable name of the project package, as in "
                "`detstream -A proj`), or list the packages: autodiscover=['proj.users', ...]"
            )
        return [origin]
    if isinstance(setting, (list, tuple)):
        return _checked_names(app, setting)
    raise AutodiscoverError(
        f"App {app.conf.id!r}: autodiscover must be True, False or a list of module names, "
        f"got {type(setting).__name__} {setting!r}"
    )


@contextmanager
def _fixup_failures(fixup: Any, step: str) -> Iterator[None]:
    """A fixup's failure (Django's setup on bad settings) as a FixupError naming it."""
    try:
        yield
    except FixupError:
        raise
    except Exception as exc:
        kind = type(fixup)
        raise FixupError(
            f"the fixup {kind.__module__}.{kind.__qualname__} failed in {step}(): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _checked_names(app: App, names: Iterable[Any]) -> list[str]:
    result: list[str] = []
    for name in names:
        if not isinstance(name, str) or not name or not all(
            part.isidentifier() for part in name.split(".")
        ):
            raise AutodiscoverError(
                f"App {app.conf.id!r}: autodiscover lists {name!r}, which is not a dotted "
                "module name like 'proj.users'"
            )
        if name not in result:
            result.append(name)
    return result


def discover(app: App, *extra_modules: str) -> list[str]:
    """Import the modules autodiscovery asks for, plus ``extra_modules``; once per App.

    Returns the names of the modules imported by this call (sorted within
    each package).
    """
    wanted = discovery_modules(app) + _checked_names(app, extra_modules)
    done = _done.setdefault(app, set())
    imported: list[str] = []
    for name in wanted:
        if name in done:
            continue
        imported.extend(_import_tree(name))
        done.add(name)
    return imported


def _import_tree(name: str) -> list[str]:
    """Import ``name`` and, if it is a package, every module below it."""
    module = _import(name, listed=True)
    names = [name]
    for sub in _submodules(module):
        _import(sub, listed=False)
        names.append(sub)
    return names


def _submodules(package: ModuleType) -> Iterator[str]:
    """Dotted names below ``package``, depth first, sorted by name, ignoring tests and mains."""
    paths = getattr(package, "__path__", None)
    if paths is None:
        return
    found = sorted(pkgutil.iter_modules(paths), key=lambda info: info.name)
    for info in found:
        if info.name in IGNORED_NAMES or info.name.startswith(IGNORED_PREFIXES):
            continue
        full = f"{package.__name__}.{info.name}"
        yield full
        if info.ispkg:
            yield from _submodules(_import(full, listed=False))


def _import(name: str, *, listed: bool) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if listed and exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise AutodiscoverError(
                f"autodiscover: no module named {name!r} (check App(autodiscover=...) and "
                "origin=, and that the project's directory is on sys.path)",
                module=name,
            ) from exc
        raise _failed(name, exc) from exc
    except Exception as exc:
        raise _failed(name, exc) from exc


def _failed(name: str, exc: BaseException) -> AutodiscoverError:
    return AutodiscoverError(
        f"autodiscover: importing module {name!r} failed: {type(exc).__name__}: {exc}",
        module=name,
    )


def init_fixups(app: App) -> None:
    """Run the App's fixups' ``on_worker_init`` (Django's setup and checks), once per App."""
    if app in _fixed_up:
        return
    _fixed_up.add(app)
    for fixup in app.fixups:
        with _fixup_failures(fixup, "on_worker_init"):
            fixup.on_worker_init()


def init_worker(app: App) -> None:
    """Prepare ``app`` for a worker or a command: the fixups' ``on_worker_init``,
    autodiscovery, then the ``on_worker_init`` signal; each once per App.

    Faust's ``app.main()`` and its worker both do this; the signal's handlers
    customise the process, so they must not run twice when ``app.main()``
    goes on to start a ``Worker``.
    """
    init_fixups(app)
    discover(app)
    if app in _initialized:
        return
    _initialized.add(app)
    app.on_worker_init.send()
