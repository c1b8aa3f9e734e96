"""``detstream send``: produce records to a topic or an agent (Faust's ``faust send``).

``detstream -A proj send greetings hello``, ``python proj.py send @myagent hello -k k``.

One rule, Faust's: VALUE (and ``--key``) is the value itself, typed as text,
never quoted. It is parsed only where the topic's declared type is not text:

- a Record type (the topic's, or ``--value-type``/``--key-type``): a JSON object
  of its fields, ``'{"name": "ann"}'``;
- ``int``/``float``: a number, ``42``; ``bool``, ``dict``, ``list``: JSON of that type;
- anything else (``str``, ``bytes``, no type, a topic the app does not declare):
  the text as typed, quotes included, so ``send greetings ann`` sends the str
  ``ann`` and ``send greetings '"ann"'`` the five characters ``"ann"``.

The value is then encoded as the target topic's ``send()`` would encode it, so
the topic's agent reads back what was typed: under the app's default JSON
``value_serializer`` a ``str`` topic (or one without a type) gets ``ann`` as
the JSON text ``"ann"``, a topic declared ``value_serializer='raw'`` gets the
bytes ``ann``. ``--key-serializer``/``--value-serializer`` replace the topic's
codec; a topic the app does not declare gets the text's UTF-8 bytes. Text
that is not valid for the declared type is refused before anything is sent,
naming the topic, the value and what to type instead.

Faust's ``faust send`` differs for text: without ``-V`` it sends the text's
bytes as they are, whatever the topic (bytes pass every codec untouched), which
a topic under the JSON default cannot decode; that is why Faust's quickstart
declares ``value_serializer='raw'``. Encoding as the topic does sends the same
bytes to a raw topic and readable ones to a JSON topic.

Resolving the target, the model and the codecs needs no broker
(:func:`plan_send`); :func:`send_records` does the I/O on a client-only app.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import random
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from detstream.errors import CodecError, InvalidArgument, ValidationError
from detstream.produce_hook import Headers, hooked_headers

if TYPE_CHECKING:
    from detstream._types import RecordMetadata
    from detstream.agent import Agent
    from detstream.app import App
    from detstream.models import Record
    from detstream.serializers import CodecArg
    from detstream.topic import Topic


class SendError(Exception):
    """The command line names something that does not exist (exit code 2)."""


@dataclass
class SendPlan:
    """Where to send and the bytes to send, resolved from the command line."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None = None
    #: the app's description of the topic, declared before sending if internal.
    declare: Topic | None = None
    #: what the target was named as, for messages (``@agent`` or ``topic``).
    label: str = ""
    #: hints for the user about how the command line was read (printed to stderr).
    notes: list[str] = field(default_factory=list)


# -- resolving (no I/O) ---------------------------------------------------------------------
def find_agent(app: App, name: str) -> Agent:
    """The agent called ``name``: its full name, or a unique dotted suffix like ``myagent``."""
    if name in app.agents:
        return app.agents[name]
    found = [a for full, a in app.agents.items() if full.endswith(f".{name}")]
    if len(found) == 1:
        return found[0]
    names = sorted(app.agents)
    if found:
        raise SendError(f"agent name {name!r} is ambiguous: it matches "
                        f"{', '.join(sorted(a.name for a in found))}; give the full name")
    known = ", ".join(f"@{n}" for n in names) if names else "(none)"
    raise SendError(f"no agent named {name!r} in app {app.conf.id!r}; its agents: {known}")


def find_model(name: str) -> type[Record]:
    """A Record class by namespace (``proj.Point``), class name (``Point``) or import path."""
    from detstream.models import Record, registry

    if name in registry:
        return registry[name]
    found = {id(c): c for ns, c in registry.items() if not ns.startswith("@")
             and (ns.endswith(f".{name}") or c.__name__ == name)}
    if len(found) == 1:
        return next(iter(found.values()))
    if found:
        matches = sorted(c._options.namespace or c.__name__ for c in found.values())
        raise SendError(f"model name {name!r} is ambiguous: it matches {', '.join(matches)}")
    module_name, sep, attr = name.replace(":", ".").rpartition(".")
    if sep:
        try:
            candidate = getattr(importlib.import_module(module_name), attr, None)
        except ImportError:
            candidate = None
        if isinstance(candidate, type) and issubclass(candidate, Record):
            return candidate
    known = sorted(ns for ns in registry if not ns.startswith("@"))
    raise SendError(f"no model named {name!r}; known models: {', '.join(known) or '(none)'}")


