"""``@app.command()``: an ``async def`` as a ``detstream`` CLI subcommand.

Options are click decorators (``detstream.cli.main.option`` / ``argument``, as
``faust.cli.option`` / ``argument``); the docstring is the help text. A
function taking no parameter beyond its options is called with the options
only; otherwise, as in Faust, its first parameter receives the command
(``self.app``, ``self.say()``).

``@app.command(..., daemon=True)`` keeps running once the function
returned (a command that started services, consumers, timers of its own),
until SIGINT or SIGTERM, as Faust's daemon commands; the app is then stopped
if the command started it.

``AppGroup`` is the ``detstream`` click group: for a name it does not know it
asks the app (preselected by ``App.main()`` or named by ``-A``), so both
``python proj.py mycmd --flag x`` and ``detstream -A proj mycmd`` work.
"""

from __future__ import annotations

import asyncio
import inspect
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from .errors import InvalidArgument, TargetError

option = click.option
argument = click.argument


class AppCommand:
    """What a command function with a ``self`` parameter receives."""

    def __init__(self, app: Any, ctx: click.Context) -> None:
        self.app = app
        self.ctx = ctx

    @property
    def quiet(self) -> bool:
        """The group's ``-q/--quiet``: ``say`` prints nothing."""
        return bool((self.ctx.find_root().obj or {}).get("quiet"))

    def say(self, message: Any = "", *, err: bool = False) -> None:
        """Print ``message`` (to stderr with ``err=True``), unless ``-q/--quiet``."""
        if not self.quiet:
            click.echo(message, err=err)


def make_command(app: Any, fun: Callable[..., Any], options: tuple[Any, ...],
                 name: str | None = None, daemon: bool = False,
                 **kwargs: Any) -> click.Command:
    """A click command running ``fun`` on a fresh event loop (until a stop signal with ``daemon``)."""
    if not inspect.iscoroutinefunction(fun):
        raise InvalidArgument(f"@app.command needs an async def function, got {fun!r}")
    for opt in options:
        if not callable(opt):
            raise InvalidArgument(
                f"@app.command options must be detstream.cli.main.option(...)/argument(...), got {opt!r}"
            )
    command_name = name or fun.__name__.replace("_", "-")

    pass_self: list[bool] = [False]

    def callback(**params: Any) -> Any:
        ctx = click.get_current_context()
        cmd = AppCommand(app, ctx) if pass_self[0] else None
        return asyncio.run(_run(app, fun, cmd, params, daemon=daemon))

    callback.__doc__ = fun.__doc__
    for decorate in reversed(options):
        callback = decorate(callback)
    kwargs.setdefault("help", inspect.getdoc(fun))
    cmd = click.command(command_name, **kwargs)(callback)
    n_click = len(cmd.params)
    n_fun = len([p for p in inspect.signature(fun).parameters.values()
                 if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)])
    pass_self[0] = n_fun > n_click
    return cmd


async def _run(app: Any, fun: Callable[..., Any], cmd: AppCommand | None,
               params: dict[str, Any], *, daemon: bool = False) -> Any:
    app.client_on_demand = True  # a send starts the app as a client (Faust's commands do)
    try:
        if not daemon:
            return await (fun(cmd, **params) if cmd is not None else fun(**params))
        with stop_signals() as stopped:  # caught from the start: a signal must not kill us
            result = await (fun(cmd, **params) if cmd is not None else fun(**params))
            await stopped.wait()
        return result
    finally:
        # a command may start the app (a send, ``await app.start_client()``): stop it
        app.client_on_demand = False
        if getattr(app, "_producer", None) is not None:
            await app.stop()


@contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set at SIGINT or SIGTERM while inside (a daemon command's end).

    Where signals cannot be handled (not the main thread), Ctrl-C still
    cancels the command, as ``asyncio.run`` does.
    """
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stopped.set)
        except (NotImplementedError, RuntimeError, ValueError):  # no signals in this thread
            continue
        handled.append(signum)
    try:
        yield stopped
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


class AppGroup(click.Group):
    """The CLI group; unknown command names are looked up in the app's commands."""

    def _app(self, ctx: click.Context) -> Any:
        obj = ctx.obj or {}
        if obj.get("app") is not None:
            return obj["app"]
        target = ctx.params.get("app_target") or obj.get("app_target")
        if not target:
            return None
        from .loader import load

        try:
            app = load(target)[1]
        except TargetError as exc:
            raise click.UsageError(str(exc), ctx) from None
        if isinstance(ctx.obj, dict):
            ctx.obj["app"] = app
        return app

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        app = self._app(ctx)
        return getattr(app, "commands", {}).get(cmd_name) if app is not None else None

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = list(super().list_commands(ctx))
        try:
            app = self._app(ctx)
        except click.UsageError:
            app = None
        if app is not None:
            names += [n for n in sorted(getattr(app, "commands", {})) if n not in names]
        return names
