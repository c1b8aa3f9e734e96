"""``loader.cached_lookups``: within one simulation run, worker starts find the project's files once."""

import importlib.machinery
import os
import sys
import textwrap

import pytest

from detstream import loader
from detstream.loader import cached_lookups, load_isolated

APP = """
    import detstream

    app = detstream.App("lkapp", broker="sim://")
    LOADS = []
    topic = app.topic("lk-in")


    @app.agent(topic)
    async def each(stream):
        async for _ in stream:
            pass
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """``lkspace/`` (a namespace package: no ``__init__.py``) holding ``lkspace/lkapp.py``."""
    (tmp_path / "lkspace").mkdir()
    (tmp_path / "lkspace" / "lkapp.py").write_text(textwrap.dedent(APP))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("lkspace")]:
        del sys.modules[name]


@pytest.fixture
def searches(monkeypatch):
    """Each ``PathFinder.find_spec`` call for ``lkspace``: (module, the directories searched,
    None for all of ``sys.path``)."""
    calls = []
    find = importlib.machinery.PathFinder.find_spec

    def recording(fullname, path=None, target=None):
        if fullname.startswith("lkspace"):
            calls.append((fullname, list(path) if path is not None else None))
        return find(fullname, path, target)

    monkeypatch.setattr(importlib.machinery.PathFinder, "find_spec", recording)
    return calls


def test_within_a_run_a_module_is_searched_for_only_where_it_was_found(project, searches):
    with cached_lookups():
        apps = [load_isolated("lkspace/lkapp.py")[1] for _ in range(3)]
    assert len({id(app) for app in apps}) == 3  # each load imports afresh all the same
    assert [sorted(app.agents) for app in apps] == [["lkspace.lkapp.each"]] * 3
    first, later = searches[:2], searches[2:]
    assert [name for name, _ in first] == ["lkspace", "lkspace.lkapp"]
    assert [name for name, _ in later] == ["lkspace", "lkspace.lkapp"] * 2
    # the namespace package's later searches look in its one portion's parent, not all of sys.path
    assert all(where == [str(project)] for name, where in later if name == "lkspace")
    assert not any(name.startswith("lkspace") for name in sys.modules)


def test_outside_a_run_every_load_searches_sys_path(project, searches):
    for _ in range(2):
        load_isolated("lkspace/lkapp.py")
    namespace_searches = [where for name, where in searches if name == "lkspace"]
    assert len(namespace_searches) == 2
    assert namespace_searches == [None, None]
    assert loader._lookups.get() is None


def test_a_module_that_moved_is_found_where_it_went(project, monkeypatch):
    with cached_lookups():
        load_isolated("lkspace.lkapp")
        other = project / "elsewhere"
        (other / "lkspace").mkdir(parents=True)
        os.replace(project / "lkspace" / "lkapp.py", other / "lkspace" / "lkapp.py")
        (project / "lkspace").rmdir()
        monkeypatch.syspath_prepend(str(other))
        _, app = load_isolated("lkspace.lkapp")
    assert sorted(app.agents) == ["lkspace.lkapp.each"]
