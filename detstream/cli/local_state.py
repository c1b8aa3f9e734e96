"""``detstream reset`` and ``detstream clean-versions``: a worker's files on this machine.

A worker keeps its tables under ``{datadir}/v{version}/tables`` (RocksDB
stores, recovery offsets). Faust's ``reset`` deletes that state, so the next
start rebuilds the tables from their changelogs; ``clean-versions`` deletes
the directories of the app's other versions (bumping ``version`` moves an
app to new topics and a new directory, and leaves the old one behind).
Neither touches Kafka: the changelogs stay, and with them the tables.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import click


def version_dirs(app: Any, datadir_given: str | None = None) -> tuple[Path, list[Path]]:
    """The app's current version directory and its other ``v{N}`` directories in the datadir
    (``datadir_given``: the command line's ``-D``, else the app's ``datadir`` setting)."""
    datadir = Path(datadir_given or app.conf.datadir)
    current = datadir / f"v{app.conf.version}"
    others = sorted(
        path for path in datadir.glob("v*")
        if path.is_dir() and path.name[1:].isdigit() and path != current
    ) if datadir.is_dir() else []
    return current, others


def _app(ctx: click.Context, target: str | None) -> Any:
    from .main import _app_for

    return _app_for(ctx, target)


def _datadir(ctx: click.Context) -> str | None:
    """``detstream -D DIR reset``: the group's ``--datadir``, as for ``worker``."""
    return ((ctx.obj or {}).get("worker_defaults") or {}).get("datadir")


def _remove(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except OSError as exc:
        click.echo(f"error: cannot delete {path}: {exc.strerror or exc}; is a worker still "
                   "running on it? Stop it first.", err=True)
        raise SystemExit(1) from exc


@click.command()
@click.argument("target", required=False)
@click.pass_context
def reset(ctx: click.Context, target: str | None) -> None:
    """Delete TARGET's local table state (this version's directory in the datadir).

    The next worker start recovers every table from its changelog topic.
    Stop the workers using this datadir first.
    """
    app = _app(ctx, target)
    current, _ = version_dirs(app, _datadir(ctx))
    # a tabledir of its own (absolute) is outside the version's directory: deleted too
    tables = current / Path(app.conf.tabledir)
    doomed = [path for path in (current, tables)
              if path.exists() and (path == current or current not in path.parents)]
    if not doomed:
        click.echo(f"nothing to reset: {current} does not exist")
        return
    for path in doomed:
        _remove(path)
        click.echo(f"deleted {path}: tables will be recovered from their changelogs at the "
                   "next start")


@click.command("clean-versions")
@click.argument("target", required=False)
@click.pass_context
def clean_versions(ctx: click.Context, target: str | None) -> None:
    """Delete the datadir's directories of TARGET's other versions (v1, v2, ... but the current)."""
    app = _app(ctx, target)
    current, others = version_dirs(app, _datadir(ctx))
    if not others:
        click.echo(f"no other version in {current.parent} (current: {current.name})")
        return
    for path in others:
        _remove(path)
        click.echo(f"deleted {path}")