def app_topic(app: App, name: str) -> Topic | None:
    """The app's own description of topic ``name`` (its types), if it has one."""
    from detstream.topic import Topic

    for topic in app._topics:
        if isinstance(topic, Topic) and tuple(topic.topics) == (name,):
            return topic
    return None


def _model_type(typ: Any) -> type[Record] | None:
    from detstream.models import Record

    return typ if isinstance(typ, type) and issubclass(typ, Record) else None


#: declared types whose text is parsed as JSON of that type (``int``/``float`` take a number).
_JSON_TYPES: dict[type, str] = {bool: "true or false", dict: 'a JSON object, e.g. \'{"a": 1}\'',
                                list: "a JSON list, e.g. '[1, 2]'"}


@dataclass
class Side:
    """The key or the value of a send: its text and what it must be for its topic."""

    what: str
    text: str | None
    #: the topic (or ``@agent``) it goes to, for messages.
    label: str
    #: the declared type it must be (a Record class, int, str, ...; None: any).
    typ: Any = None
    #: the codec named on the command line or by a model (None: the topic's own).
    serializer: CodecArg = None

    @property
    def target(self) -> str:
        """``topic 'name'`` or ``agent @name``, for messages."""
        return f"agent {self.label}" if self.label.startswith("@") else f"topic {self.label!r}"

    def bad(self, problem: str, fix: str) -> SendError:
        """An error naming the topic, the text, the declared type and what to type instead."""
        return SendError(f"{self.what} {self.text!r} for {self.target} {problem}: {fix}")


def parse(side: Side) -> Any:
    """The object the text of ``side`` stands for: a Record, a number, JSON, or the text itself."""
    text, typ = side.text, side.typ
    model = _model_type(typ)
    if text is None:
        return None
    if model is not None:
        return _parse_record(side, model)
    if typ in (int, float):
        try:
            return typ(text.strip())
        except ValueError:
            raise side.bad(f"is not {'an int' if typ is int else 'a float'}, the {side.what} type it takes",
                           "type the number without quotes, e.g. 42") from None
    if typ in _JSON_TYPES:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, typ):
            raise side.bad(f"is not a {typ.__name__}, the {side.what} type it takes",
                           f"type {_JSON_TYPES[typ]}")
        return data
    return text


def _parse_record(side: Side, model: type[Record]) -> Record:
    name = model._options.namespace
    example = "'{" + ", ".join(f'"{field}": ...' for field in model._fields) + "}'"
    try:
        data = json.loads(side.text or "")
    except json.JSONDecodeError as exc:
        raise side.bad(f"is not JSON for model {name}, the {side.what} type it takes ({exc})",
                       f"type a JSON object, {example}") from None
    if not isinstance(data, dict):
        raise side.bad(f"is not a JSON object for model {name}, the {side.what} type it takes",
                       f"type {example}")
    try:
        return model.from_data(data, preferred_type=model)
    except (ValidationError, InvalidArgument, TypeError, ValueError) as exc:
        raise side.bad(f"is not a valid {name} ({exc})", f"type {example}") from None


def quoted_text_note(side: Side) -> str | None:
    """A hint when text sent as typed looks like a JSON string: its quotes are sent too."""
    text = side.text
    if text is None or _model_type(side.typ) is not None or side.typ in (int, float, *_JSON_TYPES):
        return None
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return None
    try:
        inner = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(inner, str):
        return None
    return (f"note: {side.what} {text!r} for {side.target} is sent as text, quotes included; "
            f"to send {inner!r}, type it without the quotes")


