"""Prometheus' text exposition format, version 0.0.4: metric families to text.

The format is small enough to write by hand, which spares every worker a
``prometheus_client`` dependency and its process-global registry (two Apps
in one process, or a test run after another, would share it). Each family
is a ``# HELP`` line, a ``# TYPE`` line and its samples, one per line:
``name{label="value",...} number``. Label values escape backslash, double
quote and newline; help texts escape backslash and newline.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["CONTENT_TYPE", "MetricFamily", "escape_label", "format_value", "render"]

#: what a scraper expects for this format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")

#: one sample: the suffix added to the family's name (``_bucket``, ``_sum``, ...), labels, value.
Sample = tuple[str, Mapping[str, str], float]


@dataclass
class MetricFamily:
    """One metric: its name, type, help, and samples (``add`` appends one)."""

    name: str
    type: str
    help: str
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"bad metric name {self.name!r}")
        if self.type not in _TYPES:
            raise ValueError(f"bad metric type {self.type!r}")

    def add(self, value: float, suffix: str = "", /, **labels: object) -> MetricFamily:
        for label in labels:
            if not _LABEL.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"bad label name {label!r} on {self.name}")
        self.samples.append((suffix, {k: str(v) for k, v in labels.items()}, value))
        return self


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: integers without a point, ``+Inf``, ``NaN``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def render(families: Iterable[MetricFamily]) -> str:
    """The exposition text of ``families``, in the order given, samples in the order added."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for suffix, labels, value in family.samples:
            text = ",".join(f'{k}="{escape_label(v)}"' for k, v in labels.items())
            braces = f"{{{text}}}" if text else ""
            lines.append(f"{family.name}{suffix}{braces} {format_value(value)}")
    return "\n".join(lines) + "\n" if lines else ""
