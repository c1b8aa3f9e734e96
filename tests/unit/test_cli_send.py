"""``detstream send`` (cli_send.py): argument parsing, resolving and error paths.

The command's sends run here on the ``sim://`` driver outside a simulation
(a fresh in-process cluster per invocation), which exercises the whole path
but cannot be read back; what an agent receives is checked under
``simulate`` with ``send_records``, and against a real broker in
tests/integration/test_send_and_rpc.py.
"""

import asyncio
import json

import pytest
from click.testing import CliRunner

import detstream
from detstream.cli.main import main
from detstream.cli.send import SendError, find_agent, find_model, plan_send, send_records
from sim.cluster import ClusterConfig
from sim.testing import simulate


class Greeting(detstream.Record):
    name: str
    times: int = 1


class GreetingKey(detstream.Record):
    region: str


def make_app(**settings):
    app = detstream.App("send-cli", broker="sim://", topic_partitions=3, **settings)
    greetings = app.topic("greetings", value_type=Greeting, internal=True)
    app.topic("plain-words", value_type=str, internal=True)
    # a plain-text topic, as Faust's quickstart declares one: what is typed goes out as is
    app.topic("raw-words", value_type=str, value_serializer="raw", internal=True)
    app.topic("external-feed")  # not internal: the app never creates it
    counts = app.topic("counts", key_type=int, value_type=int, internal=True)
    app.topic("flags", value_type=bool, internal=True)
    received = []

    @app.agent(greetings)
    async def greeter(stream):
        async for event in stream.events():
            received.append((event.key, event.value))

    @app.agent(counts)
    async def count(stream):
        async for event in stream.events():
            received.append((event.key, event.value))

    @app.agent(value_type=str)
    async def shout(stream):
        async for word in stream:
            received.append(word.upper())

    @app.agent(app.channel())
    async def local_only(stream):
        async for _ in stream:
            pass

    app.received = received
    return app


def invoke(app, *args):
    return CliRunner().invoke(main, ["send", *args], obj={"app": app}, catch_exceptions=False)


def lines(result):
    return [json.loads(line) for line in result.stdout.splitlines()]


# -- sends (sim:// driver, in-process cluster) ------------------------------------------------
def test_send_to_a_topic_prints_metadata_as_json_per_record():
    result = invoke(make_app(), "greetings", '{"name": "ada"}', "-k", "k1", "-r", "3")
    assert result.exit_code == 0, result.output
    sent = lines(result)
    assert len(sent) == 3
    assert {s["topic"] for s in sent} == {"greetings"}
    assert len({s["partition"] for s in sent}) == 1  # one key, one partition
    assert [s["offset"] for s in sent] == [0, 1, 2]
    assert all(set(s) == {"topic", "partition", "offset", "timestamp"} for s in sent)


def test_send_to_an_agent_by_short_and_full_name_with_partition():
    app = make_app()
    full = find_agent(app, "shout").name
    for name in ("shout", full):
        result = invoke(make_app(), f"@{name}", "hello", "--partition", "2")
        assert result.exit_code == 0, result.output
        (sent,) = lines(result)
        assert sent["topic"] == f"send-cli-{full}" and sent["partition"] == 2


def test_repeat_with_latency_waits_between_sends():
    result = invoke(make_app(), "plain-words", "hi", "-r", "2",
                    "--min-latency", "0.01", "--max-latency", "0.02")
    assert result.exit_code == 0, result.output
    assert len(lines(result)) == 2


# -- what goes on the wire ----------------------------------------------------------------------
def test_record_values_are_parsed_as_json_and_validated():
    app = make_app()
    plan = plan_send(app, "greetings", '{"name": "ada", "times": 2}', key="k")
    assert plan.topic == "greetings" and plan.key == b"k"
    assert json.loads(plan.value) == {"name": "ada", "times": 2,
                                      "__faust": {"ns": Greeting._options.namespace}}
    assert plan.declare is not None  # internal: created before the first send


