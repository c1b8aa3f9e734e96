"""Find the App of a project from a CLI target: a file, a package directory, a
module, or ``module:attr``.

``load_isolated`` imports the project afresh each call, so the simulator can
build several workers from one project, each with its own module globals
(tables, caches, counters) that a crash of that worker really throws away.

Both loaders run the App's autodiscovery (``App(autodiscover=...)``) right
after the import, while the fresh modules are the ones in ``sys.modules``: the
discovered modules then register on this App, not on another copy of it.
A target naming a package directory (``examples/proj``) is imported by its
package name (``proj``) with the directory above it on ``sys.path``, so the
project's own absolute imports (``from proj.app import app``) work.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from .autodiscover import discovery_modules
from .errors import TargetError


def resolve_target(target: str) -> tuple[str, str | None, str | None]:
    """Split ``target`` into (module name, attribute or None, sys.path entry or None)."""
    lookups = _lookups.get()
    if lookups is None:
        return _resolve_target(target)
    key = (target, os.getcwd())
    resolved = lookups.targets.get(key)
    if resolved is None:
        resolved = lookups.targets[key] = _resolve_target(target)
    return resolved


def _resolve_target(target: str) -> tuple[str, str | None, str | None]:
    if not isinstance(target, str) or not target.strip():
        raise TargetError("no target given: name a file (proj.py), a module (proj) or module:attr")
    spec, attr = target, None
    if ":" in target and not Path(target).exists():
        spec, _, attr = target.rpartition(":")
        if not attr.isidentifier():
            raise TargetError(f"target {target!r}: {attr!r} after ':' is not a Python name")
    if Path(spec).is_dir() and ("/" in spec or (Path(spec) / "__init__.py").is_file()):
        name, path_entry = _module_for_package(spec)
        return name, attr, path_entry
    if spec.endswith(".py") or Path(spec).is_file() or "/" in spec:
        name, path_entry = _module_for_file(spec)
        return name, attr, path_entry
    return spec, attr, str(Path.cwd())


def _module_for_file(spec: str) -> tuple[str, str]:
    path = Path(spec)
    if not path.is_file():
        raise TargetError(f"target {spec!r}: no such file")
    path = path.resolve()
    cwd = Path.cwd().resolve()
    try:
        parts = path.relative_to(cwd).with_suffix("").parts
    except ValueError:
        parts = ()
    if parts and all(p.isidentifier() for p in parts):
        return ".".join(parts), str(cwd)
    return path.stem, str(path.parent)


def _module_for_package(spec: str) -> tuple[str, str]:
    """A package directory: its dotted name from the outermost enclosing package."""
    path = Path(spec).resolve()
    if not (path / "__init__.py").is_file():
        raise TargetError(
            f"target {spec!r} is a directory without __init__.py: name a package directory, "
            "a file (proj.py), a module (proj) or module:attr"
        )
    parts = [path.name]
    root = path.parent
    while (root / "__init__.py").is_file():
        parts.insert(0, root.name)
        root = root.parent
    if not all(p.isidentifier() for p in parts):
        raise TargetError(f"target {spec!r}: {'.'.join(parts)!r} is not an importable package name")
    return ".".join(parts), str(root)


def module_name_for_file(path: str) -> str:
    """The dotted module name a project file is imported under (see ``resolve_target``)."""
    return _module_for_file(path)[0]


#: modules a framework holds for the whole process (the fixups' ``shared_modules``: Django's
#: models), and the packages above them: ``load_isolated`` leaves them imported.
_SHARED: set[str] = set()


def _project_modules(tops: set[str]) -> dict[str, ModuleType]:
    """The loaded modules of the packages ``tops``, less the shared ones."""
    modules, prefixes = sys.modules, tuple(tops)
    # ``startswith`` sifts the few candidates out in C (this runs per simulated worker start).
    candidates = [k for k in modules if k.startswith(prefixes)]
    return {
        k: modules[k] for k in candidates if k.partition(".")[0] in tops and k not in _SHARED
    }


def _take_out(tops: set[str]) -> dict[str, ModuleType]:
    """Remove the modules of ``tops`` from ``sys.modules`` (for a fresh import); return them."""
    taken = _project_modules(tops)
    for key in taken:
        del sys.modules[key]
    return taken


def load_isolated(target: str) -> tuple[ModuleType, Any]:
    """Import the target's module afresh and return it with its App.

    Afresh means every module of the target's top package, and of the other
    packages its autodiscovery walks (an installed Django app's package, a
    package listed in ``autodiscover=[...]``), is imported again; after the
    load, ``sys.modules`` holds those packages' modules as it did before. So
    each load's App gets its own agents: a discovered module imported once
    would have registered them on the first App only. Modules a framework
    holds for the whole process (the fixups' ``shared_modules``, Django's
    models) are the exception: they stay imported, as the framework expects.
    """
    name, attr, path_entry = resolve_target(target)
    tops = {name.split(".")[0]}
    saved = _take_out(tops)
    saved_path = list(sys.path)
    if path_entry is not None and path_entry not in sys.path:
        sys.path.insert(0, path_entry)
    finder = _CompiledOnce(tops)
    sys.meta_path.insert(0, finder)
    try:
        module = _import(name, target)
        app = find_app(module, attr, target)
        _prepare_discovery(app, name, target)
        _share(app)  # before the walked packages are taken out: what Django set up stays
        with _as_target_error(target):
            walked = {m.partition(".")[0] for m in discovery_modules(app)} - tops
        tops |= walked
        saved.update(_take_out(walked))
        _discover(app, target)
        return module, app
    finally:
        sys.meta_path.remove(finder)
        for key in _project_modules(tops):
            del sys.modules[key]
        sys.modules.update(saved)
        sys.path[:] = saved_path


def _share(app: Any) -> None:
    """Remember the modules the App's fixups hold for the process, and their packages."""
    for fixup in app.fixups:
        for module in fixup.shared_modules():
            parts = module.split(".")
            _SHARED.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))


