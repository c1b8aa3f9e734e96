"""The Faust alias: ``import faust`` (and the ``faust.*`` modules a project uses) answered by detstream.

A Faust project runs unmodified when its ``import faust`` resolves here. This
module is the whole mechanism: a map from Faust's module names to the
detstream modules holding the same names (``FAUST_MODULES``), and an import
finder that builds a module ``faust.X`` from it on first import. ``faust.X``
is a small module of its own whose names *are* detstream's objects
(``faust.App is detstream.App``), so ``isinstance``, context variables and
registries are shared. It is opt-in, three ways:

- ``detstream sim --faust-compat proj``, ``detstream worker --faust-compat proj``
  (and ``detstream --faust-compat -A proj COMMAND``): for that process;
- ``with faust_alias(): ...`` or ``install()`` from Python (tests, embedding);
- the ``detstream-faust-alias`` distribution (``compat/faust-alias/`` in the
  repository), for a project that removed faust: it installs a ``faust``
  package whose ``__init__`` calls :func:`adopt_alias_package`, so
  ``python proj.py worker`` works as with Faust.

**A real faust is never hidden silently.** ``install()`` refuses with
:class:`FaustInstalledError` when a ``faust`` package other than the alias is
importable (faust-streaming, robinhood's faust, a checkout on ``sys.path``)
or already imported, naming where it is; ``force=True``
(``--faust-compat-force``) hides it, with a warning.

**What is not provided fails at the import.** A Faust module detstream has
no counterpart for (``faust.contrib.sentry``, ``faust.livecheck.patches``, ...) raises
``ModuleNotFoundError``, and a Faust name it lacks (``from faust.web import
gives_model``) raises ``ImportError``, both saying so and pointing at
docs/faust-differences.md, rather than a project starting and failing later.
Because of the latter, ``hasattr(faust_module, "SomePublicName")`` raises
for a missing name instead of returning False; names starting with ``_``
behave as usual.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import DetstreamWarning, ImproperlyConfigured

__all__ = [
    "FAUST_MODULES", "FaustAliasFinder", "FaustInstalledError", "adopt_alias_package",
    "faust_alias", "install", "installed", "installed_faust", "uninstall",
]

logger = logging.getLogger(__name__)

#: the file that marks a ``faust`` package as the alias distribution, not a real faust.
ALIAS_MARKER = "_detstream_alias.py"
#: where a user reads what differs and what to change.
DIFFERENCES = "docs/faust-differences.md in detstream"

#: (detstream module, names): ``None`` takes the module's ``__all__``, or its public
#: names defined there.
Source = tuple[str, Sequence[str] | None]

_TABLES: list[Source] = [
    ("detstream.tables.table", ["Table"]),
    ("detstream.tables.global_table", ["GlobalTable"]),
    ("detstream.tables.set_table", ["SetTable", "SetGlobalTable", "ChangeloggedSet"]),
    ("detstream.tables.windowed", ["WindowSet", "WindowWrapper"]),
    ("detstream.types", ["TableT", "CollectionT"]),
]
_AGENTS: list[Source] = [
    ("detstream.agent", ["Agent", "current_agent"]), ("detstream.types", ["AgentT", "SinkT"]),
]
_MODELS: list[Source] = [("detstream.models", None), ("detstream.fields", ["StringField"])]
_WEB: list[Source] = [("detstream.web", None)]
_CLI: list[Source] = [("detstream.commands", ["AppCommand", "option", "argument"])]

#: Faust's module names and where their names come from. Every ``faust.types.*`` module is
#: ``detstream.types`` (see ``_module_sources``).
FAUST_MODULES: dict[str, list[Source]] = {
    "faust": [("detstream", None)],
    "faust.types": [("detstream.types", None)],
    "faust.app": [("detstream.app", ["App"])],
    "faust.agents": _AGENTS,
    "faust.agents.agent": _AGENTS,
    "faust.channels": [("detstream.channel", ["Channel"]), ("detstream.types", ["ChannelT"])],
    "faust.topics": [("detstream.topic", ["Topic"]), ("detstream.types", ["TopicT"])],
    "faust.events": [("detstream.events", ["Event"]), ("detstream.types", ["EventT"])],
    "faust.streams": [
        ("detstream.stream", ["Stream", "current_event"]), ("detstream.types", ["StreamT"]),
    ],
    "faust.tables": _TABLES,
    "faust.tables.base": _TABLES,
    "faust.tables.table": _TABLES,
    "faust.tables.globaltable": _TABLES,
    "faust.tables.sets": _TABLES,
    "faust.tables.wrappers": _TABLES,
    "faust.models": _MODELS,
    "faust.models.base": _MODELS,
    "faust.models.record": _MODELS,
    "faust.models.fields": [("detstream.fields", None)],
    "faust.models.tags": [("detstream.tags", [
        "Tag", "OpaqueTag", "TransparentTag", "Personal", "Secret", "Sensitive",
        "allow_protected_vars",
    ])],
    "faust.serializers": [
        ("detstream.serializers", ["Schema"]), ("detstream.codecs", ["Codec"]),
        ("detstream.serializer_registry", ["Registry"]),
    ],
    "faust.serializers.codecs": [("detstream.codecs", None)],
    "faust.serializers.schemas": [("detstream.serializers", ["Schema"])],
    "faust.serializers.registry": [("detstream.serializer_registry", ["Registry"])],
    "faust.windows": [("detstream.windows", None)],
    "faust.exceptions": [("detstream.errors", None)],
    "faust.web": _WEB,
    "faust.web.base": _WEB,
    "faust.web.views": _WEB,
    "faust.web.blueprints": [("detstream.web.blueprints", ["Blueprint", "BlueprintManager"])],
    "faust.web.cache": [("detstream.web.cache", ["Cache"])],
    "faust.web.cache.cache": [("detstream.web.cache", ["Cache"])],
    "faust.web.cache.exceptions": [("detstream.web.cache_backends", ["CacheUnavailable"])],
    "faust.cli": _CLI,
    "faust.cli.base": _CLI,
    "faust.sensors": [("detstream.sensors", None), ("detstream.monitor", ["Monitor", "TableState"])],
    "faust.sensors.monitor": [("detstream.monitor", ["Monitor", "TableState"])],
    "faust.sensors.otel": [("detstream.contrib.otel", ["OTelMetrics", "OpenTelemetryMonitor"])],
    "faust.sensors.statsd": [("detstream.contrib.statsd", ["StatsdMonitor"])],
    "faust.sensors.datadog": [("detstream.contrib.datadog", ["DatadogMonitor",
                                                             "DatadogStatsClient"])],
    "faust.sensors.prometheus": [("detstream.contrib.prometheus", [
        "FaustMetrics", "PrometheusMonitor", "setup_prometheus_sensors", "MS_LATENCY_BUCKETS"])],
    "faust.sensors.metrics": [("detstream.performance", ["performance_metrics"])],
    "faust.sensors.distributed_tracing": [("detstream.contrib.opentracing", ["TracingSensor"])],
    "faust.auth": [("detstream.auth", None)],
    "faust.worker": [("detstream.worker", ["Worker"])],
    "faust.utils": [("detstream", ["uuid"])],
    # named by Faust's streams guide (``aenumerate``); faust-streaming 0.15 has them in mode.
    "faust.utils.aiter": [("mode.utils.aiter", None)],
    "faust.contrib": [("detstream.contrib", None)],
    "faust.contrib.asgi": [("detstream.contrib.asgi", None)],
    "faust.contrib.fastapi": [("detstream.contrib.fastapi", None)],
    "faust.contrib.opentelemetry": [("detstream.contrib.opentelemetry", [
        "OpenTelemetrySensor", "instrument_asgi_app", "opentelemetry_available",
        "sdk_is_configured", "setup_opentelemetry"])],
    "faust.livecheck": [("detstream.livecheck", ["LiveCheck", "Case", "Signal", "TestRunner",
                                                 "current_test"])],
    "faust.livecheck.app": [("detstream.livecheck.app", ["LiveCheck"])],
    "faust.livecheck.case": [("detstream.livecheck.case", ["Case"])],
    "faust.livecheck.signals": [("detstream.livecheck.signals", ["BaseSignal", "Signal"])],
    "faust.livecheck.runners": [("detstream.livecheck.runners", ["TestRunner"])],
    "faust.livecheck.models": [("detstream.livecheck.models", [
        "State", "SignalEvent", "TestExecution", "TestReport"])],
    "faust.livecheck.locals": [("detstream.livecheck.locals", [
        "current_execution", "current_execution_stack", "current_test", "current_test_stack"])],
    "faust.livecheck.exceptions": [("detstream.livecheck.exceptions", None)],
    "faust.fixups": [("detstream.fixups", ["by_name", "fixups"])],
    "faust.fixups.base": [("detstream.fixups.base", ["Fixup"])],
    "faust.fixups.django": [("detstream.fixups.django", ["Fixup"])],
}


class FaustInstalledError(ImproperlyConfigured):
    """A real faust is installed or imported: the alias would hide it, so it is not installed."""


def _module_sources(fullname: str) -> list[Source] | None:
    if fullname in FAUST_MODULES:
        return FAUST_MODULES[fullname]
    if fullname.startswith("faust.types."):  # faust.types.tuples, .models, .codecs, ...
        return FAUST_MODULES["faust.types"]
    return None


def _public_names(module: ModuleType) -> list[str]:
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return [
        name for name, value in vars(module).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__
    ]


def _missing_name(module_name: str, name: str) -> ImportError:
    return ImportError(
        f"{module_name}.{name}: detstream's Faust alias does not provide this name "
        f"(see {DIFFERENCES} for what is left out and what to use instead)",
        name=module_name,
    )


def _fill(module: ModuleType, sources: list[Source]) -> None:
    """Copy the sources' names into ``module`` and give it Faust's lazy attribute lookup."""
    namespace = module.__dict__
    exported: list[str] = []
    for source_name, names in sources:
        source = importlib.import_module(source_name)
        for name in names if names is not None else _public_names(source):
            namespace[name] = getattr(source, name)
            exported.append(name)
    fullname = module.__name__
    namespace["__all__"] = exported
    namespace["__path__"] = []  # a package: ``faust.web`` under ``faust``, and so on
    if fullname == "faust":
        import detstream

        namespace["__version__"] = detstream.__version__
        namespace["__doc__"] = "Faust's API, answered by detstream (see detstream.faust_compat)."

    def __getattr__(name: str) -> Any:  # noqa: N807 - PEP 562 module attribute hook
        if name.startswith("_"):
            raise AttributeError(f"module {fullname!r} has no attribute {name!r}")
        child = f"{fullname}.{name}"
        if _module_sources(child) is not None:  # ``from faust import web``, ``faust.cli``
            return importlib.import_module(child)
        raise _missing_name(fullname, name)

    def __dir__() -> list[str]:  # noqa: N807 - PEP 562
        return sorted(exported)

    namespace["__getattr__"] = __getattr__
    namespace["__dir__"] = __dir__


class FaustAliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``faust`` and ``faust.*`` and builds each from :data:`FAUST_MODULES`."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "faust" and not fullname.startswith("faust."):
            return None
        if _module_sources(fullname) is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: detstream's Faust alias has no counterpart of "
                f"it (see {DIFFERENCES})",
                name=fullname,
            )
        return importlib.util.spec_from_loader(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        sources = _module_sources(module.__name__)
        assert sources is not None  # find_spec answered only for mapped names
        _fill(module, sources)

    def __repr__(self) -> str:
        return "<FaustAliasFinder: faust -> detstream>"


_FINDER = FaustAliasFinder()


def installed() -> bool:
    """Whether ``import faust`` resolves to detstream in this process."""
    return _FINDER in sys.meta_path


def installed_faust() -> str | None:
    """Where a real faust package is importable from, or None (no faust, or only the alias)."""
    spec = importlib.machinery.PathFinder.find_spec("faust")
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if any((Path(location) / ALIAS_MARKER).is_file() for location in locations):
        return None
    return spec.origin or (locations[0] if locations else "faust")


def _imported_faust() -> ModuleType | None:
    module = sys.modules.get("faust")
    if module is None or getattr(module, "__loader__", None) is _FINDER:
        return None
    return module


def install(*, force: bool = False) -> bool:
    """Make ``import faust`` resolve to detstream in this process; False if it already did.

    Refuses with :class:`FaustInstalledError` when a real faust is importable
    or imported, unless ``force`` (then it is hidden, with a warning).
    """
    if installed():
        return False
    imported = _imported_faust()
    real = installed_faust()
    where = getattr(imported, "__file__", None) or real
    if (imported is not None or real is not None) and not force:
        raise FaustInstalledError(
            f"a real faust is {'imported' if imported is not None else 'installed'} "
            f"({where}): the Faust alias would hide it, so it was not installed. Uninstall it "
            "(pip uninstall faust-streaming) to run the project on detstream, or force the alias "
            "(--faust-compat-force, install(force=True)) to hide it for this process"
        )
    if imported is not None or real is not None:
        warnings.warn(
            f"the Faust alias hides the faust at {where}: `import faust` is detstream now",
            DetstreamWarning, stacklevel=2,
        )
        for name in [n for n in sys.modules if n == "faust" or n.startswith("faust.")]:
            del sys.modules[name]
    sys.meta_path.insert(0, _FINDER)
    logger.debug("Faust alias installed: `import faust` resolves to detstream")
    return True


def uninstall() -> None:
    """Undo :func:`install`: the finder and the ``faust`` modules it built go."""
    while _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n, m in sys.modules.items() if getattr(m, "__loader__", None) is _FINDER]:
        del sys.modules[name]


@contextmanager
def faust_alias(*, force: bool = False) -> Iterator[None]:
    """``import faust`` resolves to detstream inside the block (and after it, if it did before)."""
    added = install(force=force)
    try:
        yield
    finally:
        if added:
            uninstall()


def adopt_alias_package(name: str) -> None:
    """Called by the alias distribution's ``faust/__init__.py``: become the Faust alias.

    The package being imported is replaced in ``sys.modules`` by the alias's
    ``faust`` module (Python's import returns what ``sys.modules`` holds once
    the package's code ran), and the finder answers ``faust.*`` from now on.
    A faust distribution installed alongside shares the ``faust`` directory:
    that is reported as a warning, since its files and the alias's collide.
    """
    from importlib import metadata

    for distribution in ("faust-streaming", "faust"):
        try:
            metadata.distribution(distribution)
        except metadata.PackageNotFoundError:
            continue
        warnings.warn(
            f"{distribution} is installed next to detstream-faust-alias: both write the "
            "`faust` package; `import faust` is detstream now. Uninstall one of them.",
            DetstreamWarning, stacklevel=2,
        )
    if not installed():
        sys.meta_path.insert(0, _FINDER)
    package = sys.modules.pop(name, None)
    spec = importlib.util.spec_from_loader(name, _FINDER, is_package=True)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        _FINDER.exec_module(module)
    except BaseException:
        if package is not None:
            sys.modules[name] = package
        raise
