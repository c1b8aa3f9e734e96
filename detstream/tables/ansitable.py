"""A table's items as a box-drawn text table: Faust's ``table.as_ansitable()``, for printing.

Faust's examples print their tables this way (``word_count.py``,
``tabletest.py``); plain box-drawing characters, no terminal codes, so the
text reads the same in a log file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["ansitable"]


def ansitable(
    items: list[tuple[Any, Any]], title: str, *, key: str = "Key", value: str = "Value",
    sort: bool = False, sortkey: Callable[[tuple[Any, Any]], Any] | None = None,
) -> str:
    """``items`` as two columns headed ``key`` and ``value``; sorted by key (or ``sortkey``) if asked."""
    if sort:
        items = sorted(items, key=sortkey or (lambda item: repr(item[0])))
    rows = [(repr(k), repr(v)) for k, v in items]
    return _render(title, (key, value), rows)


def _render(title: str, header: tuple[str, str], rows: list[tuple[str, str]]) -> str:
    """A box-drawn two-column table with ``title`` in its top border."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(2)]
    inner = widths[0] + widths[1] + 5
    top = "┌" + title[:inner] + "─" * (inner - len(title[:inner])) + "┐"

    def line(row: tuple[str, str]) -> str:
        return f"│ {row[0].ljust(widths[0])} │ {row[1].ljust(widths[1])} │"

    rule = "├" + "─" * (widths[0] + 2) + "┼" + "─" * (widths[1] + 2) + "┤"
    bottom = "└" + "─" * (widths[0] + 2) + "┴" + "─" * (widths[1] + 2) + "┘"
    return "\n".join([top, line(header), rule, *(line(row) for row in rows), bottom])