class _Lookups:
    """What ``load_isolated`` found on disk, kept while ``cached_lookups`` is on (one run)."""

    def __init__(self) -> None:
        #: (target, cwd) -> ``resolve_target``'s answer.
        self.targets: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}
        #: (module name, search path, sys.path) -> the directories its spec was found in.
        self.found_in: dict[tuple[str, tuple[str, ...] | None, tuple[str, ...]], list[str]] = {}


_lookups: ContextVar[_Lookups | None] = ContextVar("detstream_loader_lookups", default=None)


@contextmanager
def cached_lookups() -> Iterator[None]:
    """Within the block, ``load_isolated`` looks each target and module up on disk once.

    The simulator loads a project afresh for every worker start (a hundred
    workers and their restarts: hundreds of loads in one run), and every
    load resolved the target's path and searched ``sys.path`` for each
    module again: a namespace package (a directory without ``__init__.py``)
    is searched for in every entry. Within one run the files do not move,
    so the second load on looks only where the first found each module
    (the import itself, and the check that a source is unchanged, still
    happen each time). Outside the block nothing is kept.
    """
    token = _lookups.set(_Lookups())
    try:
        yield
    finally:
        _lookups.reset(token)


#: compiled project sources by (path, mtime, size): ``load_isolated`` runs a project's
#: modules afresh for every simulated worker (re)start, but compiles each source once.
_COMPILED: dict[tuple[str, int, int], CodeType] = {}


class _CompiledOnceLoader(importlib.machinery.SourceFileLoader):
    """A source loader whose code objects come from ``_COMPILED`` once compiled.

    Python's own cache is the ``.pyc`` file, which ``PYTHONDONTWRITEBYTECODE``
    (or a read-only project) turns off: then a sweep of seeds, each starting
    and restarting workers, compiled the same files hundreds of times. A
    changed file (mtime or size) is compiled again.
    """

    def get_code(self, fullname: str) -> CodeType:
        path = self.get_filename(fullname)
        stat = os.stat(path)
        key = (path, stat.st_mtime_ns, stat.st_size)
        code = _COMPILED.get(key)
        if code is None:
            code = super().get_code(fullname)
            assert code is not None  # a source file always has code
            _COMPILED[key] = code
        return code


