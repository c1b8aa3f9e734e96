"""Guide: "Projects and Directory Layout" -- a standalone module, and the medium/large
layout with autodiscovery and a ``__main__`` entry point (examples/proj)."""

import sys

import pytest

import detstream as faust
from detstream.errors import AutodiscoverError
from detstream.loader import load_isolated

from .helpers import ROOT, python

PROJ = ROOT / "examples" / "proj"


def test_a_standalone_module_has_everything_it_needs():
    module, app = load_isolated("examples/word_count.py")
    assert app.agents and app.tables.tables and callable(module.sim_scenario)
    assert "app.main()" in (ROOT / "examples" / "word_count.py").read_text()


def test_the_medium_large_layout():
    expected = ["__init__.py", "__main__.py", "app.py",
                "users/__init__.py", "users/agents.py", "users/commands.py", "users/models.py",
                "users/views.py",
                "orders/__init__.py", "orders/agents.py", "orders/models.py", "orders/views.py"]
    assert all((PROJ / name).is_file() for name in expected)


def test_autodiscover_true_traverses_the_origin_package():
    _, app = load_isolated("examples/proj")
    assert (app.conf.autodiscover, app.conf.origin, app.conf.version) == (True, "proj", 1)
    modules = {name.rsplit(".", 1)[0] for name in app.agents}
    assert modules == {"proj.users.agents", "proj.orders.agents"}


def test_autodiscover_a_list_of_modules_instead(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    saved = {n: m for n, m in sys.modules.items() if n == "proj" or n.startswith("proj.")}
    for name in saved:
        del sys.modules[name]
    try:
        import proj  # noqa: F401 - the package, as `python -m proj` imports it

        app = faust.App("proj-list", version=1, autodiscover=["proj.users", "proj.orders"],
                        origin="proj")
        assert app.discover()[:2] == ["proj.users", "proj.users.agents"]
        assert "proj.orders.views" in sys.modules
        assert "proj.__main__" not in sys.modules  # never imported: it would run app.main()
        assert len(sys.modules["proj.app"].app.agents) == 3  # on the app they import
    finally:
        for name in [n for n in sys.modules if n == "proj" or n.startswith("proj.")]:
            del sys.modules[name]
        sys.modules.update(saved)


def test_autodiscover_true_needs_an_origin():
    app = faust.App("no-origin", autodiscover=True)
    app.defined_in = "__main__"  # made by a script: nothing to infer the package from
    with pytest.raises(AutodiscoverError, match="origin="):
        app.discover()


def test_python_dash_m_proj_is_the_entry_point():
    env = {"PYTHONPATH": f"{ROOT / 'examples'}:{ROOT}"}
    out = python("-m", "proj", "worker", "--help", cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: python -m proj worker")


def test_the_setuptools_entry_point_proj_app_main():
    """``entry_points={'console_scripts': ['proj = proj.app:main']}`` runs ``proj.app.main``."""
    env = {"PYTHONPATH": f"{ROOT / 'examples'}:{ROOT}"}
    code = "import sys; sys.argv = ['proj', '--help']; from proj.app import main; main()"
    out = python("-c", code, cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: proj ") and "add-user" in out.stdout
