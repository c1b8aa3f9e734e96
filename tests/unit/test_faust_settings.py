"""Faust's settings: its older names work, what detstream has no use for is taken and logged,
what would change a program's meaning is refused off its default."""

import logging

import mode
import pytest

import detstream
from detstream import faust_settings
from detstream.errors import ImproperlyConfigured


def test_faust_older_names_set_the_current_settings():
    app = detstream.App("aliases", url="kafka://h:1", client_id="c", commit_interval=1.5,
                        create_reply_topic=True, num_standby_replicas=2, default_partitions=3,
                        replication_factor=2)
    conf = app.conf
    assert conf.broker == "kafka://h:1" and conf.broker_client_id == "c"
    assert conf.broker_commit_interval == 1.5 and conf.reply_create_topic is True
    assert conf.table_standby_replicas == 2 and conf.topic_partitions == 3
    assert conf.topic_replication_factor == 2
    conf.default_partitions = 5  # the same through app.conf
    assert conf.topic_partitions == 5


def test_ignored_faust_settings_are_readable_and_logged_once(caplog):
    faust_settings._warned.discard("stream_recovery_delay")
    with caplog.at_level(logging.WARNING, logger="detstream.faust_settings"):
        one = detstream.App("ignored", stream_recovery_delay=3.0, web_in_thread=False)
        detstream.App("ignored-again", stream_recovery_delay=3.0)
    assert one.conf.stream_recovery_delay == 3.0 and one.conf.web_in_thread is False
    assert detstream.App("defaults").conf.web_transport == "tcp://"  # Faust's default
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once per process, and not for a value at its default
    assert "'stream_recovery_delay'=3.0 is Faust's and has no effect" in warnings[0]


@pytest.mark.parametrize("name, value", [
    ("stream_publish_on_commit", True),
    ("broker_consumer", "kafka://other:9092"),
    ("producer_partitioner", "myproj.partitioner"),
])
def test_settings_that_change_a_programs_meaning_are_refused_off_their_default(name, value):
    with pytest.raises(ImproperlyConfigured, match=f"{name!r}.*detstream does not support it"):
        detstream.App("refused", **{name: value})
    default = faust_settings.DEFAULT_ONLY[name][0]
    assert getattr(detstream.App("at-default", **{name: default}).conf, name) == default


def test_agent_supervisor_is_the_default_of_agents_that_name_none():
    app = detstream.App("sup", agent_supervisor="mode.OneForAllSupervisor")

    @app.agent()
    async def one(stream):
        async for _ in stream:
            pass

    @app.agent(supervisor_strategy=mode.CrashingSupervisor)
    async def two(stream):
        async for _ in stream:
            pass

    assert one.supervisor_strategy is mode.OneForAllSupervisor
    assert two.supervisor_strategy is mode.CrashingSupervisor
    assert detstream.App("plain").agent()(one.fun).supervisor_strategy is mode.OneForOneSupervisor


def test_settings_detstream_types_but_does_not_act_on_are_logged_too(caplog):
    for name in ("broker_commit_every", "stream_wait_empty"):
        faust_settings._warned.discard(name)
    with caplog.at_level(logging.WARNING, logger="detstream.faust_settings"):
        app = detstream.App("typed-ignored", broker_commit_every=100, stream_wait_empty=False)
        detstream.App("typed-defaults", broker_commit_every=10_000, stream_wait_empty=True)
    assert (app.conf.broker_commit_every, app.conf.stream_wait_empty) == (100, False)
    warnings = sorted(r.getMessage() for r in caplog.records)
    assert len(warnings) == 2
    assert "'broker_commit_every'=100 is Faust's and has no effect" in warnings[0]
    assert "always waits for the events in hand" in warnings[1]
    with pytest.raises(ImproperlyConfigured, match="'broker_commit_every' must be int"):
        detstream.App("typed-bad", broker_commit_every="often")


def test_class_settings_are_readable_and_only_monitor_takes_a_subclass():
    from detstream.monitor import Monitor

    class Counting(Monitor):
        pass

    app = detstream.App("classes", Monitor=Counting)
    assert isinstance(app.monitor, Counting) and app.monitor in app.sensors
    by_path = detstream.App("classes-path", Monitor="detstream.monitor:Monitor")
    assert type(by_path.monitor) is Monitor
    conf = detstream.App("classes-default").conf
    assert conf.Stream == "detstream.stream:Stream" and conf.HttpClient is None
    assert detstream.App("same", Stream=detstream.Stream).conf.Stream is detstream.Stream

    class MyStream(detstream.Stream):
        pass

    with pytest.raises(ImproperlyConfigured,
                       match="'Stream'=.*does not take Faust's class overrides.*subclass in your"):
        detstream.App("override", Stream=MyStream)
    with pytest.raises(ImproperlyConfigured, match="it has no PartitionAssignor"):
        detstream.App("override", PartitionAssignor="myproj:Assignor")
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        detstream.App("override", Monitor="nowhere.at.all:Monitor")
