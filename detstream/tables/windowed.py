"""Windowed tables: ``table.tumbling(...)`` / ``.hopping(...)`` and what ``table[k]`` returns.

A windowed table stores one value per key *and window*: the store key is
``(key, (start, end))``, which is also the changelog key (JSON
``[key, [start, end]]``, see :mod:`detstream.tables.codecs`). ``table[k]`` is a
:class:`WindowSet`, because which value you mean depends on a time:

- ``.current()`` / ``.value()``: the window of the current event's timestamp
  (Kafka's message timestamp: event time, not processing time);
- ``.now()``: the newest window this partition has written to (wall clock
  outside of stream iteration), as Faust;
- ``.delta(d)``: the window of the event's timestamp minus ``d``.

``table[k] += 1`` updates *every* window the event's timestamp falls in (one
for tumbling windows, ``size / step`` for hopping ones). Which timestamp is
"the event's" is chosen per wrapper: ``relative_to_stream()`` (the default),
``relative_to_now()`` (the wall clock), ``relative_to_field(Model.field)`` or
``relative_to(fn | timestamp)``; each returns a new wrapper over the same
table.

Windows whose ``expires`` passed are deleted by :mod:`detstream.tables.expiry`.
Every time read goes through the event, :func:`detstream.clock.wall_time` or
the caller, so windowed tables run in virtual time under the simulator.
"""

from __future__ import annotations

import copy
import operator
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from detstream.clock import wall_time
from detstream.errors import InvalidArgument
from detstream.events import Event, current_event
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant
from detstream.serializers import Schema
from detstream.windows import Seconds, Window, WindowRange

from .ansitable import ansitable
from .codecs import WindowedKeyCodec

if TYPE_CHECKING:
    from .table import Table

__all__ = ["WindowSet", "WindowWrapper", "make_windowed"]

#: A time source: called with the event (or None), returns seconds or a datetime.
RelativeHandler = Callable[[Event | None], Any]


def make_windowed(table: Table, window: Window, *, key_index: bool = False) -> WindowWrapper:
    """Turn ``table`` into a windowed table (once) and return a wrapper for it."""
    from .table import Table

    if not isinstance(table, Table):
        raise InvalidArgument(
            f"windowing needs a table made by app.Table(), got {table!r}: "
            "call .tumbling()/.hopping() on the table"
        )
    if not isinstance(window, Window):
        raise InvalidArgument(
            f"table {table.name!r}: using_window() needs a TumblingWindow, HoppingWindow or "
            f"SlidingWindow, got {window!r}"
        )
    refusal = getattr(table, "windowing_refused", None)
    if refusal:
        raise InvalidArgument(f"{type(table).__name__} {table.name!r} cannot be windowed: {refusal}")
    if table.window is None:
        table.window = window
        _use_windowed_keys(table)
        if window.expires is not None:
            from .expiry import WindowExpiry

            WindowExpiry(table).register()
    elif table.window != window:
        raise InvalidArgument(
            f"table {table.name!r} is already windowed by {table.window!r}; "
            f"it cannot also use {window!r} (make a second table)"
        )
    return WindowWrapper(table, key_index=key_index)


def _use_windowed_keys(table: Table) -> None:
    """Changelog keys become ``(key, (start, end))``: JSON that decodes back to tuples."""
    topic = table.changelog_topic
    old = topic.schema
    topic.schema = Schema(
        key_type=None,
        value_type=old.value_type,
        key_serializer=WindowedKeyCodec(old.key_type),
        value_serializer=old.value_serializer,
        allow_empty=old.allow_empty,
    )


def _seconds_of(value: Any, what: str) -> float:
    """A timestamp as float seconds: numbers, datetimes (naive = UTC) and ISO 8601 strings."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidArgument(f"{what}: {value!r} is not an ISO 8601 timestamp") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:  # local time would make the result depend on the machine
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(f"{what} must be seconds, a datetime or an ISO string, got {value!r}")
    return float(value)


def _event_timestamp(event: Event | None) -> float:
    """The event's Kafka message timestamp (event time)."""
    event = event if event is not None else current_event()
    if event is None:
        raise RuntimeError(
            "windowed table: no event timestamp outside of stream iteration; pass event=, "
            "or use .now() / relative_to_now() / relative_to(timestamp)"
        )
    if event.message is None:
        raise RuntimeError(
            "windowed table: this event came from an in-memory channel and has no message "
            "timestamp; use relative_to_field() or relative_to(...)"
        )
    return float(event.message.timestamp)


