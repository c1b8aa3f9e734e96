"""``detstream completion``: the shell's completion script (Faust's ``faust completion``).

Faust printed ``click_completion``'s script for the shell ``$SHELL`` names; click 8
completes by itself, so this prints click's own script: what
``_DETSTREAM_COMPLETE=bash_source detstream`` prints, without having to know that
spelling. Load it once per shell::

    eval "$(detstream completion)"           # bash, zsh: in ~/.bashrc or ~/.zshrc
    detstream completion | source            # fish: in ~/.config/fish/config.fish

The script calls the command back with ``_DETSTREAM_COMPLETE=<shell>_complete`` set,
which click answers before running anything (commands, options, an ``@app.command``
of a project run as ``python proj.py``, too).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import PurePath

import click
from click import shell_completion

__all__ = ["completion", "completion_var", "supported_shells"]

#: ``$SHELL`` names that are another name of a shell click completes.
_SHELL_ALIASES = {"pwsh": "powershell"}


def supported_shells() -> list[str]:
    """The shells click has a completion script for (bash, fish, zsh, ...)."""
    known = getattr(shell_completion, "_available_shells", None) or {}
    return sorted(known) or ["bash", "fish", "zsh"]


def completion_var(prog_name: str) -> str:
    """The variable the script sets when it asks for completions: ``_DETSTREAM_COMPLETE``.

    Click's own rule (upper case, ``-`` as ``_``), and any other character that
    cannot be in a shell variable (the dot of ``proj.py``) as ``_`` too.
    """
    return "_" + re.sub(r"\W", "_", prog_name).upper() + "_COMPLETE"


def _shell_from_env() -> str:
    path = os.environ.get("SHELL", "")
    if not path:
        raise click.UsageError(
            "cannot tell your shell: $SHELL is not set; name it with --shell "
            f"({', '.join(supported_shells())})"
        )
    return PurePath(path).stem


def _prog_name(ctx: click.Context) -> str:
    """The command the shell completes: ``detstream``, or a project's ``proj.py``."""
    name = ctx.find_root().info_name or "detstream"
    return "detstream" if " " in name else name  # ``python -m detstream``: the console script


@click.command()
@click.option("--shell", metavar="SHELL",
              help="The shell to write the script for (default: the name of $SHELL).")
@click.pass_context
def completion(ctx: click.Context, shell: str | None) -> None:
    """Print the shell completion script: eval "$(detstream completion)"."""
    name = shell or _shell_from_env()
    name = _SHELL_ALIASES.get(name, name)
    complete_class = shell_completion.get_completion_class(name)
    if complete_class is None:
        source = "--shell" if shell else f"$SHELL={os.environ.get('SHELL')}"
        raise click.UsageError(
            f"no completion for shell {name!r} (from {source}); "
            f"supported: {', '.join(supported_shells())}"
        )
    root = ctx.find_root().command
    prog_name = _prog_name(ctx)
    script = complete_class(root, {}, prog_name, completion_var(prog_name)).source()
    sys.stdout.write(script if script.endswith("\n") else script + "\n")
