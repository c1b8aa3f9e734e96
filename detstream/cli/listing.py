"""``detstream agents``, ``tables``, ``models`` and ``model``: what an app defines (Faust's
``faust agents`` and the others).

``python examples/agent.py agents`` lists each agent with the topic it reads
and its help (the docstring), so that you know where to send to. Printing
only: nothing connects to a broker. ``detstream --json agents`` prints the
same as a JSON list of objects, one per row, keyed by the column names.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click


def agent_rows(app: Any) -> list[tuple[str, str, str]]:
    """(``@shortname``, topic, help) of each agent, sorted by name."""
    rows = []
    for name, agent in sorted(app.agents.items()):
        channel = agent.channel
        topic = getattr(channel, "label", None) if hasattr(channel, "topics") else "<in-memory channel>"
        rows.append((f"@{name.rsplit('.', 1)[-1]}", str(topic), _first_line(agent.help)))
    return rows


def table_rows(app: Any) -> list[tuple[str, str, str]]:
    """(name, changelog topic, help) of each table, sorted by name."""
    return [(name, table.changelog_name, _first_line(table.help))
            for name, table in sorted(app.tables.tables.items())]


def model_rows(registry: Any, *, builtins: bool = False) -> list[tuple[str, str]]:
    """(namespace, help) of each registered Record, sorted; detstream's own only with ``builtins``."""
    rows = []
    for namespace, cls in sorted(registry.items()):
        if not builtins and cls.__module__.split(".")[0] == "detstream":
            continue
        rows.append((namespace, _first_line(cls.__doc__)))
    return rows


def field_rows(cls: Any) -> list[tuple[str, str, str]]:
    """(field, type, default) of a Record class, in declaration order."""
    rows = []
    for name, field in cls._fields.items():
        default = "*" if field.required else repr(field.default)
        rows.append((name, _type_name(field.type), default))
    return rows


def _type_name(typ: Any) -> str:
    return typ.__name__ if isinstance(typ, type) else str(typ).replace("typing.", "")


def render(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A plain aligned table; ``title`` and a rule above the columns."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def emit(ctx: click.Context, title: str, header: tuple[str, ...],
         rows: Sequence[tuple[str, ...]]) -> None:
    """Print the rows as a table, or as JSON with the group's ``--json``."""
    if (ctx.find_root().obj or {}).get("json"):
        click.echo(json.dumps([dict(zip(header, row, strict=True)) for row in rows]))
    else:
        click.echo(render(title, header, rows))


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _app(ctx: click.Context, target: str | None) -> Any:
    from .main import _app_for

    return _app_for(ctx, target)


@click.command()
@click.argument("target", required=False)
@click.pass_context
def agents(ctx: click.Context, target: str | None) -> None:
    """List the agents of TARGET's app: name, topic, help."""
    app = _app(ctx, target)
    emit(ctx, "Agents", ("name", "topic", "help"), agent_rows(app))


@click.command()
@click.argument("target", required=False)
@click.pass_context
def tables(ctx: click.Context, target: str | None) -> None:
    """List the tables of TARGET's app: name, changelog topic, help."""
    app = _app(ctx, target)
    emit(ctx, "Tables", ("name", "changelog", "help"), table_rows(app))


@click.command()
@click.argument("target", required=False)
@click.option("--builtins/--no-builtins", default=False, help="Also list detstream's own models.")
@click.pass_context
def models(ctx: click.Context, target: str | None, builtins: bool) -> None:
    """List the Records TARGET's project registers: namespace, help."""
    from detstream.models import registry

    _app(ctx, target)  # importing the project registers its models
    emit(ctx, "Models", ("name", "help"), model_rows(registry, builtins=builtins))


@click.command()
@click.argument("name")
@click.argument("target", required=False)
@click.pass_context
def model(ctx: click.Context, name: str, target: str | None) -> None:
    """Show the fields of the Record NAME (its namespace, or its class name if unique)."""
    from detstream.models import registry

    _app(ctx, target)
    found = [cls for ns, cls in registry.items() if ns == name] or [
        cls for ns, cls in registry.items() if ns.rsplit(".", 1)[-1] == name]
    if len(found) != 1:
        known = ", ".join(ns for ns, _ in model_rows(registry)) or "none"
        what = "is ambiguous" if found else "is not a registered model"
        click.echo(f"error: {name!r} {what}; models: {known}", err=True)
        raise SystemExit(2)
    cls = found[0]
    emit(ctx, f"{cls._options.namespace}", ("field", "type", "default"), field_rows(cls))