class WindowWrapper:
    """A windowed table as Faust shows it: ``wrapper[key]`` is a :class:`WindowSet`."""

    def __init__(
        self, table: Table, *, relative_to: Any = None, key_index: bool = False
    ) -> None:
        from .table import Table

        if not isinstance(table, Table):
            raise InvalidArgument(
                f"WindowWrapper needs a table made by app.Table(), got {table!r}: "
                "call .tumbling()/.hopping() on the table"
            )
        if table.window is None:
            raise InvalidArgument(
                f"table {table.name!r} has no window: make wrappers with "
                "table.tumbling(), table.hopping() or table.using_window()"
            )
        self.table = table
        #: accepted for Faust compatibility: keys are read from the window keys themselves.
        self.key_index = key_index
        self._relative = self._handler(relative_to)

    def __repr__(self) -> str:
        return f"<WindowWrapper: {self.table.name} {self.window!r}>"

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def window(self) -> Window:
        assert self.table.window is not None
        return self.table.window

    # -- time sources -----------------------------------------------------------------
    def clone(self, relative_to: Any) -> WindowWrapper:
        return WindowWrapper(self.table, relative_to=relative_to, key_index=self.key_index)

    def relative_to(self, ts: Any) -> WindowWrapper:
        """Windows relative to ``ts``: a timestamp, a datetime, a Record field or ``fn(event)``."""
        return self.clone(ts)

    def relative_to_now(self) -> WindowWrapper:
        """Windows relative to the wall clock: processing time instead of event time.

        (Faust used the partition's newest window end inside a stream, so
        writes never left the first window they made; ``WindowSet.now()``
        still reads that, see :meth:`relative_now`.)
        """
        return self.clone(lambda event: wall_time())

    def relative_to_field(self, field: Any) -> WindowWrapper:
        """Windows relative to a field of the event's value (``relative_to_field(View.ts)``)."""
        if not hasattr(field, "getattr"):
            raise InvalidArgument(f"relative_to_field() needs a Record field like Model.ts, got {field!r}")
        return self.clone(field)

    def relative_to_stream(self) -> WindowWrapper:
        """Windows relative to the event's message timestamp (the default)."""
        return self.clone(_event_timestamp)

    def _handler(self, relative_to: Any) -> RelativeHandler | None:
        if relative_to is None:
            return None
        if isinstance(relative_to, (datetime, str)) or (
            isinstance(relative_to, (int, float)) and not isinstance(relative_to, bool)
        ):
            fixed = _seconds_of(relative_to, "relative_to")
            return lambda event: fixed
        if hasattr(relative_to, "getattr") and hasattr(relative_to, "field"):
            field = relative_to
            return lambda event: _field_of(field, event)
        if callable(relative_to):
            return relative_to
        raise InvalidArgument(
            f"relative_to() takes a timestamp, datetime, Record field or callable, got {relative_to!r}"
        )

    def get_timestamp(self, event: Event | None = None) -> float:
        """The time windows are picked by, for ``event`` (default: the current event)."""
        event = event if event is not None else current_event()
        if self._relative is not None:
            return _seconds_of(self._relative(event), "relative_to")
        return _event_timestamp(event)

    def relative_now(self, event: Event | None = None) -> float:
        """Faust's "now" of a windowed table.

        Inside stream iteration: the end of the newest window written on the
        event's partition (event time, so replays and late data read the same
        windows as the original run); before the first write there, and
        outside of stream iteration, the wall clock.
        """
        event = event if event is not None else current_event()
        if event is not None and event.message is not None:
            latest = self.table.window_latest.get(event.message.partition)
            if latest is not None:
                return latest
        return wall_time()

    # -- mapping ------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> WindowSet:
        return WindowSet(key, self.table, self, current_event())

    def __setitem__(self, key: Any, value: Any) -> None:
        """Set ``value`` in every window of the timestamp (``+=`` has already written).

        Each window gets its own value: the latest window (the one
        ``.value()`` and ``.current()`` read) holds ``value`` itself, the
        older ones a deep copy. One object under several windows would alias
        them: the read-append-assign pattern of Faust's ``hopping_2`` example
        would then append the next events to an older window as well, whose
        changelog never hears of it, and a recovery would rebuild a different
        table (found by ``table-equals-changelog``). Faust on RocksDB stores
        bytes per window, so its windows never alias either.
        """
        if isinstance(value, WindowSet):
            return
        ranges = self.window.ranges(self.get_timestamp())
        table = self.table
        for window_range in ranges:
            full_key = (key, window_range)
            last = window_range is ranges[-1]
            shared = last or _immutable(value) or mutant_on(WINDOWS_SHARE_VALUE)
            table[full_key] = value if shared else copy.deepcopy(value)
            self._note_window(full_key)

    def __delitem__(self, key: Any) -> None:
        for window_range in self.window.ranges(self.get_timestamp()):
            if (key, window_range) in self.table:
                del self.table[key, window_range]

    def __contains__(self, key: Any) -> bool:
        return (key, self.window.current(self.get_timestamp())) in self.table

    def __iter__(self) -> Iterator[Any]:
        return self._keys()

    def __len__(self) -> int:
        return sum(1 for _ in self._keys())

    def _keys(self) -> Iterator[Any]:
        """Distinct keys of the windows this worker holds, in store order."""
        seen: set[Any] = set()
        for key, _window_range in list(self.table):
            if key not in seen:
                seen.add(key)
                yield key

    def keys(self) -> Iterator[Any]:
        return self._keys()

    def items(self, event: Event | None = None) -> WindowedItemsView:
        return WindowedItemsView(self, event if event is not None else current_event())

    def values(self, event: Event | None = None) -> WindowedValuesView:
        return WindowedValuesView(self, event if event is not None else current_event())

    def as_ansitable(
        self, title: str = "{table.name}", *, key: str = "Key", value: str = "Value",
        sort: bool = False, sortkey: Callable[[tuple[Any, Any]], Any] | None = None,
    ) -> str:
        """The windows of :meth:`items` as a text table (key, value)."""
        return ansitable(list(self.items()), title.format(table=self.table), key=key, value=value,
                         sort=sort, sortkey=sortkey)

    # -- writes -------------------------------------------------------------------------
    def _set_windows(self, key: Any, update: Callable[[Any], Any], timestamp: float) -> None:
        table = self.table
        for window_range in self.window.ranges(timestamp):
            full_key = (key, window_range)
            table[full_key] = update(table[full_key])
            self._note_window(full_key)

    def _note_window(self, full_key: tuple[Any, WindowRange]) -> None:
        """Remember the newest window end per partition (what ``.now()`` reads)."""
        partition = self.table.partition_for_key(full_key)
        end = full_key[1][1]
        latest = self.table.window_latest
        if end > latest.get(partition, float("-inf")):
            latest[partition] = end


