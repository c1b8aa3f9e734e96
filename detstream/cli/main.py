"""The ``detstream`` command line. Parsing and printing only; work happens elsewhere."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from detstream.commands import AppGroup, argument, option
from detstream.errors import TargetError

from .faust_flags import eager_faust_compat_options, enable, faust_compat_options
from .params import BLOCKING_TIMEOUT, DATADIR, HOST, LOGFILE, LOGLEVEL, PORT, WORKDIR

__all__ = ["main", "entry", "option", "argument"]


def entry() -> None:
    """Console-script entry: ``detstream sim`` runs with a fixed string-hash seed.

    Python randomises ``hash(str)`` per process, which reorders sets of strings
    in user code; a sim run must not depend on that, so it re-executes itself
    with ``PYTHONHASHSEED=0`` when the variable is unset.
    """
    if sys.argv[1:2] == ["sim"] and "PYTHONHASHSEED" not in os.environ:
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        os.execve(sys.executable, [sys.executable, "-m", "detstream", *sys.argv[1:]], env)
    main()


def _change_workdir(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``-W DIR``: change to DIR while the command line is parsed, before ``-A`` loads the app."""
    if value:
        os.chdir(value)


def _check_loop(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if value != "aio":
        raise click.BadParameter(
            f"{value!r}: detstream runs on asyncio's own event loop (aio); eventlet and uvloop "
            "are not supported", ctx, param,
        )
    return value


@click.group(cls=AppGroup)
@click.option("-A", "--app", "app_target", metavar="TARGET", is_eager=True,  # before --help
              help="The app (file, module or module:attr) for commands that take one.")
@click.option("-W", "--workdir", type=WORKDIR, is_eager=True, expose_value=False,
              callback=_change_workdir,
              help="Change to this directory first (before the app is loaded).")
@click.option("-q", "--quiet/--no-quiet", default=None,
              help="No banner or status lines on stdout (worker, the app's commands).")
@click.option("--json", "json_output", is_flag=True, default=False,
              help="agents, tables, models and model print JSON.")
@click.option("-L", "--loop", type=click.Choice(["aio", "eventlet", "uvloop"]), default="aio",
              callback=_check_loop, expose_value=False,
              help="Event loop: aio (asyncio's; the others are not supported).")
@click.option("--debug/--no-debug", default=None,
              help="Debug mode (debug setting): the blocking detector, error details in web views.")
@click.option("-D", "--datadir", type=DATADIR, help="Directory of the app's state (tables).")
@click.option("-l", "--loglevel", type=LOGLEVEL, help="The worker's log level (default warning).")
@click.option("-f", "--logfile", type=LOGFILE, help="The worker logs here, not to stderr.")
@click.option("--blocking-timeout", type=BLOCKING_TIMEOUT, metavar="SECONDS",
              help="When --debug: log the stack when the loop blocks longer (default 10).")
@click.option("--console-port", type=PORT,
              help="When --debug: aiomonitor's console port (default 50101).")
@eager_faust_compat_options
@click.version_option(package_name="detstream")
@click.pass_context
def main(ctx: click.Context, app_target: str | None, quiet: bool | None, json_output: bool,
         debug: bool | None, datadir: str | None, loglevel: str | None, logfile: str | None,
         blocking_timeout: float | None, console_port: int | None) -> None:
    """detstream: the Faust App API on a deterministic simulator and on Kafka."""
    ctx.ensure_object(dict)
    if app_target:
        ctx.obj["app_target"] = app_target
    ctx.obj["json"] = json_output
    ctx.obj["quiet"] = bool(quiet)
    # Faust's global form (``faust --datadir=x -A proj -l info worker``): the worker's own
    # options win.
    ctx.obj["worker_defaults"] = {
        "debug": debug, "datadir": datadir, "blocking_timeout": blocking_timeout,
        "loglevel": loglevel, "logfile": logfile, "quiet": quiet, "console_port": console_port,
    }


from .sim import sim  # noqa: E402 - registered after the group exists

main.add_command(sim)
from .send import send  # noqa: E402

main.add_command(send)
from .listing import agents, model, models, tables  # noqa: E402

main.add_command(agents)
main.add_command(tables)
main.add_command(models)
main.add_command(model)
from .local_state import clean_versions, reset  # noqa: E402

main.add_command(reset)
main.add_command(clean_versions)
from .completion import completion, completion_var  # noqa: E402

main.add_command(completion)


def run_for_app(app: object) -> None:
    """``App.main()``: the CLI with ``app`` preselected and ``sys.argv`` as arguments.

    Shell completion asks with ``_PROJ_PY_COMPLETE`` for ``proj.py`` (click's own
    name for it would have a dot, which no shell variable can).
    """
    prog_name = _prog_name()
    main(args=sys.argv[1:], obj={"app": app}, prog_name=prog_name,
         complete_var=completion_var(prog_name))


def _prog_name() -> str:
    """``proj.py`` for a script; ``python -m proj`` for a package's ``__main__``."""
    name = os.path.basename(sys.argv[0])
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if name == "__main__.py" and spec is not None and spec.parent:
        return f"python -m {spec.parent}"
    return name


def _app_for(ctx: click.Context, target: str | None) -> object:
    """The app named by TARGET, else by ``-A``, else the one ``App.main()`` preselected."""
    from detstream.loader import load

    obj = ctx.obj or {}
    if target is None and obj.get("app") is not None:
        return obj["app"]
    target = target or obj.get("app_target")
    if not target:
        click.echo("error: name the app: `detstream -A proj worker` or `detstream worker proj`",
                   err=True)
        sys.exit(2)
    try:
        return load(target)[1]
    except TargetError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def worker_options(command: Any) -> Any:
    """The options of ``worker`` (and of ``livecheck``, which runs the same way)."""
    decorators: list[Callable[[Any], Any]] = [
        click.argument("target", required=False),
        click.option("-l", "--loglevel", type=LOGLEVEL, help="Log level (default: warning)."),
        click.option("-f", "--logfile", type=LOGFILE, help="Log here, not to stderr."),
        click.option("-p", "--web-port", type=PORT,
                     help="Port of the web server (default: the web_port setting, 6066)."),
        click.option("--with-web/--without-web", "web_enabled", default=None,
                     help="Serve the app's pages (default: the web_enabled setting, on)."),
        click.option("-b", "--web-bind", metavar="ADDRESS", type=HOST,
                     help="Address the web server listens on (default: web_bind, 0.0.0.0)."),
        click.option("-h", "--web-host", metavar="HOST", type=HOST,
                     help="Host name of this worker's web URL (default: web_host, localhost)."),
        click.option("-D", "--datadir", type=DATADIR,
                     help="Directory of the app's state; RocksDB tables go under it "
                          "(default: the datadir setting, {app id}-data)."),
        click.option("--debug/--no-debug", default=None,
                     help="Debug mode: the blocking detector (default: the debug setting, off)."),
        click.option("--blocking-timeout", type=BLOCKING_TIMEOUT, metavar="SECONDS",
                     help="When --debug: log the loop's stack when it blocks longer than this "
                          "(default: blocking_timeout, 10)."),
        click.option("--console-port", type=PORT,
                     help="When --debug: port of aiomonitor's console, when it is installed "
                          "(default 50101)."),
        click.option("-q", "--quiet", is_flag=True, default=None,
                     help="No banner or status lines on stdout."),
        faust_compat_options,
        click.pass_context,
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


@main.command()
@worker_options
def worker(ctx: click.Context, target: str | None, faust_compat: str | None,
           **options: Any) -> None:
    """Run TARGET's app as a worker on its broker, until TERM/INT."""
    enable(faust_compat)
    _run_worker(ctx, _app_for(ctx, target), **options)


@main.command()
@worker_options
def livecheck(ctx: click.Context, target: str | None, faust_compat: str | None,
              **options: Any) -> None:
    """Run the LiveCheck app of TARGET's app (app.LiveCheck()) as a worker, until TERM/INT.

    It runs the app's LiveCheck cases: the tests the app triggers, and the
    cases' fake requests (see detstream.livecheck).
    """
    enable(faust_compat)
    app: Any = _app_for(ctx, target)
    livecheck_app = getattr(app, "livecheck", None)
    if livecheck_app is None:
        click.echo(f"error: app {app.conf.id!r} has no LiveCheck app: make one with "
                   "`livecheck = app.LiveCheck()` in its module", err=True)
        sys.exit(2)
    if not livecheck_app.conf.origin and app.conf.origin:  # the loader may have set the app's
        livecheck_app.conf.origin = app.conf.origin
    _run_worker(ctx, livecheck_app, **options)


def _run_worker(ctx: click.Context, app: Any, *, loglevel: str | None, logfile: str | None,
                web_port: int | None, web_enabled: bool | None, web_bind: str | None,
                web_host: str | None, datadir: str | None, debug: bool | None,
                blocking_timeout: float | None, console_port: int | None,
                quiet: bool | None) -> None:
    from detstream.debugging import CONSOLE_PORT
    from detstream.worker import Worker

    defaults: dict[str, Any] = (ctx.obj or {}).get("worker_defaults", {})

    def given_or_default(name: str, value: Any, fallback: Any = None) -> Any:
        if value is not None:
            return value
        default = defaults.get(name)
        return default if default is not None else fallback

    level = given_or_default("loglevel", loglevel, "warning")
    Worker(app, loglevel="critical" if level.lower() == "crit" else level,
           logfile=given_or_default("logfile", logfile), web_port=web_port,
           web_enabled=web_enabled, web_bind=web_bind, web_host=web_host,
           quiet=bool(given_or_default("quiet", quiet)),
           datadir=given_or_default("datadir", datadir),
           debug=given_or_default("debug", debug),
           blocking_timeout=given_or_default("blocking_timeout", blocking_timeout),
           console_port=given_or_default("console_port", console_port, CONSOLE_PORT),
           ).execute_from_commandline()
