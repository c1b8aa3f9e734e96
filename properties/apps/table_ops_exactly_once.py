"""Table ops under exactly_once with the memory store (see table_ops.py)."""

from properties.apps.table_ops import build

app = build("exactly_once", "memory://")
