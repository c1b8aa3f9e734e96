"""Tables: a dict per app whose every write is also sent to a changelog topic.

A write goes to the changelog partition of the event being processed, so the
table partition lives where its source partition is consumed (use
``group_by`` so that equal table keys arrive on one partition). A worker that
is assigned a partition rebuilds it from the changelog before its agents see
new events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from ._types import TP, ConsumerRecord, RecordMetadata
from .agent import current_agent
from .errors import InvalidArgument, TableWriteError
from .events import current_event
from .stores import store_for_url

if TYPE_CHECKING:
    from .app import App
    from .topic import Topic


class Table(MutableMapping[Any, Any]):
    """``app.Table(name, ...)``: see the Faust guide for each argument."""

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
        on_changelog_event: Callable[[Any], Any] | None = None,
        recovery_buffer_size: int = 1000,
        standby_buffer_size: int | None = None,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgument(f"app.Table() needs a non-empty str name, got {name!r}")
        if default is not None and not callable(default):
            raise InvalidArgument(
                f"Table {name!r}: default must be a callable like int or list, got {default!r}"
            )
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
        self.store_url = store or app.conf.store
        self.changelog_topic = changelog_topic or app.topic(
            f"{app.conf.id}-{name}-changelog",
            key_type=key_type,
            value_type=value_type,
            key_serializer=key_serializer or "json",
            value_serializer=value_serializer or "json",
            partitions=partitions,
            compacting=True,
            acks=False,
            internal=True,
        )
        #: built after the changelog topic: a persistent store encodes with its schema.
        self.data = store_for_url(self.store_url)(url=self.store_url, table=self)

    def __repr__(self) -> str:
        return f"<Table: {self.name}>"

    # -- mapping --------------------------------------------------------------
    def __getitem__(self, key: Any) -> Any:
        try:
            return self.data.get(key)
        except KeyError:
            if self.default is None:
                raise
            return self.default()

    def __missing__(self, key: Any) -> Any:
        if self.default is None:
            raise KeyError(key)
        return self.default()

    def __setitem__(self, key: Any, value: Any) -> None:
        """Set ``key``; ``table[key] = None`` deletes it (a None value is a changelog tombstone)."""
        if value is None:
            if key in self.data:
                del self[key]
            return
        partition = self._partition_for_write("set", key)
        sent = self._send_changelog(key, value, partition)
        self.data.set(key, value, partition, sent=self.app.producer.durable(sent))

    def __delitem__(self, key: Any) -> None:
        if key not in self.data:
            raise KeyError(key)
        partition = self._partition_for_write("delete", key)
        sent = self._send_changelog(key, None, partition)
        self.data.delete(key, partition, sent=self.app.producer.durable(sent))

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[Any]:
        return self.data.keys()

    def __len__(self) -> int:
        return len(self.data)

    def as_dict(self) -> dict[Any, Any]:
        return {key: self.data.get(key) for key in self.data.keys()}

    # -- writes -----------------------------------------------------------------
    def _partition_for_write(self, op: str, key: Any) -> int:
        agent = current_agent()
        if agent is not None and agent.concurrency > 1:
            raise TableWriteError(
                f"agent {agent.name} has concurrency={agent.concurrency} and may only read "
                f"table {self.name!r}: concurrent actors process events out of order, so "
                "their writes would corrupt the changelog. Use concurrency=1 to write tables."
            )
        event = current_event()
        if event is None or event.message is None:
            raise TableWriteError(
                f"cannot {op} key {key!r} of table {self.name!r} outside of stream iteration: "
                "a table write must belong to the event being processed (write it inside "
                "`async for ... in stream`)"
            )
        return event.message.partition

    def _send_changelog(self, key: Any, value: Any, partition: int) -> asyncio.Future[RecordMetadata]:
        """Send first: a value the changelog cannot encode never reaches the store.

        The codecs are the changelog schema's, else json: what recovery and the
        rocksdb store decode with, also for a ``changelog_topic=`` given without
        serializers (the app's default key serializer is raw).
        """
        self.app._record("table-write", table=self.name, partition=partition, key=key, value=value)
        schema = self.changelog_topic.schema
        return self.changelog_topic.send_soon(
            key=key, value=value, partition=partition,
            key_serializer=schema.key_serializer or "json",
            value_serializer=schema.value_serializer or "json",
        )

    # -- recovery ---------------------------------------------------------------
    @property
    def changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()

    def apply_changelog(self, records: list[ConsumerRecord]) -> None:
        """Apply changelog records (recovery): latest value wins, None deletes."""
        schema = self.changelog_topic.schema

        def to_key(record: ConsumerRecord) -> Any:
            return schema.loads_key(record.key, default_serializer="json", **_where(record))

        def to_value(record: ConsumerRecord) -> Any:
            return schema.loads_value(record.value, default_serializer="json", **_where(record))

        self.data.apply_changelog_batch(records, to_key, to_value)

    def persisted_offset(self, tp: TP) -> int | None:
        """The last changelog offset the store holds for ``tp`` (None: replay it all)."""
        return self.data.persisted_offset(tp.partition)

    def reset_state(self) -> None:
        """Delete this worker's local data of the table (rebuilt from the changelog)."""
        self.data.reset_state()

    def on_partitions_assigned(self, tps: set[TP]) -> None:
        self.data.assign_partitions({tp.partition for tp in tps if tp.topic == self.changelog_name})

    def on_partitions_revoked(self, tps: set[TP]) -> None:
        self.data.drop_partitions({tp.partition for tp in tps if tp.topic == self.changelog_name})


def _where(record: ConsumerRecord) -> dict[str, Any]:
    return dict(topic=record.topic, partition=record.partition, offset=record.offset)
