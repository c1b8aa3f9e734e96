"""The Faust alias: ``import faust`` answered by detstream, opt-in, never hiding a real faust."""

from __future__ import annotations

import sys
import textwrap

import pytest
from click.testing import CliRunner

import detstream
import detstream.worker
from detstream import faust_compat
from detstream.cli.main import main
from detstream.errors import DetstreamWarning

FAUST_PROJECT = """
import faust
from faust import StreamT
from faust.cli import option
from faust.types import TP

app = faust.App("faustproj", broker="kafka://localhost:1", topic_partitions=1)
words = app.topic("words", value_type=str)
counts = app.Table("counts", default=int)


@app.agent(words)
async def count(stream: StreamT[str]) -> None:
    async for word in stream:
        counts[word] += 1


def sim_scenario(sim):
    sim.producer("words", ["a", "b", "a"], every=0.1)

    @sim.check
    def counted(result):
        assert result.table("counts") == {"a": 2, "b": 1}
"""


@pytest.fixture(autouse=True)
def no_alias_left():
    """Every test starts and ends without the alias and without faust modules."""
    faust_compat.uninstall()
    yield
    faust_compat.uninstall()
    for name in [n for n in sys.modules if n == "faust" or n.startswith("faust.")]:
        del sys.modules[name]


@pytest.fixture
def real_faust(tmp_path, monkeypatch):
    """A stand-in for an installed faust: a ``faust`` package on ``sys.path``."""
    site = tmp_path / "site"
    (site / "faust").mkdir(parents=True)
    (site / "faust" / "__init__.py").write_text("REAL = True\n")
    monkeypatch.syspath_prepend(str(site))
    return site / "faust"


def test_faust_modules_are_detstreams_objects():
    with faust_compat.faust_alias():
        import faust
        import faust.types
        from faust import ChannelT, StreamT, web
        from faust.agents import current_agent
        from faust.cli import argument, option
        from faust.exceptions import SameNode, ValidationError
        from faust.serializers import codecs
        from faust.streams import current_event
        from faust.types.tuples import TP
        from faust.windows import TumblingWindow

        assert faust.App is detstream.App and faust.Record is detstream.Record
        assert StreamT is detstream.Stream and ChannelT is detstream.Channel
        assert web.View is detstream.web.View and codecs.get_codec("json") is not None
        assert TP is detstream.TP and TumblingWindow is detstream.TumblingWindow
        assert current_event is detstream.current_event and current_agent is detstream.current_agent
        assert issubclass(SameNode, detstream.errors.DetstreamError)
        assert issubclass(ValidationError, ValueError)
        assert callable(option) and callable(argument) and isinstance(faust.uuid(), str)
        assert "App" in dir(faust)
    assert "faust" not in sys.modules  # the block's modules went with the alias


def test_what_detstream_lacks_fails_at_the_import_naming_the_differences_page():
    with faust_compat.faust_alias():
        with pytest.raises(ModuleNotFoundError, match="faust.livecheck.patches.*faust-differences"):
            import faust.livecheck.patches  # noqa: F401
        with pytest.raises(ImportError, match=r"faust\.web\.gives_model.*faust-differences"):
            from faust.web import gives_model  # noqa: F401
        import faust

        assert not hasattr(faust, "_private")  # private names behave as usual


def test_faust_contrib_asgi_and_its_fastapi_alias_are_detstreams():
    import detstream.contrib.asgi as asgi

    with faust_compat.faust_alias():
        import faust.contrib.fastapi
        from faust.contrib.asgi import (
            AsgiService,
            FaustLifespanMiddleware,
            LoopMismatch,
            faust_app_running,
            faust_lifespan,
            serve_asgi,
        )

        assert faust_app_running is asgi.faust_app_running and faust_lifespan is asgi.faust_lifespan
        assert FaustLifespanMiddleware is asgi.FaustLifespanMiddleware
        assert serve_asgi is asgi.serve_asgi and LoopMismatch is asgi.LoopMismatch
        assert faust.contrib.fastapi.AsgiService is AsgiService is asgi.AsgiService
        with pytest.raises(ModuleNotFoundError, match="faust.contrib.sentry.*faust-differences"):
            import faust.contrib.sentry  # noqa: F401


def test_faust_fixups_and_the_django_fixup_are_detstreams():
    import detstream.fixups
    import detstream.fixups.django

    with faust_compat.faust_alias():
        from faust.fixups import fixups
        from faust.fixups.base import Fixup
        from faust.fixups.django import Fixup as DjangoFixup
        from faust.types import FixupT

        assert fixups is detstream.fixups.fixups
        assert Fixup is FixupT is detstream.fixups.Fixup
        assert DjangoFixup is detstream.fixups.django.Fixup and issubclass(DjangoFixup, Fixup)


def test_a_real_faust_is_not_hidden_unless_forced(real_faust):
    assert faust_compat.installed_faust() == str(real_faust / "__init__.py")
    with pytest.raises(faust_compat.FaustInstalledError, match="real faust is installed"):
        faust_compat.install()
    assert not faust_compat.installed()
    import faust

    assert faust.REAL  # untouched
    with pytest.raises(faust_compat.FaustInstalledError, match="imported"):
        faust_compat.install()
    with pytest.warns(DetstreamWarning, match="hides the faust"):
        assert faust_compat.install(force=True)
    import faust as alias

    assert alias.App is detstream.App


