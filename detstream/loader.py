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
from collections.abc import Sequence
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from .errors import TargetError


def resolve_target(target: str) -> tuple[str, str | None, str | None]:
    """Split ``target`` into (module name, attribute or None, sys.path entry or None)."""
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


def _project_modules(top: str) -> dict[str, ModuleType]:
    return {k: m for k, m in sys.modules.items() if k == top or k.startswith(top + ".")}


def load_isolated(target: str) -> tuple[ModuleType, Any]:
    """Import the target's module afresh and return it with its App."""
    name, attr, path_entry = resolve_target(target)
    top = name.split(".")[0]
    saved = _project_modules(top)
    saved_path = list(sys.path)
    for key in saved:
        del sys.modules[key]
    if path_entry is not None and path_entry not in sys.path:
        sys.path.insert(0, path_entry)
    finder = _CompiledOnce(top)
    sys.meta_path.insert(0, finder)
    try:
        module = _import(name, target)
        app = find_app(module, attr, target)
        _discover(app, name, target)
        return module, app
    finally:
        sys.meta_path.remove(finder)
        for key in _project_modules(top):
            del sys.modules[key]
        sys.modules.update(saved)
        sys.path[:] = saved_path


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
    """Finds the modules of package ``top`` as Python does, loading their sources through
    ``_CompiledOnceLoader`` (installed by ``load_isolated`` while it imports)."""

    def __init__(self, top: str) -> None:
        self.top = top

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.partition(".")[0] != self.top:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        loader = spec.loader if spec is not None else None
        if spec is not None and type(loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _CompiledOnceLoader(loader.name, loader.path)
        return spec


def load(target: str) -> tuple[ModuleType, Any]:
    """Import the target normally (once per process) and return it with its App."""
    name, attr, path_entry = resolve_target(target)
    if path_entry is not None and path_entry not in sys.path:
        sys.path.insert(0, path_entry)
    module = _import(name, target)
    app = find_app(module, attr, target)
    _discover(app, name, target)
    return module, app


def _discover(app: Any, name: str, target: str) -> None:
    """Autodiscover for the loaded App; as Faust's ``-A``, the target names the origin.

    An App without ``origin`` loaded from the package ``proj`` (or its module
    ``proj.app``) gets ``proj``: the package the command line named.
    """
    from .errors import AutodiscoverError

    if not app.conf.origin and app.conf.autodiscover is True:
        made_in = app.defined_in or ""
        if made_in == name or made_in.startswith(name + "."):
            app.conf.origin = name
    try:
        app.discover()
    except AutodiscoverError as exc:
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
