"""``--faust-compat`` and ``--faust-compat-force``: run a Faust project unmodified.

The same two flags on ``detstream sim``, ``detstream worker`` and the
``detstream`` group (for ``detstream --faust-compat -A proj COMMAND``). Both
install the Faust alias (``detstream.faust_compat``) before the project is
imported; the first refuses when a real faust is installed, the second
hides it. The refusal is a usage error (exit 2), before anything runs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = ["faust_compat_options", "eager_faust_compat_options", "enable"]

F = TypeVar("F", bound=Callable[..., Any])

#: the values the flags store in the ``faust_compat`` parameter.
ON, FORCE = "on", "force"


def faust_compat_options(command: F) -> F:
    """Add ``--faust-compat`` / ``--faust-compat-force`` (parameter ``faust_compat``)."""
    force = click.option(
        "--faust-compat-force", "faust_compat", flag_value=FORCE,
        help="As --faust-compat, and hide a real faust that is installed (with a warning).",
    )
    on = click.option(
        "--faust-compat", "faust_compat", flag_value=ON,
        help="`import faust` in the project resolves to detstream (refused when a real faust "
             "is installed). See docs/faust-differences.md.",
    )
    return on(force(command))


def eager_faust_compat_options(group: F) -> F:
    """The group's flags: acted on while the command line is parsed.

    Click resolves a group's subcommand (for ``-A proj``, the app's own
    commands, which imports the project) before it calls the group, so the
    alias must be in place by then.
    """

    def act(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value:
            enable(param.flag_value if isinstance(param, click.Option) else None)

    force = click.option("--faust-compat-force", flag_value=FORCE, is_eager=True,
                         expose_value=False, callback=act,
                         help="As --faust-compat, and hide a real faust that is installed.")
    on = click.option("--faust-compat", flag_value=ON, is_eager=True, expose_value=False,
                      callback=act,
                      help="`import faust` in the project resolves to detstream "
                           "(see docs/faust-differences.md).")
    return on(force(group))


def enable(mode: str | None) -> None:
    """Install the alias for this process if ``mode`` asks; a refusal exits with code 2."""
    if mode is None:
        return
    from detstream.faust_compat import FaustInstalledError, install

    try:
        install(force=mode == FORCE)
    except FaustInstalledError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