def test_raw_values_are_sent_as_typed_and_serializers_encode_text():
    app = make_app()
    assert plan_send(app, "raw-words", "hello").value == b"hello"
    assert plan_send(app, "raw-words", '{"not": "parsed"}').value == b'{"not": "parsed"}'
    # a str topic under the app's json default: the text, as JSON text (as its send() writes)
    assert plan_send(app, "plain-words", "hello").value == b'"hello"'
    assert plan_send(app, "@shout", '{"not": "parsed"}').value == json.dumps('{"not": "parsed"}').encode()
    assert plan_send(app, "@shout", "hello", value_serializer="json").value == b'"hello"'
    assert plan_send(app, "plain-words", "hello", value_serializer="raw").value == b"hello"
    assert plan_send(app, "raw-words", "hello", value_serializer="json").value == b'"hello"'
    assert plan_send(app, "@shout", None).value is None
    assert plan_send(app, "@shout", "x", key="k", key_serializer="json").key == b'"k"'


def test_a_value_is_typed_as_text_and_parsed_only_for_a_non_text_type():
    app = make_app()
    assert plan_send(app, "raw-words", "ann").value == b"ann"
    assert plan_send(app, "raw-words", '"ann"').value == b'"ann"'  # quotes are text too
    assert plan_send(app, "plain-words", "ann").value == b'"ann"'  # the str ann, as JSON text
    assert json.loads(plan_send(app, "plain-words", '"ann"').value) == '"ann"'
    assert plan_send(app, "counts", " 42", key="7").value == b"42"
    assert plan_send(app, "counts", "42", key="7").key == b"7"
    assert plan_send(app, "counts", "42", value_serializer="raw").value == b"42"
    assert plan_send(app, "flags", "false").value == b"false"
    assert plan_send(app, "external-feed", "hello").value == b'"hello"'  # untyped: app's json


def test_quoted_text_is_sent_as_typed_with_a_note_saying_so():
    result = invoke(make_app(), "plain-words", '"ann"')
    assert result.exit_code == 0, result.output
    assert "value '\"ann\"' for topic 'plain-words' is sent as text, quotes included" in result.stderr
    assert "to send 'ann', type it without the quotes" in result.stderr
    assert plan_send(make_app(), "plain-words", "ann").notes == []
    assert plan_send(make_app(), "greetings", '{"name": "ada"}').notes == []


def test_help_states_the_rule():
    result = CliRunner().invoke(main, ["send", "--help"])
    assert "VALUE is the value itself, typed as text, not quoted" in result.stdout
    assert "send greetings '\"ann\"'      ... gets \"ann\", quotes included" in result.stdout


def test_key_and_value_types_name_models_by_short_or_full_name():
    app = make_app()
    plan = plan_send(app, "plain-words", '{"name": "bo"}', key='{"region": "eu"}',
                     key_type="GreetingKey", value_type=Greeting._options.namespace)
    assert json.loads(plan.key)["region"] == "eu"
    assert json.loads(plan.value)["name"] == "bo"
    assert find_model("tests.unit.test_cli_send.Greeting") is Greeting


def test_what_an_agent_receives_from_a_send():
    async def main(cluster):
        worker = make_app()
        await worker.start()
        client = make_app()
        try:
            plan = plan_send(client, "greetings", '{"name": "ada", "times": 3}', key="k1")
            sent = await send_records(client, plan, repeat=2)
            plan = plan_send(client, "@shout", "hello")
            sent += await send_records(client, plan)
            plan = plan_send(client, "counts", "42", key="7")
            sent += await send_records(client, plan)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 30
            while len(worker.received) < 4 and loop.time() < deadline:
                await asyncio.sleep(0.1)
            return sent, list(worker.received), find_agent(worker, "shout").channel.get_topic_name()
        finally:
            await client.stop()
            await worker.stop()

    sent, received, shout_topic = simulate(
        main, seed=1, config=ClusterConfig(initial_rebalance_delay=0.1)
    )
    assert [m.topic for m in sent] == ["greetings", "greetings", shout_topic, "counts"]
    assert sent[0].partition == sent[1].partition and sent[1].offset == sent[0].offset + 1
    assert received.count((b"k1", Greeting(name="ada", times=3))) == 2
    assert "HELLO" in received
    assert (7, 42) in received  # the int topic's key and value, as ints


