"""``app.router``: which worker a table key or a topic key belongs to, and sending a web request there.

A table partition lives on the worker processing the same partition of its
source topic, so a web view showing a table value must run on that worker.
``@app.table_route(table, match_info="word")`` (and ``topic_route`` for a
topic's keys) wraps a view: the key is read from the request, its partition
found, and the request answered locally when this worker processes that
partition, else *proxied* to the worker that does (its response returned as
it is), as Faust does.

**Where a key is.** Each member tells the group leader its web URL
(``canonical_url``, default ``http://{web_host}:{web_port}``), and the leader
tells every member the URL of every member's partitions
(``detstream.assignor_wire``); ``partition_urls`` is that map. A key's
partition:

- for a topic, Kafka's partitioner over the key as the topic encodes it;
- for a table made with ``use_partitioner=True``, the same over its
  changelog key;
- for other tables, the same over the key as the topic the table is written
  from encodes it (the first such topic this worker saw; else as a topic
  with the app's ``key_serializer`` would). Faust hashes the changelog's key
  bytes instead, which are JSON while the source key is usually raw, so its
  ``table_route`` sends a ``str`` key to the wrong worker; see
  docs/faust-differences.md.

A key this worker holds in one of its active partitions is always answered
here, whatever the hash says. A routed request carries the header
``Detstream-Routed``; a worker receiving one answers it itself, so two
workers that disagree about an owner (mid-rebalance) cannot bounce a request
between them. No owner known (no assignment yet, a worker without a web
server) answers 503.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from detstream._types import TP
from detstream.errors import InvalidArgument, SameNode
from detstream.partitioner import partition_for_key

from .views import Request, Response, View, WebError

if TYPE_CHECKING:
    from detstream.app import App
    from detstream.tables.table import Table
    from detstream.topic import Topic

__all__ = ["ROUTED_HEADER", "Forward", "Router", "ServiceUnavailable", "route_view"]

#: marks a request one worker sent to another: the receiver answers it itself.
ROUTED_HEADER = "Detstream-Routed"

#: ``forward(url, request) -> Response``: send ``request`` to the worker at ``url``.
Forward = Callable[[str, Request], Awaitable[Response]]


class ServiceUnavailable(WebError):
    """No worker is known to hold the key (no assignment yet, or its owner serves no web)."""

    code, detail = 503, "Service Unavailable"


class Router:
    """``app.router`` (Faust's name): key owners, and routing requests to them."""

    def __init__(self, app: App) -> None:
        self.app = app
        #: how a request reaches another worker; the default proxies it over HTTP (aiohttp).
        self.forward: Forward = _forward_http

    # -- where things are --------------------------------------------------------------
    def partition_urls(self) -> dict[TP, str]:
        """The web URL of the worker processing each partition, as the group's last assignment said."""
        consumer = self.app.conductor.consumer
        return consumer.partition_urls() if consumer is not None else {}

    def table_partition(self, table: Table[Any, Any] | str, key: Any) -> int:
        """The partition of ``table`` that holds ``key`` (see the module doc)."""
        table = self._table(table)
        partitions = table.changelog_partitions
        if table.use_partitioner:
            data = table.changelog_topic.schema.encode_key(key, default_serializer="json")
            return _hashed(data, partitions, table.name)
        source = self._source_topic(table)
        if source is not None:
            return self.topic_partition(source, key, partitions=partitions)
        data = self._app_key_bytes(key)
        return _hashed(data, partitions, table.name)

    def topic_partition(self, topic: Topic[Any], key: Any, *, partitions: int | None = None) -> int:
        """The partition of ``topic`` a record with ``key`` goes to (Kafka's default partitioner)."""
        name = topic.get_topic_name()
        count = partitions or self.app.partition_count(name) or topic.partitions
        count = count or self.app.conf.topic_partitions
        return _hashed(topic.key_bytes(key), count, name)

    def key_store(self, table_name: str, key: Any) -> str:
        """The web URL of the worker holding ``key`` of the table (``ServiceUnavailable``: none)."""
        table = self._table(table_name)
        return self._url_of(TP(table.changelog_name, self.table_partition(table, key)))

    def external_topic_key_store(self, topic: Topic[Any], key: Any) -> str:
        """The web URL of the worker processing ``key`` of ``topic``."""
        return self._url_of(TP(topic.get_topic_name(), self.topic_partition(topic, key)))

    def table_metadata(self, table_name: str) -> dict[str, dict[str, list[int]]]:
        """``{url: {changelog topic: [partitions]}}`` for the table (Faust's shape)."""
        return self._metadata({self._table(table_name).changelog_name})

    def tables_metadata(self) -> dict[str, dict[str, list[int]]]:
        """``{url: {changelog topic: [partitions]}}`` for every table."""
        return self._metadata({table.changelog_name for table in self.app.tables.tables.values()})

    def external_topics_metadata(self) -> dict[str, dict[str, list[int]]]:
        """``{url: {topic: [partitions]}}`` for the topics agents consume."""
        changelogs = {table.changelog_name for table in self.app.tables.tables.values()}
        return self._metadata({tp.topic for tp in self.partition_urls()} - changelogs)

    # -- routing -----------------------------------------------------------------------------
    async def route_req(self, table_name: str, key: Any, web: View, request: Request) -> Response:
        """Answer from the worker holding ``key``; raises ``SameNode`` when that is this one."""
        table = self._table(table_name)
        tp = TP(table.changelog_name, self.table_partition(table, key))
        if self._held_here(table, key):
            raise SameNode(f"table {table.name!r} key {key!r} is held by this worker")
        return await self._route(tp, request)

    async def route_topic_req(self, topic: Topic[Any], key: Any, web: View, request: Request) -> Response:
        """Answer from the worker processing ``key`` of ``topic``; ``SameNode`` when this one does."""
        return await self._route(TP(topic.get_topic_name(), self.topic_partition(topic, key)), request)

    async def _route(self, tp: TP, request: Request) -> Response:
        if ROUTED_HEADER in request.headers or tp in self.app.conductor.assignment():
            raise SameNode(f"{tp} is processed by this worker")
        url = self._url_of(tp)
        if _same_url(url, self.app.conf.canonical_url):
            raise SameNode(f"{tp} is processed by this worker ({url})")
        return await self.forward(url, request)

    # -- helpers ------------------------------------------------------------------------------
    def _url_of(self, tp: TP) -> str:
        url = self.partition_urls().get(tp)
        if url is None:
            raise ServiceUnavailable(f"no worker is known to process {tp} yet")
        return url

    def _held_here(self, table: Table[Any, Any], key: Any) -> bool:
        try:
            partition = table.data.partition_of(key)
        except Exception:  # a key the store cannot encode is not held here
            return False
        return partition is not None and TP(table.changelog_name, partition) in self.app.conductor.assignment()

    def _table(self, table: Table[Any, Any] | str) -> Table[Any, Any]:
        if not isinstance(table, str):
            return table
        found = self.app.tables.tables.get(table)
        if found is None:
            raise InvalidArgument(f"app {self.app.conf.id!r} has no table {table!r}")
        return found

    def _source_topic(self, table: Table[Any, Any]) -> Topic[Any] | None:
        """The topic this worker saw the table written from (the first, by name)."""
        from detstream.topic import Topic

        for name in sorted(table._sources_checked):
            for topic in self.app._topics:
                if isinstance(topic, Topic) and tuple(topic.topics) == (name,):
                    return topic
        return None

    def _app_key_bytes(self, key: Any) -> bytes | None:
        from detstream.serializers import Schema

        if isinstance(key, bytes):  # sent as it is, whatever the codec (as a topic sends it)
            return key
        return Schema().encode_key(key, default_serializer=self.app.conf.key_serializer)

    def _metadata(self, topics: set[str]) -> dict[str, dict[str, list[int]]]:
        result: dict[str, dict[str, list[int]]] = {}
        for tp, url in sorted(self.partition_urls().items()):
            if tp.topic in topics:
                result.setdefault(url, {}).setdefault(tp.topic, []).append(tp.partition)
        return result


def _hashed(data: bytes | None, partitions: int, what: str) -> int:
    if data is None:
        raise InvalidArgument(f"{what}: the key None has no partition to route to")
    return partition_for_key(data, partitions)


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/").lower() == b.rstrip("/").lower()


async def _forward_http(url: str, request: Request) -> Response:
    from .server import forward_request

    return await forward_request(url, request)


def route_view(
    router: Router,
    target: Any,
    shard_param: str | None,
    *,
    query_param: str | None,
    match_info: str | None,
    exact_key: Any,
    kind: str,
) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """The decorator of ``app.table_route`` (``kind="table"``) and ``app.topic_route``."""
    if shard_param is not None:
        if query_param is not None:
            raise InvalidArgument(f"{kind}_route: give shard_param or query_param, not both")
        query_param = shard_param  # Faust's older name for it
    if query_param is None and match_info is None and exact_key is None:
        raise InvalidArgument(f"{kind}_route needs one of match_info=, query_param= or exact_key=")

    def decorate(fun: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fun)
        async def routed(view: View, request: Request, *args: Any, **kwargs: Any) -> Any:
            if exact_key is not None:
                key = exact_key
            elif match_info is not None:
                key = request.match_info[match_info]
            else:
                assert query_param is not None
                if query_param not in request.query:
                    raise WebError(f"missing query parameter {query_param!r}", code=400)
                key = request.query[query_param]
            try:
                if kind == "table":
                    return await router.route_req(target.name, key, view, request)
                return await router.route_topic_req(target, key, view, request)
            except SameNode:
                return await fun(view, request, *args, **kwargs)

        return routed

    return decorate