def encode(side: Side, topic: Topic | None, default: CodecArg, *, key: bool) -> bytes | None:
    """The bytes for ``side``, as ``topic.send()`` would encode them (with the codec given, if any)."""
    from detstream.serializers import Schema

    obj = parse(side)
    if obj is None:
        return None
    if topic is None and not side.serializer and isinstance(obj, str):
        return obj.encode()  # a topic the app does not describe: the text's UTF-8 bytes
    schema = topic.schema if topic is not None else Schema()
    if side.serializer:  # the command line's codec replaces the topic's
        schema = Schema(key_type=side.typ, value_type=side.typ,
                        key_serializer=side.serializer, value_serializer=side.serializer)
    try:
        if key:
            return schema.dumps_key(obj, default_serializer=default)
        return schema.dumps_value(obj, default_serializer=default)
    except (CodecError, InvalidArgument, ValidationError, TypeError, ValueError) as exc:
        raise SendError(f"cannot encode {side.what} {side.text!r} for {side.target}: {exc}") from None


def plan_send(
    app: App,
    entity: str,
    value: str | None,
    *,
    key: str | None = None,
    key_type: str | None = None,
    value_type: str | None = None,
    key_serializer: str | None = None,
    value_serializer: str | None = None,
    partition: int | None = None,
) -> SendPlan:
    """Resolve ENTITY, the model types and codecs, and encode key and value."""
    from detstream import codecs
    from detstream.topic import Topic

    if not entity or entity == "@":
        raise SendError("name a topic, or an agent as @name")
    for codec in (key_serializer, value_serializer):
        if codec:
            try:
                codecs.get_codec(codec)
            except CodecError as exc:
                raise SendError(str(exc)) from None
    if entity.startswith("@"):
        agent = find_agent(app, entity[1:])
        channel = agent.channel
        if not isinstance(channel, Topic):
            raise SendError(f"agent {agent.name!r} reads an in-memory channel, not a topic: "
                            "it can only be sent to from inside its worker")
        try:
            name = channel.get_topic_name()
        except InvalidArgument as exc:
            raise SendError(f"agent {agent.name!r}: {exc}") from None
        described: Topic | None = channel
        label = f"@{agent.name}"
    else:
        name, described, label = entity, app_topic(app, entity), entity
    schema = described.schema if described is not None else None
    key_side = Side("key", key, label, find_model(key_type) if key_type else schema and schema.key_type,
                    key_serializer)
    value_side = Side("value", value, label,
                      find_model(value_type) if value_type else schema and schema.value_type,
                      value_serializer)
    return SendPlan(
        topic=name,
        key=encode(key_side, described, app.conf.key_serializer, key=True),
        value=encode(value_side, described, app.conf.value_serializer, key=False),
        partition=partition,
        declare=described if described is not None and described.internal else None,
        label=label,
        notes=[note for note in map(quoted_text_note, (key_side, value_side)) if note],
    )


# -- sending ----------------------------------------------------------------------------------
async def send_records(
    app: App, plan: SendPlan, *, repeat: int = 1, min_latency: float = 0.0,
    max_latency: float = 0.0, on_sent: Any = None,
) -> list[RecordMetadata]:
    """Send ``plan`` ``repeat`` times from ``app`` as a client; the broker's metadata of each."""
    if app._producer is None:
        await app.start_client()
    if plan.declare is not None:
        await app.declared(plan.declare)
    partitions = await app.admin.partitions_for(plan.topic)
    if partitions is None:
        defined = sorted({n for t in app._topics for n in t.topics})
        agents = ", ".join(f"@{n}" for n in sorted(app.agents)) or "(none)"
        raise SendError(f"topic {plan.topic!r} does not exist on the broker; the app's topics: "
                        f"{', '.join(defined) or '(none)'}; its agents: {agents}")
    if plan.partition is not None and plan.partition >= partitions:
        raise SendError(f"topic {plan.topic!r} has {partitions} partition(s): "
                        f"--partition {plan.partition} is out of range")
    sent: list[RecordMetadata] = []
    for i in range(repeat):
        if i and max_latency > 0:
            await asyncio.sleep(random.uniform(min_latency, max_latency))
        headers: Headers = ()
        if app.on_produce_message.has_receivers():
            headers = hooked_headers(app.on_produce_message, plan.key, plan.value,
                                     plan.partition, None)
        future = app.producer.send_soon(
            plan.topic, key=plan.key, value=plan.value, partition=plan.partition, headers=headers,
        )
        meta = await future
        sent.append(meta)
        if on_sent is not None:
            on_sent(meta)
    return sent