WINDOWS_SHARE_VALUE = register_mutant(
    "windows-share-value",
    "a hopping write puts one mutable value under every window of the timestamp: an in-place "
    "change through one window changes the others, behind their changelog's back",
)

#: values two windows may share: nothing can change them in place.
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), Decimal, datetime)


def _immutable(value: Any) -> bool:
    return type(value) in _IMMUTABLE


def _field_of(field: Any, event: Event | None) -> Any:
    event = event if event is not None else current_event()
    if event is None:
        raise RuntimeError(
            f"windowed table: relative_to_field({field.field}) needs an event (stream iteration)"
        )
    return field.getattr(event.value)


class WindowSet:
    """The windows of one key: pick one with a time (``.current()``, ``.now()``, ``.delta(d)``)."""

    def __init__(
        self, key: Any, table: Table, wrapper: WindowWrapper, event: Event | None = None
    ) -> None:
        self.key = key
        self.table = table
        self.wrapper = wrapper
        self.event = event

    def __repr__(self) -> str:
        return f"<WindowSet: table={self.table.name} key={self.key!r}>"

    @property
    def window(self) -> Window:
        return self.wrapper.window

    def apply(self, op: Callable[[Any, Any], Any], value: Any, event: Event | None = None) -> WindowSet:
        """``old = op(old, value)`` in every window the timestamp falls in."""
        timestamp = self.wrapper.get_timestamp(event if event is not None else self.event)
        self.wrapper._set_windows(self.key, lambda old: op(old, value), timestamp)
        return self

    def _at(self, window_range: WindowRange) -> Any:
        return self.table[self.key, window_range]

    def value(self, event: Event | None = None) -> Any:
        """The window of the wrapper's time source (default: the event's timestamp)."""
        timestamp = self.wrapper.get_timestamp(event if event is not None else self.event)
        return self._at(self.window.current(timestamp))

    def current(self, event: Event | None = None) -> Any:
        """The latest window containing the event's message timestamp."""
        return self._at(self.window.current(_event_timestamp(event if event is not None else self.event)))

    def now(self) -> Any:
        """The oldest window containing "now" (see :meth:`WindowWrapper.relative_now`)."""
        return self._at(self.window.earliest(self.wrapper.relative_now(self.event)))

    def delta(self, d: Seconds, event: Event | None = None) -> Any:
        """The window the event's timestamp minus ``d`` seconds falls in."""
        timestamp = _event_timestamp(event if event is not None else self.event)
        return self._at(self.window.delta(timestamp, d))

    def __getitem__(self, w: Any) -> Any:
        """``ws[event]``: this key relative to another event; ``ws[(start, end)]``: one window."""
        if isinstance(w, Event):
            return WindowSet(self.key, self.table, self.wrapper, w)
        return self._at(tuple(w))

    def __setitem__(self, w: Any, value: Any) -> None:
        if isinstance(w, Event):
            raise InvalidArgument("cannot set a WindowSet item by event; index it by (start, end)")
        self.table[self.key, tuple(w)] = value

    def __delitem__(self, w: Any) -> None:
        if isinstance(w, Event):
            raise InvalidArgument("cannot delete a WindowSet item by event; index it by (start, end)")
        del self.table[self.key, tuple(w)]

    def __iadd__(self, other: Any) -> WindowSet:
        return self.apply(operator.add, other)

    def __isub__(self, other: Any) -> WindowSet:
        return self.apply(operator.sub, other)

    def __imul__(self, other: Any) -> WindowSet:
        return self.apply(operator.mul, other)

    def __itruediv__(self, other: Any) -> WindowSet:
        return self.apply(operator.truediv, other)

    def __ifloordiv__(self, other: Any) -> WindowSet:
        return self.apply(operator.floordiv, other)

    def __imod__(self, other: Any) -> WindowSet:
        return self.apply(operator.mod, other)

    def __ipow__(self, other: Any) -> WindowSet:
        return self.apply(operator.pow, other)

    def __ilshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.lshift, other)

    def __irshift__(self, other: Any) -> WindowSet:
        return self.apply(operator.rshift, other)

    def __iand__(self, other: Any) -> WindowSet:
        return self.apply(operator.and_, other)

    def __ixor__(self, other: Any) -> WindowSet:
        return self.apply(operator.xor, other)

    def __ior__(self, other: Any) -> WindowSet:
        return self.apply(operator.or_, other)