class _CompiledOnce(importlib.abc.MetaPathFinder):
    """Finds the modules of the packages ``tops`` as Python does, loading their sources
    through ``_CompiledOnceLoader`` (installed by ``load_isolated`` while it imports)."""

    def __init__(self, tops: set[str]) -> None:
        self.tops = tops  # the caller's set: packages found to be walked are added to it

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] not in self.tops:
            return None
        spec = _find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if spec is not None and type(loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _CompiledOnceLoader(loader.name, loader.path)
        return spec


def _find_spec(
    fullname: str, path: Sequence[str] | None, target: ModuleType | None
) -> importlib.machinery.ModuleSpec | None:
    """``PathFinder.find_spec``; under ``cached_lookups``, searched only where it was found before.

    A module is found again by searching just the directories that held it
    (for a namespace package, all of its portions), which gives the spec
    the full search gave: the same file, or the same portions.
    """
    find = importlib.machinery.PathFinder.find_spec
    lookups = _lookups.get()
    if lookups is None:
        return find(fullname, path, target)
    key = (fullname, tuple(path) if path is not None else None, tuple(sys.path))
    where = lookups.found_in.get(key)
    if where is not None:
        spec = find(fullname, where, target)
        if spec is not None and _found_in(spec) == where:
            return spec
    spec = find(fullname, path, target)
    if spec is not None:
        lookups.found_in[key] = _found_in(spec)
    return spec


def _found_in(spec: importlib.machinery.ModuleSpec) -> list[str]:
    """The directories a spec was found in: its file's, or a namespace package's portions."""
    if spec.origin is not None and spec.has_location:
        folder = os.path.dirname(spec.origin)
        return [os.path.dirname(folder)] if spec.submodule_search_locations is not None else [folder]
    return [os.path.dirname(p) for p in spec.submodule_search_locations or ()]


def load(target: str) -> tuple[ModuleType, Any]:
    """Import the target normally (once per process) and return it with its App."""
    name, attr, path_entry = resolve_target(target)
    if path_entry is not None and path_entry not in sys.path:
        sys.path.insert(0, path_entry)
    module = _import(name, target)
    app = find_app(module, attr, target)
    _prepare_discovery(app, name, target)
    _discover(app, target)
    return module, app


def _prepare_discovery(app: Any, name: str, target: str) -> None:
    """Set the App up for autodiscovery.

    As Faust's ``-A``, the target names the origin: an App without ``origin``
    loaded from the package ``proj`` (or its module ``proj.app``) gets
    ``proj``, the package the command line named. Then the App's fixups get
    ready (Django's ``django.setup()``), before autodiscovery as in Faust.
    """
    from .autodiscover import init_fixups

    if not app.conf.origin and app.conf.autodiscover is True:
        made_in = app.defined_in or ""
        if made_in == name or made_in.startswith(name + "."):
            app.conf.origin = name
    with _as_target_error(target):
        init_fixups(app)


def _discover(app: Any, target: str) -> None:
    with _as_target_error(target):
        app.discover()


@contextmanager
def _as_target_error(target: str) -> Iterator[None]:
    """Autodiscovery's and the fixups' errors, as errors of the command line's target."""
    from .errors import AutodiscoverError, FixupError

    try:
        yield
    except (AutodiscoverError, FixupError) as exc:
        raise TargetError(f"target {target!r}: {exc}") from exc


def _import(name: str, target: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise TargetError(f"target {target!r}: no module named {exc.name!r}") from exc
        raise TargetError(f"target {target!r} failed to import: {exc}") from exc
    except Exception as exc:
        raise TargetError(
            f"target {target!r} failed to import: {type(exc).__name__}: {exc}"
        ) from exc


def find_app(module: ModuleType, attr: str | None, target: str) -> Any:
    """The App named by ``attr``, else the module's ``app``, else its only App."""
    from .app import App

    if attr is not None:
        if not hasattr(module, attr):
            raise TargetError(f"target {target!r}: module {module.__name__!r} has no {attr!r}")
        value = getattr(module, attr)
    elif isinstance(getattr(module, "app", None), App):
        value = module.app
    elif (submodule := _app_submodule(module)) is not None:  # `-A proj` for proj/app.py, as Faust's find_app
        value = submodule.app
    else:
        apps = [v for v in vars(module).values() if isinstance(v, App)]
        if len(apps) != 1:
            found = "no" if not apps else f"{len(apps)}"
            raise TargetError(
                f"target {target!r} defines {found} detstream.App at module level: "
                "define `app = detstream.App(...)` or name one with module:attr"
            )
        value = apps[0]
    if not isinstance(value, App):
        raise TargetError(f"target {target!r}: {attr or 'app'} is {type(value).__name__}, not an App")
    return value


def _app_submodule(module: ModuleType) -> ModuleType | None:
    """The ``app`` module of a package whose own namespace holds no App (``proj/app.py``)."""
    from .app import App

    if not hasattr(module, "__path__"):
        return None
    candidate = getattr(module, "app", None)
    if not isinstance(candidate, ModuleType):
        name = f"{module.__name__}.app"
        try:
            candidate = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                return None
            raise TargetError(f"module {name!r} failed to import: {exc}") from exc
        except Exception as exc:
            raise TargetError(
                f"module {name!r} failed to import: {type(exc).__name__}: {exc}"
            ) from exc
    return candidate if isinstance(getattr(candidate, "app", None), App) else None
