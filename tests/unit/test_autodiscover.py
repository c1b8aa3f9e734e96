"""Autodiscovery (detstream/autodiscover.py): App(autodiscover=..., origin=...) imports a
project's modules so that the decorators in them register."""

import asyncio
import sys
import textwrap

import pytest
from click.testing import CliRunner

import detstream
from detstream.autodiscover import discover, discovery_modules, origin_of
from detstream.cli.main import main
from detstream.errors import AutodiscoverError, ImproperlyConfigured, TargetError
from detstream.loader import load, load_isolated


def write_project(root, name, files):
    """A package ``name`` under ``root`` with ``files`` (relative path -> source)."""
    for relative, source in files.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / name


def app_source(name, **options):
    extra = "".join(f", {key}={value!r}" for key, value in options.items())
    return f"import detstream\napp = detstream.App({name!r}, broker='sim://'{extra})\n"


AGENT = """
    from {pkg}.app import app

    @app.agent()
    async def {fun}(stream):
        async for _ in stream:
            pass
"""


def layout(pkg, **options):
    """proj/{app,users/agents,users/views,orders/agents,__main__,test_x}.py"""
    return {
        "__init__.py": "from .app import app\n",
        "app.py": app_source(pkg, **options),
        "__main__.py": "raise SystemExit('__main__ must never be imported by autodiscover')\n",
        "test_things.py": "raise SystemExit('test modules are skipped')\n",
        "users/__init__.py": "",
        "users/agents.py": textwrap.dedent(AGENT.format(pkg=pkg, fun="users_agent")),
        "users/views.py": f"from {pkg}.app import app\n\n@app.page('/u/')\nasync def u(web, request):\n    return web.json(1)\n",
        "orders/__init__.py": "",
        "orders/agents.py": textwrap.dedent(AGENT.format(pkg=pkg, fun="orders_agent")),
    }


@pytest.fixture
def clean_modules():
    """Forget modules and sys.path entries a test imported directly."""
    before, path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]
    sys.path[:] = path


def agent_names(app):
    return sorted(name.rsplit(".", 1)[-1] for name in app.agents)


def test_true_with_origin_imports_every_module_of_the_package(tmp_path):
    project = write_project(tmp_path, "adproj1", layout("adproj1", autodiscover=True,
                                                        origin="adproj1"))
    _, app = load_isolated(str(project))
    assert agent_names(app) == ["orders_agent", "users_agent"]
    assert [route.path for route in app.web.routes] == ["/u/"]


def test_a_list_imports_just_the_listed_packages(tmp_path):
    project = write_project(tmp_path, "adproj2", layout(
        "adproj2", autodiscover=["adproj2.users"], origin="adproj2"))
    _, app = load_isolated(str(project))
    assert agent_names(app) == ["users_agent"]  # orders was not listed


def test_a_callable_returns_the_list_when_discovery_runs(tmp_path):
    files = layout("adproj2c")
    files["app.py"] = (
        "import detstream\n"
        "def modules():\n"
        "    return ['adproj2c.orders']\n"
        "app = detstream.App('adproj2c', broker='sim://', autodiscover=modules, origin='adproj2c')\n"
    )
    project = write_project(tmp_path, "adproj2c", files)
    _, app = load_isolated(str(project))
    assert agent_names(app) == ["orders_agent"]


def test_off_imports_nothing(tmp_path):
    project = write_project(tmp_path, "adproj3", layout("adproj3"))
    _, app = load_isolated(str(project))
    assert app.agents == {}


def test_origin_is_inferred_from_the_package_that_made_the_app(tmp_path):
    project = write_project(tmp_path, "adproj4", layout("adproj4", autodiscover=True))
    module, app = load_isolated(str(project))
    assert app.defined_in == "adproj4.app"
    assert agent_names(app) == ["orders_agent", "users_agent"]


def test_origin_of_a_standalone_module_is_the_module(clean_modules, tmp_path):
    (tmp_path / "adsolo.py").write_text(app_source("solo", autodiscover=True))
    sys.path.insert(0, str(tmp_path))
    import adsolo

    assert origin_of(adsolo.app) == "adsolo"
    assert discovery_modules(adsolo.app) == ["adsolo"]


def test_true_without_any_origin_says_how_to_fix_it():
    app = detstream.App("nowhere", autodiscover=True)
    app.defined_in = "__main__"
    with pytest.raises(AutodiscoverError, match="autodiscover=True but no origin: pass origin="):
        app.discover()


def test_an_unknown_module_is_named(tmp_path):
    project = write_project(tmp_path, "adproj5", layout(
        "adproj5", autodiscover=["adproj5.users", "adproj5.nope"]))
    with pytest.raises(TargetError, match="no module named 'adproj5.nope'"):
        load_isolated(str(project))


