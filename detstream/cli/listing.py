"""``detstream agents`` and ``detstream tables``: what an app defines (Faust's ``faust agents``).

``python examples/agent.py agents`` lists each agent with the topic it reads
and its help (the docstring), so that you know where to send to. Printing
only: nothing connects to a broker.
"""

from __future__ import annotations

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


def render(title: str, header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    """A plain aligned table; ``title`` and a rule above the columns."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


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
    click.echo(render("Agents", ("name", "topic", "help"), agent_rows(app)))


@click.command()
@click.argument("target", required=False)
@click.pass_context
def tables(ctx: click.Context, target: str | None) -> None:
    """List the tables of TARGET's app: name, changelog topic, help."""
    app = _app(ctx, target)
    click.echo(render("Tables", ("name", "changelog", "help"), table_rows(app)))
