"""Fixups (detstream/fixups/): what an enabled fixup adds to autodiscovery and to a
worker's start, and how the simulator's fresh imports treat the packages it walks.

Django's own fixup, with Django, is tested in test_django_fixup.py.
"""

import sys
import textwrap

import pytest

import detstream
from detstream.autodiscover import discover, discovery_modules, init_fixups, init_worker
from detstream.errors import DetstreamWarning, FixupError, ImproperlyConfigured, TargetError
from detstream.fixups import FIXUPS, Fixup, by_name, fixups
from detstream.fixups import django as django_fixup
from detstream.loader import load_isolated


def write_tree(root, files):
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


@pytest.fixture
def clean_modules():
    """Forget modules and sys.path entries a test imported directly."""
    before, path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.path[:] = path


class Recording(Fixup):
    """A fixup adding ``modules`` to autodiscovery and recording what it is asked."""

    def __init__(self, app, modules=(), calls=None):
        super().__init__(app)
        self.modules = list(modules)
        self.calls = calls if calls is not None else []

    def enabled(self):
        return True

    def autodiscover_modules(self):
        self.calls.append("autodiscover_modules")
        return self.modules

    def on_worker_init(self):
        self.calls.append("on_worker_init")


def test_the_base_fixup_is_enabled_nowhere_and_adds_nothing():
    fixup = Fixup(detstream.App("fx-base", broker="sim://"))
    assert not fixup.enabled()
    assert list(fixup.autodiscover_modules()) == []
    assert list(fixup.shared_modules()) == []
    assert fixup.on_worker_init() is None


def test_fixups_are_found_by_name_or_path_and_a_bad_one_is_named():
    assert by_name("django") is django_fixup.Fixup
    assert by_name("detstream.fixups.base:Fixup") is Fixup
    assert "django" in FIXUPS
    with pytest.raises(ImproperlyConfigured, match="unknown fixup 'rails'"):
        by_name("rails")
    with pytest.raises(ImproperlyConfigured, match="cannot be loaded"):
        by_name("detstream.fixups.base:Nope")


def test_the_django_fixup_is_enabled_by_its_settings_variable(monkeypatch):
    monkeypatch.delenv("DJANGO_SETTINGS_MODULE", raising=False)
    assert detstream.App("fx-off", broker="sim://").fixups == []
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "proj.settings")
    monkeypatch.setitem(sys.modules, "django", sys.modules.get("django") or object())
    app = detstream.App("fx-on", broker="sim://")
    assert [type(f) for f in app.fixups] == [django_fixup.Fixup]
    assert [type(f) for f in fixups(app)] == [django_fixup.Fixup]


def test_the_django_fixup_warns_and_stays_off_when_django_is_missing(monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "proj.settings")
    monkeypatch.setitem(sys.modules, "django", None)  # `import django` raises ImportError
    app = detstream.App("fx-missing", broker="sim://")
    with pytest.warns(DetstreamWarning, match="Django cannot be imported"):
        assert app.fixups == []


def test_app_fixups_can_be_replaced():
    app = detstream.App("fx-set", broker="sim://")
    fixup = Recording(app)
    app.fixups = [fixup]
    assert app.fixups == [fixup]


def test_fixup_modules_are_discovered_after_the_apps_own_when_autodiscover_is_on():
    app = detstream.App("fx-disc", broker="sim://", autodiscover=["a.b", "c"])
    app.fixups = [Recording(app, ["c", "d"])]
    assert discovery_modules(app) == ["a.b", "c", "d"]
    off = detstream.App("fx-disc-off", broker="sim://", autodiscover=False)
    off.fixups = [Recording(off, ["d"])]
    assert discovery_modules(off) == []


def test_a_fixups_malformed_module_name_is_refused():
    app = detstream.App("fx-bad", broker="sim://", autodiscover=["a"])
    app.fixups = [Recording(app, ["not a module"])]
    with pytest.raises(ImproperlyConfigured, match="not a dotted module name"):
        discovery_modules(app)


def test_a_worker_runs_the_fixups_first_and_once_per_app(clean_modules, tmp_path):
    write_tree(tmp_path, {"fxpkg_once/__init__.py": "IMPORTED = True\n"})
    sys.path.insert(0, str(tmp_path))
    app = detstream.App("fx-once", broker="sim://", autodiscover=["fxpkg_once"])
    calls = []
    app.fixups = [Recording(app, [], calls)]
    app.on_worker_init.connect(lambda sender, **kwargs: calls.append("signal"))
    init_worker(app)
    init_worker(app)
    init_fixups(app)
    # the fixups before autodiscovery, as Faust's worker_init; each step once per App
    # (discovery asks the fixups again, and imports nothing more)
    assert calls == ["on_worker_init", "autodiscover_modules", "signal", "autodiscover_modules"]
    assert "fxpkg_once" in sys.modules