def test_a_module_failing_to_import_is_named_with_its_error(tmp_path):
    files = layout("adproj6", autodiscover=True, origin="adproj6")
    files["orders/broken.py"] = "1 / 0\n"
    project = write_project(tmp_path, "adproj6", files)
    with pytest.raises(TargetError) as info:
        load_isolated(str(project))
    message = str(info.value)
    assert "importing module 'adproj6.orders.broken' failed: ZeroDivisionError" in message
    assert isinstance(info.value.__cause__, AutodiscoverError)
    assert info.value.__cause__.module == "adproj6.orders.broken"


def test_a_missing_import_inside_a_discovered_module_is_not_blamed_on_the_list(tmp_path):
    files = layout("adproj7", autodiscover=["adproj7.users"])
    files["users/extra.py"] = "import no_such_dependency_xyz\n"
    project = write_project(tmp_path, "adproj7", files)
    with pytest.raises(TargetError,
                       match="importing module 'adproj7.users.extra' failed: ModuleNotFoundError"):
        load_isolated(str(project))


@pytest.mark.parametrize("setting", [["proj users"], [""], [3]])
def test_malformed_names_are_refused(setting):
    app = detstream.App("bad", autodiscover=setting)
    with pytest.raises(AutodiscoverError, match="is not a dotted module name"):
        discovery_modules(app)


def test_wrong_setting_type_is_refused_at_once():
    with pytest.raises(ImproperlyConfigured, match="autodiscover"):
        detstream.App("bad", autodiscover="proj.users")


def test_modules_are_imported_once_per_app_in_sorted_order(clean_modules, tmp_path):
    write_project(tmp_path, "adproj8", layout("adproj8", autodiscover=True))
    sys.path.insert(0, str(tmp_path))
    import adproj8

    first = adproj8.app.discover()
    assert first == ["adproj8", "adproj8.app", "adproj8.orders", "adproj8.orders.agents",
                     "adproj8.users", "adproj8.users.agents", "adproj8.users.views"]
    assert adproj8.app.discover() == []  # already done
    assert discover(adproj8.app, "adproj8.users") == ["adproj8.users", "adproj8.users.agents",
                                                        "adproj8.users.views"]


def test_load_with_dash_a_discovers(clean_modules, tmp_path, monkeypatch):
    write_project(tmp_path, "adproj9", layout("adproj9", autodiscover=True))
    monkeypatch.chdir(tmp_path)
    _, app = load("adproj9")
    assert agent_names(app) == ["orders_agent", "users_agent"]


def test_a_directory_without_init_is_a_clear_target_error(tmp_path):
    (tmp_path / "notapkg").mkdir()
    with pytest.raises(TargetError, match="directory without __init__.py"):
        load_isolated(str(tmp_path / "notapkg"))


def test_a_package_with_an_empty_init_is_found_through_its_app_module(tmp_path):
    files = layout("adproj10", autodiscover=True)
    files["__init__.py"] = ""
    project = write_project(tmp_path, "adproj10", files)
    _, app = load_isolated(str(project))
    assert app.conf.id == "adproj10"
    assert agent_names(app) == ["orders_agent", "users_agent"]


def test_sim_command_reports_a_broken_module_with_exit_2(tmp_path):
    files = layout("adproj11", autodiscover=True)
    files["users/agents.py"] += "\nraise RuntimeError('planted')\n"
    project = write_project(tmp_path, "adproj11", files)
    result = CliRunner().invoke(main, ["sim", str(project), "--duration", "1s"])
    assert result.exit_code == 2
    assert "importing module 'adproj11.users.agents' failed: RuntimeError: planted" in result.output


def test_an_app_started_directly_discovers_when_it_starts(clean_modules, tmp_path):
    from sim.testing import run_app

    write_project(tmp_path, "adproj12", layout("adproj12", autodiscover=True))
    sys.path.insert(0, str(tmp_path))
    from adproj12.app import app

    assert app.agents == {}

    async def body(cluster):
        await asyncio.sleep(1)  # virtual time
        return sorted(app.agents)

    assert [n.rsplit(".", 1)[-1] for n in run_app(app, body)] == ["orders_agent", "users_agent"]


def test_app_main_reports_a_broken_module_as_a_usage_error(tmp_path):
    import subprocess
    from pathlib import Path

    files = layout("adproj13", autodiscover=True)
    files["orders/agents.py"] += "\nraise RuntimeError('planted')\n"
    files["__main__.py"] = "from adproj13.app import app\napp.main()\n"
    write_project(tmp_path, "adproj13", files)
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-m", "adproj13", "--help"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 2
    assert out.stderr == ("error: autodiscover: importing module 'adproj13.orders.agents' "
                          "failed: RuntimeError: planted\n")


def test_an_app_made_in_code_read_from_stdin_is_made(tmp_path):
    """``python -`` names its ``__main__`` file ``<stdin>``: no file to find a module name in."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    source = "import detstream\napp = detstream.App('piped')\nprint(app.defined_in)\n"
    result = subprocess.run([sys.executable, "-"], input=source, capture_output=True, text=True,
                            cwd=tmp_path, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "__main__"
