import pytest

import detstream
from detstream.errors import ImproperlyConfigured


def test_defaults_match_faust():
    conf = detstream.App("x").conf
    assert conf.broker == "kafka://localhost:9092"
    assert conf.store == "memory://"
    assert conf.topic_partitions == 8
    assert conf.broker_commit_interval == 2.8
    assert conf.stream_buffer_maxsize == 4096
    assert conf.key_serializer == "raw" and conf.value_serializer == "json"
    assert conf.processing_guarantee == "at_least_once"
    assert conf.id == "x" and conf.datadir == "x-data"


def test_version_changes_id():
    assert detstream.App("x", version=2).conf.id == "x-v2"


def test_unknown_setting_suggests_the_right_name():
    with pytest.raises(ImproperlyConfigured, match="unknown setting 'topic_partition'.*'topic_partitions'"):
        detstream.App("x", topic_partition=4)


def test_wrong_type_names_setting_and_value():
    with pytest.raises(ImproperlyConfigured, match="'topic_partitions' must be int, got str '4'"):
        detstream.App("x", topic_partitions="4")
    with pytest.raises(ImproperlyConfigured, match="processing_guarantee"):
        detstream.App("x", processing_guarantee="twice")


def test_app_id_must_be_a_string():
    with pytest.raises(ImproperlyConfigured, match="App id"):
        detstream.App("")


def test_configuration_signals_fire_once_on_first_access():
    app = detstream.App("x")
    seen = []

    @app.on_configured.connect
    def configure(sender, conf, **kwargs):
        seen.append(("configured", sender is app))
        conf.broker = "sim://"

    @app.on_after_configured.connect
    def after(sender, **kwargs):
        seen.append(("after", sender is app))

    assert app.conf.broker == "sim://"
    assert app.conf.broker == "sim://"
    assert seen == [("configured", True), ("after", True)]
