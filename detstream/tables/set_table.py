"""SetTable and SetGlobalTable: tables whose values are sets.

``table[k]`` is a :class:`ChangeloggedSet`, a live view of the set stored
under ``k``: ``add``, ``discard``, ``update``, ``difference_update``,
``intersection_update``, ``symmetric_difference_update``, ``clear`` and the
in-place operators write the key, like ``table[k] = new_set`` does. A set
that becomes empty deletes the key (reading a missing key gives an empty set).
The binary operators (``|``, ``&``, ``-``, ``^``) write nothing and return a
frozenset.

The changelog carries the *whole* set after each change, not the operation
(Faust logs ``add``/``discard`` operations on an uncompacted topic). A full
value is what makes recovery exact here: the store's recovery applies
"latest record per key wins" and the rocksdb store resumes from its
persisted offset, both of which are right only for records that are complete
values. Replaying operations twice (a crash between applying and persisting
an offset, at-least-once redelivery) or in a different order would not be
exact, and an operation log can never be compacted. The price is writing
``len(set)`` members per change, so keep sets small (or use a Table of keys).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, MutableSet
from typing import Any

from detstream.errors import InvalidArgument
from detstream.serializers import Schema

from .codecs import SetValueCodec
from .global_table import GlobalTable
from .table import Table

__all__ = ["ChangeloggedSet", "SetGlobalTable", "SetTable"]


class ChangeloggedSet(MutableSet[Any]):
    """The set of one key of a SetTable; every change is written to the table."""

    def __init__(self, table: SetTable | SetGlobalTable, key: Any) -> None:
        self.table = table
        self.key = key

    def __repr__(self) -> str:
        return f"<ChangeloggedSet: {self.table.name}[{self.key!r}] = {set(self._members())!r}>"

    def _members(self) -> frozenset[Any]:
        return self.table.members(self.key)

    def _replace(self, members: Iterable[Any]) -> None:
        self.table[self.key] = frozenset(members)

    # -- reads ------------------------------------------------------------------------
    def __contains__(self, member: object) -> bool:
        return member in self._members()

    def __iter__(self) -> Iterator[Any]:
        return iter(self._members())

    def __len__(self) -> int:
        return len(self._members())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ChangeloggedSet):
            return self._members() == other._members()
        if isinstance(other, (set, frozenset)):
            return self._members() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like set

    # -- writes (one changelog record each) ----------------------------------------------
    def add(self, member: Any) -> None:
        members = self._members()
        if member not in members:
            self._replace(members | {member})

    def discard(self, member: Any) -> None:
        members = self._members()
        if member in members:
            self._replace(members - {member})

    def update(self, *others: Iterable[Any]) -> None:
        self._replace(self._members().union(*others))

    def difference_update(self, *others: Iterable[Any]) -> None:
        self._replace(self._members().difference(*others))

    def intersection_update(self, *others: Iterable[Any]) -> None:
        self._replace(self._members().intersection(*others))

    def symmetric_difference_update(self, other: Iterable[Any]) -> None:
        self._replace(self._members().symmetric_difference(other))

    def clear(self) -> None:
        if self._members():
            self._replace(())

    # In-place operators take any iterable (like ``update``) and write the key; they are
    # positional-only so that mypy sees them match the binary operators below.
    def __ior__(self, other: Iterable[Any], /) -> ChangeloggedSet:
        self.update(other)
        return self

    def __iand__(self, other: Iterable[Any], /) -> ChangeloggedSet:
        self.intersection_update(other)
        return self

    def __isub__(self, other: Iterable[Any], /) -> ChangeloggedSet:
        self.difference_update(other)
        return self

    def __ixor__(self, other: Iterable[Any], /) -> ChangeloggedSet:
        self.symmetric_difference_update(other)
        return self

    # -- binary operators: a frozenset snapshot, nothing written -----------------------
    @classmethod
    def _from_iterable(cls, members: Iterable[Any]) -> frozenset[Any]:
        # Set's mixins (``__rsub__``, ``__ror__``...) build results with this; the default,
        # ``cls(members)``, cannot make a view of a table key.
        return frozenset(members)

    def __or__(self, other: Iterable[Any], /) -> frozenset[Any]:
        return self._members().union(other)

    def __and__(self, other: Iterable[Any], /) -> frozenset[Any]:
        return self._members().intersection(other)

    def __sub__(self, other: Iterable[Any], /) -> frozenset[Any]:
        return self._members().difference(other)

    def __xor__(self, other: Iterable[Any], /) -> frozenset[Any]:
        return self._members().symmetric_difference(other)


class _SetValues:
    """What a set table changes in Table: set-valued reads, writes and changelog codec."""

    windowing_refused = "windowed set tables are not supported; use a windowed app.Table()"

    def _check_set_options(self, name: str, options: dict[str, Any]) -> None:
        if options.pop("start_manager", False):
            raise InvalidArgument(
                f"SetTable {name!r}: start_manager=True (routing operations to the key's owner "
                "through a manager agent) is not supported; change the set from an agent that "
                "consumes a stream grouped by the table key (group_by)"
            )
        if options.get("window") is not None:
            raise InvalidArgument(f"SetTable {name!r} cannot be windowed: {self.windowing_refused}")
        if options.get("default") not in (None, set, frozenset):
            raise InvalidArgument(f"SetTable {name!r}: the default is always the empty set")
        options["default"] = None

    def _setup_changelog_schema(self) -> None:
        """Values travel as sorted JSON lists and come back as frozensets."""
        topic = self.changelog_topic  # type: ignore[attr-defined]
        old = topic.schema
        topic.schema = Schema(
            key_type=old.key_type,
            value_type=None,
            key_serializer=old.key_serializer,
            value_serializer=SetValueCodec(old.value_type),
            allow_empty=old.allow_empty,
        )

    def members(self, key: Any) -> frozenset[Any]:
        """The set stored under ``key`` (empty if none), read-only."""
        try:
            return frozenset(self._get(key))  # type: ignore[attr-defined]
        except KeyError:
            return frozenset()

    def __getitem__(self, key: Any) -> ChangeloggedSet:
        self.on_key_get(key)  # type: ignore[attr-defined]
        return ChangeloggedSet(self, key)  # type: ignore[arg-type]

    def __setitem__(self, key: Any, value: Any) -> None:
        """``table[k] = {..}`` replaces the set; an empty set or None deletes the key."""
        if isinstance(value, ChangeloggedSet) and value.table is self and value.key == key:
            return  # an in-place operator (``table[k] |= {x}``) has already written it
        members = frozenset(value) if value is not None else frozenset()
        if members == self.members(key):
            return  # nothing changed: no changelog record
        super().__setitem__(key, members or None)  # type: ignore[misc]

    def as_dict(self) -> dict[Any, Any]:
        return {key: self.members(key) for key in self}  # type: ignore[attr-defined]


class SetTable(_SetValues, Table):
    """``app.SetTable(name)``: a table of sets, partitioned like ``app.Table``."""

    def __init__(self, app: Any, name: str, *, start_manager: bool = False, **options: Any) -> None:
        options["start_manager"] = start_manager
        self._check_set_options(name, options)
        super().__init__(app, name, **options)


class SetGlobalTable(_SetValues, GlobalTable):
    """``app.SetGlobalTable(name)``: a table of sets that every worker holds whole."""

    def __init__(self, app: Any, name: str, *, start_manager: bool = False, **options: Any) -> None:
        options["start_manager"] = start_manager
        self._check_set_options(name, options)
        super().__init__(app, name, **options)
