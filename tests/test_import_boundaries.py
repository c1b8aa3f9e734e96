"""Dependencies point one way: detstream does not load the simulator, aiokafka or
rocksdict on import, and the simulator never loads aiokafka or rocksdict."""

import subprocess
import sys

import pytest

import detstream


def loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "statement, forbidden",
    [
        ("import detstream", {"sim", "aiokafka", "rocksdict", "django"}),
        ("import detstream.cli.main", {"sim", "aiokafka", "rocksdict", "django"}),
        # the Django fixup imports Django when it is enabled (DJANGO_SETTINGS_MODULE), not before
        ("import os, detstream.fixups.django, detstream\n"
         "os.environ.pop('DJANGO_SETTINGS_MODULE', None)\n"
         "assert detstream.App('x').fixups == []", {"django"}),
        # pytest loads it in every session: the simulator only when a test runs it
        ("import detstream.pytest_plugin", {"sim", "aiokafka", "rocksdict"}),
        ("import sim.runner, sim.testing, sim.explore", {"aiokafka", "rocksdict"}),
    ],
)
def test_import_does_not_pull_in(statement, forbidden):
    assert not loaded_after(statement) & forbidden


def test_public_api_is_exactly_all():
    public = {name for name in dir(detstream) if not name.startswith("_")}
    modules = {name for name in public if type(getattr(detstream, name)).__name__ == "module"}
    assert public - modules - {"annotations"} == set(detstream.__all__)  # __future__ import
    assert sorted(detstream.__all__) == sorted(set(detstream.__all__))


def test_faust_names_port_over():
    for name in ("App", "Record", "Stream", "Table", "Topic", "Channel", "Event", "current_event", "Service"):
        assert hasattr(detstream, name), name