def metadata_json(meta: RecordMetadata) -> str:
    return json.dumps({"topic": meta.topic, "partition": meta.partition, "offset": meta.offset,
                       "timestamp": meta.timestamp})


@click.command()
@click.argument("entity")
@click.argument("value", required=False)
@click.option("-k", "--key", help="Key of the record, typed as VALUE is (text unless the key "
              "has a type).")
@click.option("-K", "--key-type", metavar="MODEL",
              help="Record to parse the key into (a JSON object).")
@click.option("-V", "--value-type", metavar="MODEL",
              help="Record to parse the value into (a JSON object).")
@click.option("--key-serializer", metavar="CODEC", help="Codec for the key (e.g. json, raw).")
@click.option("--value-serializer", metavar="CODEC", help="Codec for the value (e.g. json, raw).")
@click.option("--partition", type=click.IntRange(min=0), help="Partition to send to.")
@click.option("-r", "--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Send the record this many times.")
@click.option("--min-latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Least seconds to wait between repeated sends.")
@click.option("--max-latency", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Most seconds to wait between repeated sends (0: no wait).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=60.0,
              show_default=True, help="Give up (exit 1) if the broker has not taken it by then.")
@click.pass_context
def send(ctx: click.Context, entity: str, value: str | None, key: str | None,
         key_type: str | None, value_type: str | None, key_serializer: str | None,
         value_serializer: str | None, partition: int | None, repeat: int,
         min_latency: float, max_latency: float, timeout: float) -> None:
    """Send VALUE to ENTITY: a topic name, or @agent for an agent's topic.

    \b
    VALUE is the value itself, typed as text, not quoted (as in faust send):
      send greetings ann          a str topic (or one without a type) gets ann
      send greetings '"ann"'      ... gets "ann", quotes included
      send orders '{"id": 1}'     a Record topic (or -V MODEL): a JSON object
      send counts 42              an int/float topic: a number
    bool, dict and list topics take JSON of that type. A VALUE that is not
    valid for the topic's type is refused (exit 2) before anything is sent.
    The value is then encoded as the topic's send() would encode it.

    Prints the broker's metadata of each record as a JSON line.
    """
    from .main import _app_for

    if max_latency and min_latency > max_latency:
        raise click.BadParameter("--min-latency must not exceed --max-latency",
                                 param_hint="'--min-latency'")
    app: Any = _app_for(ctx, None)
    try:
        plan = plan_send(app, entity, value, key=key, key_type=key_type, value_type=value_type,
                         key_serializer=key_serializer, value_serializer=value_serializer,
                         partition=partition)
    except SendError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for note in plan.notes:
        click.echo(note, err=True)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    async def run() -> None:
        try:
            await asyncio.wait_for(
                send_records(app, plan, repeat=repeat, min_latency=min_latency,
                             max_latency=max_latency,
                             on_sent=lambda meta: click.echo(metadata_json(meta))),
                timeout,
            )
        finally:
            await app.stop()

    try:
        asyncio.run(run())
    except SendError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except asyncio.TimeoutError:
        click.echo(f"error: sending to {plan.label} ({app.conf.broker}) did not finish "
                   f"within {timeout:g}s: is the broker reachable?", err=True)
        sys.exit(1)
    except Exception as exc:
        click.echo(f"error: sending to {plan.label} failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