def test_a_failing_fixup_is_named(clean_modules):
    class Broken(Recording):
        def on_worker_init(self):
            raise RuntimeError("settings module not found")

    app = detstream.App("fx-broken", broker="sim://", autodiscover=["a"])
    app.fixups = [Broken(app)]
    with pytest.raises(FixupError, match=r"Broken failed in on_worker_init\(\): "
                                         r"RuntimeError: settings module not found"):
        init_worker(app)


#: a project whose App lives in ``fxproj`` and whose agents live in another package,
#: ``fxagents``, walked because autodiscover lists it (as a Django app's package is).
WALKED_PROJECT = {
    "fxproj/__init__.py": "",
    "fxproj/app.py": """
        import detstream
        app = detstream.App("fx-walk", broker="sim://", autodiscover=["fxproj", "fxagents"])
    """,
    "fxagents/__init__.py": "",
    "fxagents/models.py": "LOADS = []\n",
    "fxagents/agents.py": """
        from fxproj.app import app
        from . import models
        models.LOADS.append(1)

        @app.agent()
        async def walked(stream):
            async for _ in stream:
                pass
    """,
}


def test_each_isolated_load_gets_the_agents_of_packages_outside_its_own(tmp_path, monkeypatch):
    write_tree(tmp_path, WALKED_PROJECT)
    monkeypatch.chdir(tmp_path)
    apps = [load_isolated("fxproj.app")[1] for _ in range(3)]
    assert [sorted(app.agents) for app in apps] == [["fxagents.agents.walked"]] * 3
    assert len({id(app) for app in apps}) == 3
    assert not any(name.startswith(("fxagents", "fxproj")) for name in sys.modules)


class SharesModels(Recording):
    def shared_modules(self):
        return ["fxshared.models"]


def test_modules_a_fixup_shares_stay_imported_across_isolated_loads(tmp_path, monkeypatch):
    files = {name.replace("fxagents", "fxshared").replace("fxproj", "fxsproj"):
             source.replace("fxagents", "fxshared").replace("fxproj", "fxsproj")
             for name, source in WALKED_PROJECT.items()}
    write_tree(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("detstream.fixups.fixup_classes", lambda: (SharesModels,))
    try:
        apps = [load_isolated("fxsproj.app")[1] for _ in range(3)]
        assert [sorted(app.agents) for app in apps] == [["fxshared.agents.walked"]] * 3
        models = sys.modules["fxshared.models"]
        assert models.LOADS == [1, 1, 1]  # imported once, its agents module three times
        assert "fxshared" in sys.modules and "fxshared.agents" not in sys.modules
    finally:
        from detstream import loader

        loader._SHARED.difference_update({"fxshared", "fxshared.models"})
        for name in [n for n in sys.modules if n.startswith("fxshared")]:
            del sys.modules[name]


def test_a_target_whose_fixup_fails_is_a_target_error(tmp_path, monkeypatch):
    class Failing(Recording):
        def autodiscover_modules(self):
            raise LookupError("no INSTALLED_APPS")

    write_tree(tmp_path, {"fxfail/__init__.py": "",
                          "fxfail/app.py": "import detstream\n"
                                           "app = detstream.App('fx-fail', broker='sim://', "
                                           "autodiscover=True, origin='fxfail')\n"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("detstream.fixups.fixup_classes", lambda: (Failing,))
    with pytest.raises(TargetError, match="autodiscover_modules.*no INSTALLED_APPS"):
        load_isolated("fxfail.app")


def test_discover_imports_the_fixups_modules_once(clean_modules, tmp_path):
    write_tree(tmp_path, {"fxextra/__init__.py": "", "fxextra/agents.py": "X = 1\n",
                          "fxmore/__init__.py": ""})
    sys.path.insert(0, str(tmp_path))
    app = detstream.App("fx-extra", broker="sim://", autodiscover=True, origin="fxextra")
    app.fixups = [Recording(app, ["fxmore", "fxextra"])]
    assert discover(app) == ["fxextra", "fxextra.agents", "fxmore"]
    assert discover(app) == []
