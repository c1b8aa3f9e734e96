"""Tables: a dict per app whose every write is also sent to a changelog topic.

A write goes to the changelog partition of the event being processed, so the
table partition lives where its source partition is consumed (use
``group_by`` so that equal table keys arrive on one partition). A worker that
is assigned a partition rebuilds it from the changelog before its agents see
new events. ``use_partitioner=True`` picks the partition from the key instead
(Kafka's partitioner over the changelog key bytes), which also allows writes
outside of stream iteration.

Other table kinds build on this class: windowed tables (``.tumbling()``,
``.hopping()``, see :mod:`detstream.tables.windowed`), ``GlobalTable``
(:mod:`detstream.tables.global_table`) and ``SetTable`` (:mod:`detstream.tables.set_table`).
They change what a read, a write and a changelog record are through the
small hooks ``_get``, ``_write`` and ``_remove``.

A table must be exactly its changelog, so both directions are checked. A
write whose key or value the changelog's codecs cannot encode, whose value
does not decode back, or whose key would come back different (another type
or value) is refused with a TableWriteError naming table and key. A
changelog record that does not decode stops recovery with a
ChangelogDecodeError naming table, partition, offset and key (the worker
crashes), unless the app setting ``table_changelog_decode_errors="skip"``
says to log and skip such records; standby copies and global tables apply
the same policy.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from detstream._types import TP, ConsumerRecord, RecordMetadata
from detstream.errors import (
    ChangelogDecodeError,
    ChangelogKeyDecodeError,
    ChangelogValueDecodeError,
    CodecError,
    DecodeError,
    InvalidArgument,
    TableWriteError,
)
from detstream.events import Event, current_agent, current_event
from detstream.mutants import on as mutant_on
from detstream.mutants import register as register_mutant
from detstream.partitioner import partition_for_key
from detstream.produce_hook import hooked_headers
from detstream.settings import url_text
from detstream.stores import MemoryStore, StoreSpec, store_for_url
from detstream.tracing import ATOMS, Tracer

from .changelog_cache import ChangelogCache, SendRecord
from .codecs import TableKeyCodec

if TYPE_CHECKING:
    from detstream.app import App
    from detstream.stores.base import Store
    from detstream.topic import Topic
    from detstream.windows import Window

    from .windowed import WindowWrapper

logger = logging.getLogger(__name__)

#: re-opens issue 9's bug: a changelog value that does not decode is applied as it is, and
#: every later event of its key fails.
CHANGELOG_DECODE_UNCHECKED = register_mutant(
    "changelog-decode-unchecked",
    "an undecodable changelog value is applied as raw bytes at recovery",
)

#: ``on_window_close(key, value)``: key is ``(key, (start, end))``; may be async.
WindowCloseCallback = Callable[[Any, Any], Any]


#: changelog keys a table remembers the decoding of (bounds the memory of ``_read_back_key``).
_READ_BACK_KEYS = 4096
#: not a key's bytes: the key was not written under this schema yet.
_UNKNOWN = object()

#: key and value types of a table: ``Table[str, int]`` (Faust's ``TableT[KT, VT]``), for annotations.
KT = TypeVar("KT")
VT = TypeVar("VT")


class Table(MutableMapping[KT, VT]):
    """``app.Table(name, ...)``: see the Faust guide for each argument."""

    #: True for tables every worker holds whole (GlobalTable).
    is_global = False

    # What ``__getitem__``/``__setitem__`` may do inline (a counter's ``table[k] += 1`` is
    # both, per event): set for each class when it is made (``__init_subclass__``), from
    # which steps it overrides. A step a subclass overrides is always called (a method
    # patched onto a class or an instance after the class was made is not seen).
    #: ``_get`` is Table's (``data.get``): a read calls ``data.get`` itself.
    _plain_get: ClassVar[bool] = True
    #: no step of a write (``_WRITE_STEPS``) is overridden: see ``_write_plain``.
    _plain_write: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._plain_get = cls._get is Table._get
        cls._plain_write = all(getattr(cls, step) is getattr(Table, step) for step in _WRITE_STEPS)

    def __init__(
        self,
        app: App,
        name: str,
        *,
        default: Callable[[], Any] | None = None,
        key_type: Any = None,
        value_type: Any = None,
        store: str | None = None,
        partitions: int | None = None,
        changelog_topic: Topic | None = None,
        help: str | None = None,
        on_changelog_event: Callable[[Event], Any] | None = None,
        recovery_buffer_size: int = 1000,
        standby_buffer_size: int | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
        extra_topic_configs: Mapping[str, Any] | None = None,
        use_partitioner: bool = False,
        window: Window | None = None,
        on_window_close: WindowCloseCallback | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"app.Table() needs a non-empty str name, got {name!r}")
        if default is not None and not callable(default):
            raise InvalidArgument(
                f"Table {name!r}: default must be a callable like int or list, got {default!r}"
            )
        for label, fun in (("on_changelog_event", on_changelog_event),
                           ("on_window_close", on_window_close)):
            if fun is not None and not callable(fun):
                raise InvalidArgument(f"Table {name!r}: {label} must be callable, got {fun!r}")
        self.app = app
        self.name = name
        self.default = default
        self.key_type = key_type
        self.value_type = value_type
        self.help = help or ""
        self.partitions = partitions
        self.on_changelog_event = on_changelog_event
        self.recovery_buffer_size = recovery_buffer_size
        self.standby_buffer_size = standby_buffer_size
        self.extra_topic_configs = dict(extra_topic_configs or {})
        self.use_partitioner = bool(use_partitioner)
        self.on_window_close = on_window_close
        #: the table's window once ``tumbling``/``hopping``/``using_window`` made it windowed.
        self.window: Window | None = None
        #: windowed: the newest window end written per partition (what ``.now()`` reads).
        self.window_latest: dict[int, float] = {}
        self.store_url = url_text(store) or app.conf.store  # Faust's ``str`` or ``yarl.URL``
        if key_serializer is None:
            # no key_type: keys of any type, bytes included, must come back as they were
            key_serializer = TableKeyCodec() if key_type is None else "json"
        self.changelog_topic = changelog_topic or app.topic(
            f"{app.conf.id}-{name}-changelog",
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer,
            # no value_type: values of any shape, Records nested in lists included, come back as written
            value_serializer=value_serializer or ("json" if value_type is not None else _any_value_codec()),
            partitions=partitions,
            compacting=True,
            acks=False,
            internal=True,
            config=self.extra_topic_configs,
        )
        self._changelog_tasks: set[asyncio.Future[Any]] = set()
        #: source topics whose partition count was compared with the changelog's.
        self._sources_checked: set[str] = set()
        self._changelog_cache: ChangelogCache | None = None
        #: changelog key bytes -> the key recovery decodes them to (see ``_read_back_key``).
        self._keys_read_back: dict[bytes | None, Any] = {}
        self._keys_read_back_schema: Any = None
        #: changelog value bytes known to decode (under ``_keys_read_back_schema``).
        self._values_read_back: set[bytes] = set()
        #: str key -> its changelog bytes, checked to read back as the key (same schema).
        self._str_key_bytes: dict[str, bytes | None] = {}
        #: int value -> its changelog bytes, checked to decode (same schema): a counter's.
        self._int_value_bytes: dict[int, bytes | None] = {}
        self._setup_changelog_schema()
        #: built after the changelog topic: a persistent store encodes with its schema.
        self.data = store_for_url(self.store_url)(url=self.store_url, spec=self.store_spec())
        if window is not None:
            self.using_window(window)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.name}>"

    def store_spec(self) -> StoreSpec:
        """What this table's store needs to know of it (``stores.base.StoreSpec``)."""
        app = self.app  # its conf is read at every use: it may be configured later
        return StoreSpec(
            table=self.name,
            changelog=self.changelog_topic,
            directory=lambda: Path(app.conf.table_directory),
            datadir=lambda: str(app.conf.datadir),
        )

    def _setup_changelog_schema(self) -> None:
        """Hook for table kinds that need their own changelog codecs (SetTable)."""

    # -- mapping --------------------------------------------------------------
    def _get(self, key: Any) -> Any:
        """The stored value, or KeyError (no default): what every read goes through."""
        return self.data.get(key)

    def __getitem__(self, key: Any) -> Any:
        try:
            # Table._get is data.get: called straight, one Python call fewer per read
            value = self.data.get(key) if self._plain_get else self._get(key)
        except KeyError:
            if self.default is None:
                raise
            value = self.default()
        self.on_key_get(key)  # (always: a user's hook may be patched onto the instance)
        sensors = self.app.sensors
        if sensors.enabled:
            sensors.on_table_get(self, key)
        return value

    def __missing__(self, key: Any) -> Any:
        if self.default is None:
            raise KeyError(key)
        return self.default()

    def __setitem__(self, key: Any, value: Any) -> None:
        """Set ``key``; ``table[key] = None`` deletes it (a None value is a changelog tombstone)."""
        if value is None:
            if key in self:
                del self[key]
            return
        if self._plain_write and type(self.data) is MemoryStore:
            self._write_plain(key, value)
        else:
            self._write(key, value, self._partition_for_write("set", key))
        self.on_key_set(key, value)
        sensors = self.app.sensors
        if sensors.enabled:
            sensors.on_table_set(self, key, value)

    def __delitem__(self, key: Any) -> None:
        if key not in self:
            raise KeyError(key)
        partition = self._partition_for_write("delete", key)
        self._remove(key, partition)
        self.on_key_del(key)
        sensors = self.app.sensors
        if sensors.enabled:
            sensors.on_table_del(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[Any]:
        return self.data.keys()

    def __len__(self) -> int:
        return len(self.data)

    def as_dict(self) -> dict[Any, Any]:
        return {key: self._get(key) for key in self}

    def as_ansitable(
        self, title: str = "{table.name}", *, key: str = "Key", value: str = "Value",
        sort: bool = False, sortkey: Callable[[tuple[Any, Any]], Any] | None = None,
    ) -> str:
        """This worker's part of the table as a text table, to print (Faust's name)."""
        from .ansitable import ansitable

        return ansitable(list(self.as_dict().items()), title.format(table=self), key=key,
                         value=value, sort=sort, sortkey=sortkey)

    # -- hooks (Faust's Collection has the same names) ----------------------------
    def on_key_get(self, key: Any) -> None:
        """Called after every read of ``key`` (override to count or trace reads)."""

    def on_key_set(self, key: Any, value: Any) -> None:
        """Called after ``key`` was set and its changelog record queued (sent at the commit)."""

    def on_key_del(self, key: Any) -> None:
        """Called after ``key`` was deleted and its tombstone queued (sent at the commit)."""

    # -- writes -----------------------------------------------------------------
    def _write(self, key: Any, value: Any, partition: int) -> None:
        self.data.set(key, value, partition, sent=self._cache_changelog(key, value, partition))

    def _write_plain(self, key: Any, value: Any) -> None:
        """``self._write(key, value, self._partition_for_write("set", key))`` in fewer calls.

        For a table whose class overrides none of those steps, with a memory
        store (other stores get their calls as ever): a counter's write, once
        per event, is six Python calls fewer. The common case is done inline;
        anything else goes to the step that handles it, so every check, error
        and warning is the step's own:

        - the partition (``_partition_for_write``): the event's, once its source
          topic was checked and no concurrent agent writes; otherwise the step
          itself (it raises, or checks the source and warns once);
        - the changelog bytes (``_changelog_bytes``): those remembered for a str
          key and an int value under the current schema, as the step looks them
          up; otherwise the step itself (it encodes, checks and remembers);
        - the ``table-write`` trace step only when the tracer is enabled.

        tests/unit/test_table_inline.py pins that it leaves what the steps leave.
        """
        agent = current_agent()
        event = current_event()
        message = event.message if event is not None else None
        if (message is None or self.use_partitioner or message.topic not in self._sources_checked
                or (agent is not None and agent.concurrency > 1)):
            partition = self._partition_for_write("set", key)
        else:
            partition = message.partition
        # _changelog_bytes's look-up of remembered bytes (a counter writes few keys and values)
        schema = self.changelog_topic.schema
        key_bytes: Any = _UNKNOWN
        value_bytes: Any = _UNKNOWN
        if schema is self._keys_read_back_schema:
            if type(key) is str:
                key_bytes = self._str_key_bytes.get(key, _UNKNOWN)
            if type(value) is int:
                value_bytes = self._int_value_bytes.get(value, _UNKNOWN)
        if key_bytes is _UNKNOWN or value_bytes is _UNKNOWN:
            key_bytes, value_bytes = self._changelog_bytes(key, value)
        tracer = self.app.tracer
        if tracer.enabled:
            _trace_write(tracer, self.name, partition, key, value)
        cache = self._changelog_cache
        if cache is None:
            cache = self.changelog_cache
        # (``write_by``: the event and agent read above, not read again by the cache)
        self.data.set(key, value, partition,
                      sent=cache.write_by(partition, key_bytes, value_bytes, event, agent))

    def _remove(self, key: Any, partition: int) -> None:
        self.data.delete(key, partition, sent=self._cache_changelog(key, None, partition))

    def _cache_changelog(self, key: Any, value: Any, partition: int) -> asyncio.Future[RecordMetadata]:
        """Check and encode the write now; its changelog record goes out at the next flush.

        Returns the future the store waits on before the write may reach disk
        (see ``changelog_cache``).
        """
        key_bytes, value_bytes = self._changelog_bytes(key, value)
        _trace_write(self.app.tracer, self.name, partition, key, value)
        return self.changelog_cache.write_by(partition, key_bytes, value_bytes, current_event(),
                                             current_agent())

    @property
    def changelog_cache(self) -> ChangelogCache:
        """Dirty keys waiting for the conductor's next commit (made on the first write)."""
        if self._changelog_cache is None:
            tables = self.app.tables
            self._changelog_cache = ChangelogCache(
                self._changelog_sender, lambda sent: self.app.producer.durable(sent),
                limit=int(self.app.conf.table_changelog_cache_size),
                held=lambda: tables.changelogs_held(),
            )
        return self._changelog_cache

    def flush_changelog(self) -> int:
        """Send the changelog records of every dirty key now; how many were sent."""
        return self._changelog_cache.flush() if self._changelog_cache is not None else 0

    @property
    def unflushed(self) -> int:
        """Dirty keys whose changelog record is not sent yet."""
        return len(self._changelog_cache) if self._changelog_cache is not None else 0

    def _changelog_sender(self) -> SendRecord:
        """How changelog records are sent now: through ``app.on_produce_message`` if it has
        handlers (asked once per flush of the cache, or per write of a GlobalTable)."""
        if self.app.on_produce_message.has_receivers():
            return self._send_record_hooked
        return self._send_record

    def _send_record(
        self, key: bytes | None, value: bytes | None, partition: int
    ) -> asyncio.Future[RecordMetadata]:
        return self.app.producer.send_soon(self.changelog_name, key=key, value=value, partition=partition)

    def _send_record_hooked(
        self, key: bytes | None, value: bytes | None, partition: int
    ) -> asyncio.Future[RecordMetadata]:
        """``_send_record`` after showing the record to ``on_produce_message``, as Faust's
        producer does (its handlers may give it headers)."""
        headers = hooked_headers(self.app.on_produce_message, key, value, partition, None)
        return self.app.producer.send_soon(
            self.changelog_name, key=key, value=value, partition=partition, headers=headers,
        )

    def partition_for_key(self, key: Any) -> int:
        """The changelog partition a write of ``key`` goes to now.

        The partition of the event being processed (Faust's rule: the table
        partition lives with its source partition), or with
        ``use_partitioner=True`` Kafka's partitioner over the key's changelog
        bytes. Raises TableWriteError outside of stream iteration unless
        ``use_partitioner`` is set.
        """
        return self._partition_for_write("write", key, check_agent=False)

    def _partition_for_write(self, op: str, key: Any, *, check_agent: bool = True) -> int:
        agent = current_agent()
        if check_agent and agent is not None and agent.concurrency > 1:
            raise TableWriteError(
                f"agent {agent.name} has concurrency={agent.concurrency} and may only read "
                f"table {self.name!r}: concurrent actors process events out of order, so "
                "their writes would corrupt the changelog. Use concurrency=1 to write tables."
            )
        if self.use_partitioner:
            return self._hashed_partition(key)
        event = current_event()
        if event is None or event.message is None:
            raise TableWriteError(
                f"cannot {op} key {key!r} of table {self.name!r} outside of stream iteration: "
                "a table write must belong to the event being processed (write it inside "
                "`async for ... in stream`, or make the table with use_partitioner=True)"
            )
        self._check_source(event.message.topic)
        return event.message.partition

    def _check_source(self, source: str) -> None:
        """Warn once per source topic whose partition count differs from the changelog's.

        The table partition lives with the event's partition, so both topics
        need the same count (Faust raises PartitionsMismatch here). Counts
        come from what the app saw at start; nothing is asked of the broker.
        """
        if self.is_global or source in self._sources_checked:
            return
        self._sources_checked.add(source)
        source_n = self.app.partition_count(source)
        changelog_n = self.app.partition_count(self.changelog_name)
        if source_n is not None and changelog_n is not None and source_n != changelog_n:
            logger.warning(
                "table %r is written from topic %r, which has %d partitions, but its changelog "
                "%r has %d: they must be co-partitioned (the same count), or the table's "
                "partitions are recovered on other workers than their events",
                self.name, source, source_n, self.changelog_name, changelog_n,
            )
            self.app.tracer.record("copartition-mismatch", table=self.name, source=source,
                                   source_partitions=source_n, changelog=self.changelog_name,
                                   changelog_partitions=changelog_n)

    def _hashed_partition(self, key: Any) -> int:
        schema = self.changelog_topic.schema
        data = schema.dumps_key(key, default_serializer="json")
        if data is None:
            raise InvalidArgument(f"table {self.name!r}: use_partitioner cannot place key None")
        return partition_for_key(data, self.changelog_partitions)

    @property
    def changelog_partitions(self) -> int:
        """Partitions of the changelog topic as declared (``partitions=`` or ``topic_partitions``)."""
        return self.changelog_topic.partitions or self.app.conf.topic_partitions

    def _send_changelog(self, key: Any, value: Any, partition: int) -> asyncio.Future[RecordMetadata]:
        """Send first: a value the changelog cannot encode never reaches the store.

        The codecs are the changelog schema's, else json: what recovery and the
        rocksdb store decode with, also for a ``changelog_topic=`` given without
        serializers (the app's default key serializer is raw).
        """
        key_bytes, value_bytes = self._changelog_bytes(key, value)
        _trace_write(self.app.tracer, self.name, partition, key, value)
        return self._changelog_sender()(key_bytes, value_bytes, partition)

    def _changelog_bytes(self, key: Any, value: Any) -> tuple[bytes | None, bytes | None]:
        """The changelog record of a write, refused unless recovery reads back what was written.

        The key must come back equal and of the same type (else the recovered
        table holds another key than the live one); the value must at least
        decode (else recovery stops at it).
        """
        schema = self.changelog_topic.schema
        name = self.changelog_name
        known: Any = _UNKNOWN
        known_value: Any = _UNKNOWN
        if schema is self._keys_read_back_schema:  # a counter writes few keys, and values, often
            if type(key) is str:
                known = self._str_key_bytes.get(key, _UNKNOWN)
            if type(value) is int:
                known_value = self._int_value_bytes.get(value, _UNKNOWN)
        try:
            key_bytes = schema.dumps_key(key, default_serializer="json") if known is _UNKNOWN else known
            value_bytes = (schema.dumps_value(value, default_serializer="json")
                           if known_value is _UNKNOWN else known_value)
        except CodecError as exc:
            raise TableWriteError(
                f"table {self.name!r}: cannot write key {key!r} to its changelog {name!r}: {exc}"
            ) from exc
        if known is _UNKNOWN:
            self._check_key_reads_back(schema, key, key_bytes, name)
        if known_value is _UNKNOWN:
            value_bytes = self._checked_value_bytes(schema, key, value_bytes, name)
            if type(value) is int and schema is self._keys_read_back_schema:
                if len(self._int_value_bytes) >= _READ_BACK_KEYS:
                    self._int_value_bytes.clear()
                self._int_value_bytes[value] = value_bytes
        return key_bytes, value_bytes

    def _check_key_reads_back(self, schema: Any, key: Any, key_bytes: bytes | None, name: str) -> None:
        """Refuse a key recovery would not decode to the same key; remember a str key's bytes."""
        try:
            back = self._read_back_key(schema, key_bytes, name)
        except DecodeError as exc:
            raise TableWriteError(
                f"table {self.name!r}: key {key!r} encodes to changelog bytes {key_bytes!r} that "
                f"its key codec cannot decode ({exc}); recovery would stop there. Give the table "
                "a key_type/key_serializer that reads back what it writes"
            ) from exc
        if not _same_key(back, key):
            raise TableWriteError(
                f"table {self.name!r}: key {key!r} ({type(key).__name__}) would come back from "
                f"its changelog {name!r} as {back!r} ({type(back).__name__}), so the table "
                "recovered after a restart would differ from the live one. Use keys that "
                "round-trip: str, int, float, bool, bytes, tuples of them or Records, of the "
                "table's key_type if it has one"
            )
        if type(key) is str and schema is self._keys_read_back_schema:
            self._str_key_bytes[key] = key_bytes

    def _checked_value_bytes(
        self, schema: Any, key: Any, value_bytes: bytes | None, name: str
    ) -> bytes | None:
        """``value_bytes``, refused unless its codec decodes them (recovery would stop there)."""
        if value_bytes is not None and value_bytes not in self._values_read_back:
            try:
                schema.loads_value(value_bytes, default_serializer="json", topic=name)
                self._remember_value(value_bytes)
            except DecodeError as exc:
                raise TableWriteError(
                    f"table {self.name!r}: the value of key {key!r} encodes to changelog bytes "
                    f"that its value codec cannot decode ({exc}); recovery would stop there. "
                    "Write values of the table's value_type, or fix its value_serializer"
                ) from exc
        return value_bytes

    def _read_back_key(self, schema: Any, key_bytes: bytes | None, topic: str) -> Any:
        """``key_bytes`` decoded as recovery would: remembered, as a table writes few keys often.

        The decoding depends only on the bytes and the changelog's schema (a
        table made windowed gets a new one, which empties the memory). At most
        ``_READ_BACK_KEYS`` keys are kept; then it starts over.
        """
        known = self._keys_read_back
        if schema is not self._keys_read_back_schema or len(known) >= _READ_BACK_KEYS:
            known.clear()
            self._values_read_back.clear()
            self._str_key_bytes.clear()
            self._int_value_bytes.clear()
            self._keys_read_back_schema = schema
        if key_bytes in known:
            return known[key_bytes]
        back = known[key_bytes] = schema.loads_key(key_bytes, default_serializer="json", topic=topic)
        return back

    def _remember_value(self, value_bytes: bytes) -> None:
        """``value_bytes`` decoded: a counter writes the same few values under many keys.

        Kept under the schema the keys are (``_read_back_key`` empties both
        when it changes); at most ``_READ_BACK_KEYS`` values, then it starts over.
        """
        known = self._values_read_back
        if len(known) >= _READ_BACK_KEYS:
            known.clear()
        known.add(value_bytes)

    # -- windowing --------------------------------------------------------------
    def tumbling(
        self, size: float | timedelta, expires: float | timedelta | None = None,
        key_index: bool = False,
    ) -> WindowWrapper:
        """Count per back-to-back windows of ``size`` seconds: ``table[k]`` is a WindowSet."""
        from detstream.windows import TumblingWindow

        return self.using_window(TumblingWindow(size, expires), key_index=key_index)

    def hopping(
        self, size: float | timedelta, step: float | timedelta,
        expires: float | timedelta | None = None, key_index: bool = False,
    ) -> WindowWrapper:
        """Windows of ``size`` seconds starting every ``step``: a write updates each one it falls in."""
        from detstream.windows import HoppingWindow

        return self.using_window(HoppingWindow(size, step, expires), key_index=key_index)

    def using_window(self, window: Window, *, key_index: bool = False) -> WindowWrapper:
        """Make this table windowed by ``window`` and return its WindowWrapper."""
        from .windowed import make_windowed

        return make_windowed(self, window, key_index=key_index)

    # -- recovery ---------------------------------------------------------------
    @property
    def changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()

    def apply_changelog(self, records: list[ConsumerRecord]) -> None:
        """Apply changelog records (recovery): latest value wins, None deletes."""
        self.apply_changelog_to(self.data, records)

    def apply_changelog_to(self, store: Store, records: list[ConsumerRecord]) -> None:
        """Apply changelog records to ``store`` (the table's, or a standby copy's).

        Every record is decoded first. One that does not decode follows the
        app's ``table_changelog_decode_errors`` policy: ``"raise"`` (the
        default) applies none of the batch and raises ChangelogDecodeError (a
        KeyDecodeError or ValueDecodeError too); ``"skip"`` logs it and leaves
        it out (the store's offset still moves past it).
        """
        decoded: dict[tuple[int, int], tuple[Any, Any]] = {}
        good: list[ConsumerRecord] = []
        for record in records:
            try:
                decoded[(record.partition, record.offset)] = self._decode_record(record)
            except ChangelogDecodeError as exc:
                if self.app.conf.table_changelog_decode_errors != "skip":
                    self.app.tracer.record("changelog-decode-error", table=self.name, tp=_tp(record),
                                           offset=record.offset)
                    raise  # nothing of the batch applied: the store keeps its offset
                logger.warning("%s; skipped (table_changelog_decode_errors='skip')", exc)
                self.app.tracer.record("changelog-decode-skip", table=self.name, tp=_tp(record),
                                       offset=record.offset)
                continue
            good.append(record)

        def to_key(record: ConsumerRecord) -> Any:
            return decoded[(record.partition, record.offset)][0]

        def to_value(record: ConsumerRecord) -> Any:
            return decoded[(record.partition, record.offset)][1]

        if good:
            store.apply_changelog_batch(good, to_key, to_value)
        _move_offsets_past_skipped(store, records, good)
        if records:
            self._trace_applied(store, records)
        if good and self.on_changelog_event is not None:
            self._notify_changelog(good, to_key, to_value)

    def _trace_applied(self, store: Store, records: list[ConsumerRecord]) -> None:
        """Say which changelog offsets reached ``store``: the simulator checks none was skipped.

        First, last and count are enough to see a skipped, repeated or
        reordered record against the log (``changelog-applied-in-order``).
        """
        first = records[0]
        self.app.tracer.record(
            "changelog-applied", tp=TP(first.topic, first.partition),
            copy="standby" if store is not self.data else "table",
            first=first.offset, last=records[-1].offset, n=len(records),
        )

    def _decode_record(self, record: ConsumerRecord) -> tuple[Any, Any]:
        """Key and value of a changelog record, or ChangelogDecodeError saying where and what to do."""
        schema = self.changelog_topic.schema
        where = _where(record)
        key: Any = record.key
        error: type[ChangelogDecodeError] = ChangelogKeyDecodeError
        try:
            key = schema.loads_key(record.key, default_serializer="json", **where)
            error = ChangelogValueDecodeError
            value = (None if record.value is None
                     else schema.loads_value(record.value, default_serializer="json", **where))
        except DecodeError as exc:
            if error is ChangelogValueDecodeError and mutant_on(CHANGELOG_DECODE_UNCHECKED):
                return key, record.value  # the old bug: applied as it is
            what = (f"key {record.key!r}" if error is ChangelogKeyDecodeError
                    else f"value of key {key!r}")
            raise error(
                f"table {self.name!r}: the {what} of changelog record "
                f"{record.topic}[{record.partition}] offset {record.offset} does not decode: "
                f"{exc.reason}. Recovery stops here rather than rebuild a wrong table. To go "
                "on: make the table's key_type/value_type and serializers read what was "
                "written; or write a valid value (or a tombstone) for that key to the "
                "changelog and let compaction remove the bad record; or set the app setting "
                "table_changelog_decode_errors='skip' to log and skip such records",
                table=self.name, topic=record.topic, partition=record.partition,
                offset=record.offset, key=key, reason=exc.reason,
            ) from exc
        return key, value

    def changelog_events(
        self, records: list[ConsumerRecord],
        to_key: Callable[[ConsumerRecord], Any], to_value: Callable[[ConsumerRecord], Any],
    ) -> list[Event[Any]]:
        """Changelog records as Events (what ``on_changelog_event`` receives)."""
        from detstream.events import Message

        events: list[Event[Any]] = []
        for record in records:
            message = Message(
                record.topic, record.partition, record.offset, record.timestamp,
                record.key, record.value, record.headers, acked=True,
            )
            value = None if record.value is None else to_value(record)
            events.append(Event(self.app, to_key(record), value, dict(record.headers), message))
        return events

    def _notify_changelog(
        self, records: list[ConsumerRecord],
        to_key: Callable[[ConsumerRecord], Any], to_value: Callable[[ConsumerRecord], Any],
    ) -> None:
        """Call ``on_changelog_event`` per record; async callbacks run in order, in one task.

        A failing callback is logged, not raised: it runs inside the fetch
        loop (recovery) or the global table reader, which must go on.
        """
        assert self.on_changelog_event is not None
        pending: list[Awaitable[Any]] = []
        for event in self.changelog_events(records, to_key, to_value):
            try:
                result = self.on_changelog_event(event)
            except Exception:
                logger.exception("on_changelog_event of table %r failed", self.name)
                continue
            if inspect.isawaitable(result):
                pending.append(result)
        if pending:
            task = asyncio.ensure_future(_await_in_order(pending))
            self._changelog_tasks.add(task)
            task.add_done_callback(self._changelog_tasks.discard)

    def persisted_offset(self, tp: TP) -> int | None:
        """The last changelog offset the store holds for ``tp`` (None: replay it all)."""
        return self.data.persisted_offset(tp.partition)

    def reset_state(self) -> None:
        """Delete this worker's local data of the table (rebuilt from the changelog)."""
        self.data.reset_state()

    def on_partitions_assigned(self, tps: set[TP]) -> None:
        name = self.changelog_name
        self.data.assign_partitions({tp.partition for tp in tps if tp.topic == name})

    def on_partitions_revoked(self, tps: set[TP]) -> None:
        name = self.changelog_name
        partitions = {tp.partition for tp in tps if tp.topic == name}
        if self._changelog_cache is not None:  # flushed by the commit before, unless given up
            self._changelog_cache.drop(partitions, RuntimeError("the partition was given up"))
        self.data.drop_partitions(partitions)


async def _await_in_order(pending: list[Awaitable[Any]]) -> None:
    for awaitable in pending:
        try:
            await awaitable
        except Exception:
            logger.exception("an async on_changelog_event callback failed")


def _any_value_codec() -> Any:
    """The changelog value codec of a table without value_type (see TableValueCodec)."""
    from .codecs import TableValueCodec

    return TableValueCodec()


def _where(record: ConsumerRecord) -> dict[str, Any]:
    return dict(topic=record.topic, partition=record.partition, offset=record.offset)


#: the steps of a write that ``Table._write_plain`` does inline (a class overriding one
#: writes through them instead).
_WRITE_STEPS = (
    "_partition_for_write", "_check_source", "_write", "_cache_changelog", "_changelog_bytes",
    "changelog_cache", "changelog_name",
)

#: key types that are neither Records nor tuples: equality alone says whether they came back.
_PLAIN_KEYS = frozenset({str, int, float, bool, bytes})


def _same_key(back: Any, key: Any) -> bool:
    """Did ``key`` come back from the changelog as the same dict key?

    Equality, as a dict sees it (``b"a"`` is not ``"a"``, a tuple is not a
    list; ``1`` and ``1.0`` are one key). Records compare by namespace and
    fields: the simulator imports a project once per worker incarnation, so
    the class the registry decodes to may be another incarnation's copy of
    the key's class.
    """
    if type(key) in _PLAIN_KEYS:  # the common keys, without the import below (a write of a new key)
        return bool(back == key)
    from detstream.models import Record

    if isinstance(key, Record):
        return (isinstance(back, Record)
                and back._options.namespace == key._options.namespace
                and back._values() == key._values())
    if type(key) is tuple:
        return (type(back) is tuple and len(back) == len(key)
                and all(_same_key(b, k) for b, k in zip(back, key, strict=True)))
    return bool(back == key)


def _tp(record: ConsumerRecord) -> str:
    return f"{record.topic}[{record.partition}]"


def _move_offsets_past_skipped(
    store: Store, records: list[ConsumerRecord], applied: list[ConsumerRecord]
) -> None:
    """Skipped records at the end of a batch: the store's offset still moves past them."""
    last: dict[int, int] = {}
    for record in records:
        last[record.partition] = max(last.get(record.partition, -1), record.offset)
    for record in applied:
        if last.get(record.partition) == record.offset:
            del last[record.partition]
    for partition, offset in sorted(last.items()):
        stored = store.persisted_offset(partition)
        if stored is None or offset > stored:
            store.set_persisted_offset(partition, offset)


def _trace_write(tracer: Tracer, table: str, partition: int, key: Any, value: Any) -> None:
    """The ``table-write`` step (the atoms path when key and value are immutable atoms)."""
    if not tracer.enabled:
        return
    if type(key) in ATOMS and type(value) in ATOMS:
        tracer.record_atoms(
            "table-write", {"table": table, "partition": partition, "key": key, "value": value}
        )
    else:
        tracer.record("table-write", table=table, partition=partition, key=key, value=value)
