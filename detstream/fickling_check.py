"""The ``pickle_fickling`` codec's loader: the Fickling pickle scanner, an optional package.

Fickling (``pip install fickling``) analyses a pickle's opcodes before it runs
and refuses one whose worst finding is above ``max_acceptable_severity``
(Fickling's default: ``fickling.loader.Severity.LIKELY_SAFE``). Everything
Fickling-specific is in this module, as Faust keeps it in
``faust.serializers._fickling``, so another scanner can replace it alone.
"""

from __future__ import annotations

import importlib
import pickle
from typing import Any

from detstream.errors import ImproperlyConfigured

__all__ = ["MISSING_FICKLING", "fickling_loads", "require_fickling"]

#: what to do when Fickling is not installed.
MISSING_FICKLING = (
    "the pickle_fickling codec needs the fickling package, which is not installed: "
    "pip install fickling (or pip install 'detstream[fickling]')"
)


def require_fickling() -> tuple[Any, type[BaseException]]:
    """Fickling's loader module and its refusal exception; ImproperlyConfigured without it."""
    try:
        loader = importlib.import_module("fickling.loader")
        exceptions = importlib.import_module("fickling.exception")
    except ImportError as exc:
        raise ImproperlyConfigured(MISSING_FICKLING) from exc
    return loader, exceptions.UnsafeFileError


def fickling_loads(payload: bytes, *, max_acceptable_severity: Any = None) -> Any:
    """Unpickle ``payload`` once Fickling found it safe enough; else pickle.UnpicklingError."""
    loader, unsafe = require_fickling()
    options = {} if max_acceptable_severity is None else {
        "max_acceptable_severity": max_acceptable_severity}
    try:
        return loader.loads(payload, **options)
    except unsafe as exc:
        raise pickle.UnpicklingError(f"Fickling refused the pickle: {exc}") from exc
