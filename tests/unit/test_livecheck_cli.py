"""``detstream livecheck``: runs the LiveCheck app of the target's app as a worker.

No broker: the Worker is built by the command but not run (its
``execute_from_commandline`` is replaced by one that records it), as in
test_worker_cli.py.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import detstream
import detstream.worker
from detstream.cli.main import main

APP_SOURCE = """
import detstream
from detstream.livecheck import Case, Signal

app = detstream.App("lcapp", broker="kafka://localhost:1", origin="lcproj_cli")
livecheck = app.LiveCheck()


@livecheck.case(frequency=5.0)
class test_thing(Case):
    done: Signal[str]

    async def run(self) -> None:
        await self.done.wait(timeout=1.0)
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "lcproj_cli.py").write_text(APP_SOURCE)
    (tmp_path / "lcproj_plain.py").write_text(
        'import detstream\napp = detstream.App("plain", broker="kafka://localhost:1")\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.fixture
def built(monkeypatch):
    workers: list[detstream.worker.Worker] = []
    monkeypatch.setattr(detstream.worker.Worker, "execute_from_commandline",
                        lambda self: workers.append(self))
    return workers


def test_livecheck_runs_the_apps_livecheck_app_with_the_worker_options(project, built):
    result = CliRunner().invoke(main, ["livecheck", "lcproj_cli.py", "-l", "info", "-p", "9998",
                                       "--without-web", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    (worker,) = built
    livecheck = worker.app
    assert livecheck.conf.id == "livecheck-lcapp"
    assert list(livecheck.cases) == ["lcproj_cli.test_thing"]
    assert (worker.loglevel, worker.web_port, worker.web_enabled, worker.quiet) == (
        "info", 9998, False, True)


def test_livecheck_of_an_app_preselected_by_app_main(project, built):
    from lcproj_cli import app  # what `python lcproj_cli.py livecheck` runs with

    result = CliRunner().invoke(main, ["livecheck"], obj={"app": app}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [w.app for w in built] == [app.livecheck]


def test_livecheck_of_an_app_without_one_is_a_usage_error(project, built):
    result = CliRunner().invoke(main, ["livecheck", "lcproj_plain.py"])
    assert result.exit_code == 2
    assert "app 'plain' has no LiveCheck app" in result.output and built == []
