"""Parameter types of the ``detstream worker`` options: a bad value is a usage error (exit 2).

A worker misconfigured on its command line should stop before it connects
to anything, with click's message naming the option, rather than start,
join the group, and then die on the first log line or web bind.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Any

import click

__all__ = [
    "HOST", "LOGFILE", "DATADIR", "BLOCKING_TIMEOUT", "LOGLEVEL", "PORT", "WORKDIR",
]

_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class Host(click.ParamType):
    """A host name or an IP address (``0.0.0.0``, ``::``, ``worker-1.example.com``)."""

    name = "host"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value).strip()
        try:
            ipaddress.ip_address(text.strip("[]"))
            return text.strip("[]")
        except ValueError:
            pass
        labels = text.rstrip(".").split(".")
        if not text or len(text) > 253 or not all(_LABEL.match(label) for label in labels):
            self.fail(
                f"{value!r} is not a host name or IP address (e.g. 0.0.0.0, localhost, "
                "worker-1.example.com; no scheme, port or path)", param, ctx,
            )
        return text


class LogFile(click.Path):
    """A file the worker can create or append to: its directory must exist and be writable.

    Checked now because the log is set up before anything else; a bad path
    would otherwise end the worker with a traceback instead of a message.
    """

    def __init__(self) -> None:
        super().__init__(dir_okay=False, writable=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        parent = os.path.dirname(os.path.abspath(os.fsdecode(path)))
        if not os.path.isdir(parent):
            self.fail(f"{os.fsdecode(path)!r}: directory {parent!r} does not exist", param, ctx)
        if not os.access(parent, os.W_OK):
            self.fail(f"{os.fsdecode(path)!r}: directory {parent!r} is not writable", param, ctx)
        return path


class DataDir(click.Path):
    """The app's state directory: may not exist yet (tables create it), but then it must be
    creatable: its nearest existing ancestor is a writable directory."""

    def __init__(self) -> None:
        super().__init__(file_okay=False, dir_okay=True, writable=True)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = super().convert(value, param, ctx)
        ancestor = os.path.abspath(os.fsdecode(path))
        while not os.path.exists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor) or not os.access(ancestor, os.W_OK):
            self.fail(f"{os.fsdecode(path)!r} cannot be created: {ancestor!r} is not a "
                      "writable directory", param, ctx)
        return path


HOST = Host()
LOGFILE = LogFile()
DATADIR = DataDir()
#: seconds the loop may block before its stack is logged (debug mode).
BLOCKING_TIMEOUT = click.FloatRange(min=0, min_open=True)
#: a TCP port (``--web-port``, ``--console-port``).
PORT = click.IntRange(1, 65535)
#: the log levels of ``-l/--loglevel`` (Faust's ``crit`` and ``warn`` too).
LOGLEVEL = click.Choice(["debug", "info", "warning", "warn", "error", "critical", "crit"],
                        case_sensitive=False)
#: ``-W/--workdir``: an existing directory to change to before the app is loaded.
WORKDIR = click.Path(exists=True, file_okay=False, dir_okay=True)