class _WindowedView:
    """Shared by the items and values views: one value per key, at a chosen time."""

    def __init__(self, wrapper: WindowWrapper, event: Event | None = None) -> None:
        self.wrapper = wrapper
        self.event = event

    def _pairs(self, pick: Callable[[WindowSet], Any]) -> Iterator[tuple[Any, Any]]:
        for key in self.wrapper._keys():
            try:
                yield key, pick(WindowSet(key, self.wrapper.table, self.wrapper, self.event))
            except KeyError:
                continue

    def _at_timestamp(self) -> Iterator[tuple[Any, Any]]:
        return self._pairs(lambda ws: ws.value())

    def _now(self) -> Iterator[tuple[Any, Any]]:
        return self._pairs(lambda ws: ws.now())

    def _current(self, event: Event | None) -> Iterator[tuple[Any, Any]]:
        return self._pairs(lambda ws: ws.current(event if event is not None else self.event))

    def _delta(self, d: Seconds, event: Event | None) -> Iterator[tuple[Any, Any]]:
        return self._pairs(lambda ws: ws.delta(d, event if event is not None else self.event))


class WindowedItemsView(_WindowedView):
    """``wrapper.items()``: ``(key, value)`` per key; ``.now()``, ``.current()``, ``.delta(d)``."""

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        return self._at_timestamp()

    def now(self) -> Iterator[tuple[Any, Any]]:
        return self._now()

    def current(self, event: Event | None = None) -> Iterator[tuple[Any, Any]]:
        return self._current(event)

    def delta(self, d: Seconds, event: Event | None = None) -> Iterator[tuple[Any, Any]]:
        return self._delta(d, event)


class WindowedValuesView(_WindowedView):
    """``wrapper.values()``: one value per key; ``.now()``, ``.current()``, ``.delta(d)``."""

    def __iter__(self) -> Iterator[Any]:
        return (value for _, value in self._at_timestamp())

    def now(self) -> Iterator[Any]:
        return (value for _, value in self._now())

    def current(self, event: Event | None = None) -> Iterator[Any]:
        return (value for _, value in self._current(event))

    def delta(self, d: Seconds, event: Event | None = None) -> Iterator[Any]:
        return (value for _, value in self._delta(d, event))
