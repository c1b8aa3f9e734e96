"""Unpickling that builds only allowlisted classes: the ``pickle_restricted`` codec's loader.

Plain ``pickle.loads`` runs whatever the payload names: a ``__reduce__`` of
``os.system`` executes a command in the worker. Kafka does not authenticate
producers, so on a topic anyone can write to that is remote code execution.
:class:`RestrictedUnpickler` (Faust's ``faust.serializers.codecs.RestrictedUnpickler``)
resolves a global only when its module and name are in :attr:`ALLOWED_CLASSES`,
and refuses anything else with :class:`pickle.UnpicklingError`.

Extend the allowlist with your own types (a new dict, as Faust documents)::

    RestrictedUnpickler.ALLOWED_CLASSES = {
        **RestrictedUnpickler.ALLOWED_CLASSES,
        "myapp.models": frozenset({"Withdrawal", "Order"}),
    }

``bytes`` and ``bytearray`` are left out on purpose: called by the payload
with an int they allocate that many bytes, so a few dozen bytes of payload
could claim gigabytes. Their values need no global (pickle has opcodes for
them), so they still round-trip.
"""

from __future__ import annotations

import io
import pickle
from typing import Any, ClassVar

__all__ = ["RestrictedUnpickler", "restricted_loads"]


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` resolving only the globals of :attr:`ALLOWED_CLASSES`."""

    #: module -> the names of it a payload may construct or call. Read at each load, so a
    #: new mapping assigned to the class attribute applies to the next message.
    ALLOWED_CLASSES: ClassVar[dict[str, frozenset[str]]] = {
        "builtins": frozenset({
            "dict", "list", "set", "frozenset", "tuple", "str", "int", "float", "complex",
            "bool", "object",
        }),
        "collections": frozenset({"OrderedDict", "defaultdict", "deque", "Counter"}),
        "datetime": frozenset({"datetime", "date", "time", "timedelta", "timezone"}),
        "decimal": frozenset({"Decimal"}),
        "uuid": frozenset({"UUID"}),
    }

    def find_class(self, module: str, name: str) -> Any:
        """``module.name`` if allowlisted; else :class:`pickle.UnpicklingError` naming it."""
        allowed = self.ALLOWED_CLASSES.get(module)
        if allowed is None or name not in allowed:
            raise pickle.UnpicklingError(
                f"refusing to unpickle {module}.{name}: it is not in "
                "RestrictedUnpickler.ALLOWED_CLASSES. Add it there if your producers send "
                "this type, or use the 'pickle' codec if every producer is trusted"
            )
        return super().find_class(module, name)


def restricted_loads(payload: bytes) -> Any:
    """Unpickle ``payload`` with :class:`RestrictedUnpickler`.

    A refused global and a malformed payload both raise :class:`pickle.UnpicklingError`
    (the stdlib raises EOFError, ValueError, ... for the latter).
    """
    try:
        return RestrictedUnpickler(io.BytesIO(payload)).load()
    except pickle.UnpicklingError:
        raise
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            UnicodeDecodeError, OverflowError) as exc:
        raise pickle.UnpicklingError(f"malformed pickle: {type(exc).__name__}: {exc}") from exc