def test_the_alias_distribution_is_not_a_real_faust(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "faust").mkdir(parents=True)
    (site / "faust" / faust_compat.ALIAS_MARKER).write_text("")
    (site / "faust" / "__init__.py").write_text(
        "from detstream.faust_compat import adopt_alias_package\nadopt_alias_package(__name__)\n"
    )
    monkeypatch.syspath_prepend(str(site))
    assert faust_compat.installed_faust() is None
    import faust
    import faust.web

    assert faust.App is detstream.App and faust.web.Request is detstream.web.Request
    assert faust_compat.installed()


def test_install_is_idempotent_and_uninstall_undoes_it():
    assert faust_compat.install() is True
    assert faust_compat.install() is False
    import faust  # noqa: F401

    faust_compat.uninstall()
    assert not faust_compat.installed() and "faust" not in sys.modules
    with pytest.raises(ModuleNotFoundError):
        import faust  # noqa: F401,F811


def test_faust_metric_monitors_are_detstreams():
    import detstream.contrib.datadog
    import detstream.contrib.prometheus
    import detstream.contrib.statsd

    with faust_compat.faust_alias():
        from faust.sensors import Monitor
        from faust.sensors.datadog import DatadogMonitor, DatadogStatsClient
        from faust.sensors.prometheus import (
            FaustMetrics,
            PrometheusMonitor,
            setup_prometheus_sensors,
        )
        from faust.sensors.statsd import StatsdMonitor

        assert StatsdMonitor is detstream.contrib.statsd.StatsdMonitor
        assert DatadogMonitor is detstream.contrib.datadog.DatadogMonitor
        assert DatadogStatsClient is detstream.contrib.datadog.DatadogStatsClient
        assert PrometheusMonitor is detstream.contrib.prometheus.PrometheusMonitor
        assert FaustMetrics is detstream.contrib.prometheus.FaustMetrics
        assert setup_prometheus_sensors is detstream.contrib.prometheus.setup_prometheus_sensors
        assert all(issubclass(m, Monitor) for m in (StatsdMonitor, DatadogMonitor,
                                                    PrometheusMonitor))


#: how a Faust project turns on each metric monitor: (its import, its setup).
MONITORED = {
    "statsd": ("from faust.sensors.statsd import StatsdMonitor",
               "app.monitor = StatsdMonitor(prefix='faustproj')"),
    "datadog": ("from faust.sensors.datadog import DatadogMonitor",
                "app.monitor = DatadogMonitor(prefix='faustproj')"),
    "prometheus": ("from faust.sensors.prometheus import setup_prometheus_sensors",
                   "setup_prometheus_sensors(app)"),
}


@pytest.mark.parametrize("kind", sorted(MONITORED))
def test_sim_runs_a_faust_project_with_its_metric_monitor(tmp_path, monkeypatch, kind):
    pytest.importorskip({"prometheus": "prometheus_client"}.get(kind, kind))
    imports, setup = MONITORED[kind]
    target = f"faustproj_{kind}.py"  # the CLI loads a module once per process: a name of its own
    (tmp_path / target).write_text(f"{imports}\n{textwrap.dedent(FAUST_PROJECT)}\n{setup}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["sim", target, "--faust-compat", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "checks: all passed" in result.output


def _project(tmp_path, monkeypatch):
    (tmp_path / "faustproj.py").write_text(textwrap.dedent(FAUST_PROJECT))
    monkeypatch.chdir(tmp_path)
    return "faustproj.py"


def test_sim_faust_compat_runs_a_faust_project_unmodified(tmp_path, monkeypatch):
    target = _project(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["sim", target, "--faust-compat", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "checks: all passed" in result.output
    faust_compat.uninstall()  # the command installed it for the (test's) process
    failed = CliRunner().invoke(main, ["sim", target, "--seed", "1"])
    assert failed.exit_code == 2 and "No module named 'faust'" in failed.output


def test_sim_faust_compat_refuses_when_faust_is_installed_and_force_hides_it(
    tmp_path, monkeypatch, real_faust
):
    target = _project(tmp_path, monkeypatch)
    refused = CliRunner().invoke(main, ["sim", target, "--faust-compat", "--seed", "1"])
    assert refused.exit_code == 2
    assert "a real faust is installed" in refused.output and str(real_faust) in refused.output
    with pytest.warns(DetstreamWarning):
        forced = CliRunner().invoke(main, ["sim", target, "--faust-compat-force", "--seed", "1"])
    assert forced.exit_code == 0, forced.output
    assert "--faust-compat-force" not in forced.output  # passed: no replay line printed


def test_worker_faust_compat_loads_the_faust_project(tmp_path, monkeypatch):
    target = _project(tmp_path, monkeypatch)
    built = []
    monkeypatch.setattr(detstream.worker.Worker, "execute_from_commandline",
                        lambda self: built.append(self))
    result = CliRunner().invoke(main, ["worker", target, "--faust-compat"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    [worker] = built
    assert worker.app.conf.id == "faustproj"


def test_group_flag_comes_before_the_app_is_loaded(tmp_path, monkeypatch):
    target = _project(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["--faust-compat", "-A", target, "agents"])
    assert result.exit_code == 0, result.output
    assert "count" in result.output