# -- errors: exit 2 naming what is wrong and what exists --------------------------------------
@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["@nope", "x"], ["no agent named 'nope'", "@tests.unit.test_cli_send.make_app.<locals>.shout"]),
        (["nope-topic", "x"], ["topic 'nope-topic' does not exist", "greetings", "plain-words"]),
        (["external-feed", "x"], ["topic 'external-feed' does not exist"]),
        (["greetings", "not json"], ["is not JSON for model", "Greeting"]),
        (["greetings", "[1, 2]"], ["is not a JSON object for model", "type '{\"name\": ..."]),
        (["counts", "4x"], ["value '4x' for topic 'counts' is not an int", "e.g. 42"]),
        (["counts", '"42"'], ["is not an int", "without quotes"]),
        (["counts", "1", "-k", "eu"], ["key 'eu' for topic 'counts' is not an int"]),
        (["flags", "yes"], ["value 'yes' for topic 'flags' is not a bool", "true or false"]),
        (["greetings", '{"times": 2}'], ["missing required field(s): 'name'"]),
        (["greetings", "{}", "-V", "NoSuchModel"], ["no model named 'NoSuchModel'", "Greeting"]),
        (["plain-words", "x", "-K", "NoSuchKey"], ["no model named 'NoSuchKey'"]),
        (["plain-words", "x", "--value-serializer", "toml"], ["unknown codec 'toml'", "json"]),
        (["plain-words", "x", "--partition", "3"], ["has 3 partition(s)", "--partition 3"]),
        (["@local_only", "x"], ["in-memory channel"]),
        (["@", "x"], ["name a topic, or an agent as @name"]),
    ],
)
def test_errors_exit_2_naming_the_problem(args, expected):
    result = invoke(make_app(), *args)
    assert result.exit_code == 2, result.output
    for text in expected:
        assert text in result.stderr, result.stderr
    assert result.stdout == ""


def test_ambiguous_names_list_the_candidates():
    app = detstream.App("ambiguous", broker="sim://")

    async def echo(stream):
        async for _ in stream:
            pass

    app.agent(name="a.echo")(echo)
    app.agent(name="b.echo")(echo)
    with pytest.raises(SendError, match="ambiguous: it matches a.echo, b.echo"):
        find_agent(app, "echo")
    assert find_agent(app, "a.echo").name == "a.echo"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["greetings", "x", "--partition", "-1"], "-1"),
        (["greetings", "x", "-r", "0"], "--repeat"),
        (["greetings", "x", "--min-latency", "2", "--max-latency", "1"], "--min-latency"),
        ([], "Missing argument 'ENTITY'"),
    ],
)
def test_bad_options_are_usage_errors(args, expected):
    result = invoke(make_app(), *args)
    assert result.exit_code == 2
    assert expected in result.stderr


def test_send_without_an_app_says_how_to_name_one():
    result = CliRunner().invoke(main, ["send", "greetings", "x"])
    assert result.exit_code == 2
    assert "detstream -A proj" in result.stderr


def test_send_with_app_option_loads_the_project(tmp_path, monkeypatch):
    (tmp_path / "sendproj.py").write_text(
        "import detstream\n"
        "app = detstream.App('sendproj', broker='sim://')\n"
        "words = app.topic('words', internal=True, partitions=1)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(main, ["-A", "sendproj", "send", "words", "hi"])
    assert result.exit_code == 0, result.output
    assert lines(result)[0]["topic"] == "words"
