"""Settings sources: kwargs < config_from_object < environment (Faust's precedence)."""

import sys
import types
import warnings

import pytest

import detstream
from detstream.config import env_settings
from detstream.errors import ImproperlyConfigured


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("BROKER_URL", "APP_STORE", "APP_DATADIR", "WEB_PORT", "PROCESSING_GUARANTEE",
                "APP_VERSION", "APP_ENV_PREFIX", "APP_WEB_ENABLED", "TIMEZONE", "APP_DEBUG"):
        monkeypatch.delenv(var, raising=False)


class Config:
    broker = "kafka://from-object:9092"
    topic_partitions = 3
    HELPER_CONSTANT = "ignored"

    @staticmethod
    def helper():  # methods are not settings
        return 1


def test_config_from_object_overrides_kwargs():
    app = detstream.App("cfg", broker="kafka://kw:9092", store="memory://", topic_partitions=5)
    app.config_from_object(Config)
    assert app.conf.broker == "kafka://from-object:9092"
    assert app.conf.topic_partitions == 3
    assert app.conf.store == "memory://"


def test_config_from_dict_and_dotted_module(monkeypatch):
    module = types.ModuleType("proj_settings_for_test")
    exec("import os\nbroker = 'kafka://mod:1'\nweb_port = 7000\n_private = 1\n", module.__dict__)
    monkeypatch.setitem(sys.modules, "proj_settings_for_test", module)
    app = detstream.App("cfg")
    app.config_from_object("proj_settings_for_test")
    assert app.conf.broker == "kafka://mod:1" and app.conf.web_port == 7000

    app2 = detstream.App("cfg2")
    app2.config_from_object({"store": "rocksdb://"})
    assert app2.conf.store == "rocksdb://"


def test_config_source_is_read_lazily():
    app = detstream.App("lazy")
    app.config_from_object({"topic_partition": 4})  # typo: found when configured
    with pytest.raises(ImproperlyConfigured,
                       match=r"unknown setting 'topic_partition' in config source dict.*'topic_partitions'"):
        app.conf  # noqa: B018


def test_unknown_setting_in_config_object():
    class Bad:
        brokr = "kafka://x"

    app = detstream.App("bad")
    app.config_from_object(Bad)
    with pytest.raises(ImproperlyConfigured, match=r"unknown setting 'brokr'.*did you mean 'broker'"):
        app.conf  # noqa: B018


def test_missing_module_loud_unless_silent():
    app = detstream.App("missing")
    app.config_from_object("no_such_module_xyz.settings")
    with pytest.raises(ImproperlyConfigured, match="no_such_module_xyz.settings.*cannot import"):
        app.conf  # noqa: B018
    quiet = detstream.App("missing2", topic_partitions=2)
    quiet.config_from_object("no_such_module_xyz.settings", silent=True)
    assert quiet.conf.topic_partitions == 2


def test_config_from_object_after_configured_rereads_with_warning():
    app = detstream.App("again")
    assert app.conf.topic_partitions == 8
    with pytest.warns(UserWarning, match="already configured"):
        app.config_from_object({"topic_partitions": 2})
    assert app.conf.topic_partitions == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app.config_from_object({"topic_partitions": 4}, force=True)
    assert app.conf.topic_partitions == 4


def test_environment_overrides_kwargs_and_object(monkeypatch):
    app = detstream.App("env", broker="kafka://kw:1", web_port=1000, version=1)
    app.config_from_object({"store": "memory://", "web_port": 2000})
    monkeypatch.setenv("BROKER_URL", "kafka://env:9092")
    monkeypatch.setenv("APP_STORE", "rocksdb://")
    monkeypatch.setenv("APP_DATADIR", "/tmp/envdata")
    monkeypatch.setenv("WEB_PORT", "3000")
    monkeypatch.setenv("PROCESSING_GUARANTEE", "exactly_once")
    monkeypatch.setenv("APP_VERSION", "3")
    monkeypatch.setenv("APP_WEB_ENABLED", "no")
    conf = app.conf  # read when configured, after the App was made
    assert conf.broker == "kafka://env:9092"
    assert conf.store == "rocksdb://"
    assert conf.datadir == "/tmp/envdata"
    assert conf.web_port == 3000
    assert conf.processing_guarantee == "exactly_once"
    assert conf.version == 3 and conf.id == "env-v3"
    assert conf.web_enabled is False


def test_env_prefix(monkeypatch):
    monkeypatch.setenv("MYAPP_BROKER_URL", "kafka://prefixed:1")
    monkeypatch.setenv("BROKER_URL", "kafka://unprefixed:1")
    assert detstream.App("p", env_prefix="MYAPP_").conf.broker == "kafka://prefixed:1"
    assert detstream.App("q").conf.broker == "kafka://unprefixed:1"
    monkeypatch.setenv("APP_ENV_PREFIX", "MYAPP_")
    assert detstream.App("r").conf.broker == "kafka://prefixed:1"


def test_ill_typed_env_names_the_variable(monkeypatch):
    monkeypatch.setenv("WEB_PORT", "http")
    with pytest.raises(ImproperlyConfigured, match=r"WEB_PORT='http'.*'web_port'.*integer"):
        detstream.App("t").conf  # noqa: B018
    monkeypatch.setenv("WEB_PORT", "80")
    monkeypatch.setenv("APP_DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match=r"APP_DEBUG='maybe'.*boolean"):
        detstream.App("t").conf  # noqa: B018
    with pytest.raises(ImproperlyConfigured, match=r"PROCESSING_GUARANTEE='twice'.*one of"):
        env_settings(None, {"PROCESSING_GUARANTEE": "twice"})


def test_env_not_read_at_import_or_construction(monkeypatch):
    app = detstream.App("late")  # made before the variable is set
    monkeypatch.setenv("WEB_PORT", "8123")
    assert app.conf.web_port == 8123


def test_id_format_and_new_settings():
    assert detstream.App("fmt", version=2, id_format="{id}.{self.version}").conf.id == "fmt.2"
    assert detstream.App("fmt", version=2).conf.id == "fmt-v2"
    conf = detstream.App("fmt").conf
    assert conf.tabledir == "tables" and conf.env_prefix is None and conf.blocking_timeout is None
    with pytest.raises(ImproperlyConfigured, match="id_format"):
        detstream.App("fmt", version=2, id_format="{nope}").conf.id  # noqa: B018


def test_configured_signal_sees_resolved_settings(monkeypatch):
    monkeypatch.setenv("WEB_PORT", "4242")
    app = detstream.App("sig")
    seen = []

    @app.on_configured.connect
    def configure(sender, conf, **kwargs):
        seen.append(conf.web_port)

    assert app.conf.web_port == 4242 and seen == [4242]
