"""The App: registry of topics, agents, tables and timers, and their lifecycle.

An App is a mode Service. Starting it connects to the broker named by the
``broker`` setting (the URL scheme picks the transport driver), starts the
agents, declares internal topics and the topics agents consume (created if
missing, unless ``topic_allow_declare`` is off), joins the consumer group and
then starts tasks and timers. Stopping it is graceful: events in hand finish, offsets are
committed and produced records flushed before the group is left.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any

from mode import Service

from . import faust_settings
from ._types import TP, RecordMetadata
from .agent import Agent
from .app_tasks import AppSources
from .autodiscover import defining_module, init_worker
from .channel import Channel
from .codecs import warn_if_unsafe_pickle
from .engine.buffer import SubscriberBuffer
from .engine.conductor import Conductor
from .engine.producer import ProducerBuffer
from .engine.send_failures import failure_handler
from .engine.stats import SendStats
from .errors import ImproperlyConfigured, InvalidArgument
from .fixups.base import Fixup
from .flow_control import FlowControl
from .monitor import Monitor
from .mutants import on as mutant_on
from .mutants import register as register_mutant
from .rpc.agent_rpc import maybe_start_replies
from .sensors import Sensor, SensorDelegate
from .serializer_registry import Registry
from .settings import Settings, build_settings, url_text
from .signals import Signal, SyncSignal
from .stopping import stop_each
from .stream import Stream
from .subscriptions import TopicSubscriptions
from .tables.global_table import GlobalTable, GlobalTableManager
from .tables.recovery import TableManager
from .tables.set_table import SetGlobalTable, SetTable
from .tables.table import Table
from .topic import Topic
from .tracing import AtomsHook, TraceHook, Tracer
from .transport import driver_class
from .transport.base import Transport
from .web import Router, Web
from .web.cache_backends import CacheBackend

#: re-opens issue 9's unclean stop: a graceful stop waits for an unreachable broker past
#: the shutdown timeout (then it is cancelled half way, clients unclosed).
STOP_UNBOUNDED = register_mutant(
    "stop-unbounded", "a graceful stop waits for an unreachable broker with no deadline"
)

logger = logging.getLogger(__name__)

#: a table of any kind (the App's ``Table`` method shadows the class name in its body).
_AnyTable = Table[Any, Any]


class App(Service):
    """A detstream application (Faust's ``faust.App``).

    Example::

        app = detstream.App('word-counts', broker='kafka://localhost:9092')

        @app.agent(app.topic('words', value_type=str))
        async def count(words):
            async for word in words:
                print(word)
    """

    on_before_configured = SyncSignal()
    on_configured = SyncSignal()
    on_after_configured = SyncSignal()
    on_worker_init = SyncSignal()
    on_partitions_assigned = Signal()
    on_partitions_revoked = Signal()
    #: sent once per rebalance, when the new assignment's tables are recovered and its
    #: partitions open to the agents (Faust's signal of the same name).
    on_rebalance_complete = Signal()
    #: sent once when the app stops, after its consumer and agents stopped and before its
    #: producer's final flush (Faust's signal of the same name).
    on_before_shutdown = Signal()
    #: sent for every record the app sends (topics, table changelogs, agent replies), before
    #: it goes into the producer, as ``handler(app, key=, value=, partition=, timestamp=,
    #: headers=)`` (key and value as bytes): ``headers`` is the record's list of (name,
    #: bytes) pairs, which a handler may extend (LiveCheck does). See ``produce_hook``.
    on_produce_message = SyncSignal()

    #: awaited once the app is operational, after its tasks and timers started (Faust's
    #: hook, which its Worker sets to say it is ready): ``async def`` taking no argument.
    on_startup_finished: Callable[[], Awaitable[Any]] | None = None
    #: the LiveCheck app testing this one (``app.LiveCheck()``), or None.
    livecheck: Any = None
    #: True from ``on_rebalance_start`` until ``on_rebalance_end`` (Faust's flag).
    rebalancing: bool = False
    #: rebalances begun since the app was made: ``on_rebalance_start`` counts them (Faust's).
    rebalancing_count: int = 0
    #: what the sensors' ``on_rebalance_start`` returned, for their return and end hooks.
    _rebalancing_sensor_state: Any = None

    def __init__(
        self, id: str, *, monitor: Monitor | None = None, config_source: Any = None, **settings: Any,
    ) -> None:
        self._settings = build_settings(id, settings)
        #: the id and keyword arguments this App was made with (``LiveCheck.for_app`` copies them).
        self._default_options: tuple[str, dict[str, Any]] = (id, dict(settings))
        self._conf: Settings | None = None
        self._serializers: Registry | None = None
        self._topics: list[Topic] = []
        self.agents: dict[str, Agent] = {}
        self.tables = TableManager(self)
        #: GlobalTables: read whole by every worker, outside the group (table_global.py).
        self.global_tables = GlobalTableManager(self)
        #: the app's tasks, timers and crontabs (``@app.task``, ``@app.timer``, ``@app.crontab``).
        self.sources = AppSources(self)
        #: ``config_from_object`` source and its ``silent`` flag, read when configured
        #: (``config_source=`` is the same as ``config_from_object(config_source)``).
        self._config_source: tuple[Any, bool] | None = (
            None if config_source is None else (config_source, False)
        )
        #: ``app.finalize()`` was called (Faust's flag; the worker and ``main()`` need not).
        self.finalized = False
        #: ``app.topics``: the topics the worker consumes for its streams (Faust's Conductor).
        self.topics = TopicSubscriptions(self)
        #: Faust's ``app.flow_control``: its calls and state; detstream's streams never wait on it.
        self.flow_control = FlowControl()
        #: ``@app.command`` click commands by name (see detstream.commands).
        self.commands: dict[str, Any] = {}
        self._background: list[asyncio.Future[Any]] = []
        self._declaring: dict[str, asyncio.Future[None]] = {}
        #: partition counts of consumed topics and changelogs, as found at start.
        self._partition_counts: dict[str, int] = {}
        broker = url_text(settings.get("broker"))
        #: a transport object given as ``broker=`` is used as is (tests, the sim).
        self._transport: Any = None if isinstance(broker, (str, list, tuple, type(None))) else broker
        self._producer: ProducerBuffer | None = None
        #: records sent per topic and refused sends, over every start of this app (``/metrics``).
        self.send_stats = SendStats()
        self.admin: Any = None
        #: where engine steps go (the simulator's trace, or nowhere): see tracing.py.
        self.tracer = Tracer(id)
        #: the registered sensors (``app.sensors.add(sensor)``), told of what the worker does.
        self.sensors = SensorDelegate(self)
        self._monitor: Monitor | None = None
        if monitor is not None:
            self.monitor = monitor
        self.conductor = Conductor(self)
        #: started with ``start_client()``: producer and RPC replies only (see rpc.py).
        self.client_only = False
        #: the first ``topic.send`` of an app that is not started starts it as a client:
        #: set while an ``@app.command`` runs, as Faust's commands send without starting.
        self.client_on_demand = False
        #: what serves web traffic instead of ``app.web``'s aiohttp server (``app.web_server``).
        self.web_server_service: Any = None
        #: the module that made this App: autodiscover's default origin (see autodiscover.py).
        self.defined_in = defining_module(self)
        self._fixups: list[Fixup] | None = None
        super().__init__()

    def __repr__(self) -> str:
        return f"<App: {self._settings.name}>"

    # -- configuration ----------------------------------------------------------
    @property
    def conf(self) -> Settings:
        """The settings; read and the configuration signals fired on first access.

        Precedence (last wins): defaults, ``App(**kwargs)``, ``config_from_object``,
        environment variables (see :mod:`detstream.config`).
        """
        if self._conf is None:
            from .config import resolve

            self.on_before_configured.send()
            source, silent = self._config_source or (None, False)
            conf = resolve(self._settings, source, silent=silent)
            self.on_configured.send(conf)
            self._conf = conf
            self._serializers = None
            warn_if_unsafe_pickle(conf.key_serializer, stacklevel=None)
            warn_if_unsafe_pickle(conf.value_serializer, stacklevel=None)
            self.on_after_configured.send()
        return self._conf

    @property
    def serializers(self) -> Registry:
        """The app's codecs by type (Faust's ``app.serializers``), with its
        ``key_serializer``/``value_serializer`` settings as the defaults."""
        if self._serializers is None:
            conf = self.conf
            self._serializers = Registry(conf.key_serializer, conf.value_serializer, warn=False)
        return self._serializers

    @property
    def configured(self) -> bool:
        return self._conf is not None

    @property
    def fixups(self) -> list[Fixup]:
        """The fixups enabled in this environment (Django's when ``DJANGO_SETTINGS_MODULE``
        is set), found when first read; see :mod:`detstream.fixups`."""
        if self._fixups is None:
            from .fixups import fixups

            self._fixups = list(fixups(self))
        return self._fixups

    @fixups.setter
    def fixups(self, fixups: list[Fixup]) -> None:
        self._fixups = list(fixups)

    def finalize(self) -> None:
        """Resolve the settings now (Faust's: the app is configured and ready to use).

        Faust's test fixtures call it before setting ``app.conf.store``; the
        worker, ``app.main()`` and ``app.start()`` need no call. Idempotent.
        """
        if not self.finalized:
            if not self.conf.id:
                raise ImproperlyConfigured("App requires an id: faust.App('my-app-id', ...)")
            self.finalized = True

    def config_from_object(self, obj: Any, *, silent: bool = False, force: bool = False) -> None:
        """Read settings from a dict, object, module or dotted module name when configured.

        Its settings override the App's keyword arguments; environment
        variables override both. Unknown names raise ImproperlyConfigured;
        ``silent=True`` ignores a dotted name that cannot be imported. On an
        app already configured the settings are read again at once (with a
        warning, as Faust; ``force=True`` skips the warning).
        """
        self._config_source = (obj, silent)
        if self._conf is not None:
            if not force:
                import warnings

                warnings.warn(f"{self!r} is already configured: settings are read again",
                              stacklevel=2)
            self._conf = None
            _ = self.conf

    @property
    def transport(self) -> Transport:
        if self._transport is None:
            url = self.conf.broker_url
            self._transport = driver_class(url)(url, app=self)
        return self._transport

    @transport.setter
    def transport(self, transport: Any) -> None:
        if self._producer is not None:
            raise ImproperlyConfigured("the transport of a started app cannot be replaced")
        self._transport = transport

    @property
    def producer(self) -> ProducerBuffer:
        if self._producer is None:
            raise ImproperlyConfigured(
                f"app {self.conf.id!r} is not started: start it (await app.start(), "
                "`detstream worker` or `detstream sim`) before sending to topics"
            )
        return self._producer

    @property
    def leader_topic_name(self) -> str:
        return f"{self.conf.id}-__assignor-__leader"

    @property
    def exactly_once(self) -> bool:
        return self.conf.processing_guarantee == "exactly_once"

    @property
    def transactional_id(self) -> str:
        """Exactly-once: ``{app id}-{client_name}``, one transactional producer per worker.

        Two workers with the same id fence each other, so ``client_name``
        must be unique per worker: the simulator names its workers,
        ``detstream worker`` on Kafka uses ``{host}-{pid}`` unless the app set
        ``client_name`` itself. A name that survives restarts (a pod name,
        say) is better: a restarted worker then aborts its crashed
        predecessor's open transaction at once, instead of everyone reading
        behind it until ``producer_transaction_timeout`` expires it.
        Zombies are fenced by the group generation either way (KIP-447).
        """
        return f"{self.conf.id}-{self.client_name}"

    # -- definitions --------------------------------------------------------------
    def topic(self, *topics: str, **options: Any) -> Topic:
        """Describe a Kafka topic (no I/O); see the Faust guide for arguments."""
        return Topic(self, *topics, **options)

    def channel(self, **options: Any) -> Channel:
        """An in-memory channel."""
        return Channel(self, **options)

    def stream(self, channel: Any, beacon: Any = None, **kwargs: Any) -> Stream:
        """A stream over a channel or topic (``app.stream(topic)`` is ``topic.stream()``), or over
        another stream or a plain (async) iterable (its values, with no events to ack).

        ``kwargs`` are the stream's: ``processors=[...]`` (each value passes
        through them in order; sync or async), ``enable_acks``, ``prefix``.
        ``beacon`` is Faust's (mode's service graph) and not used. As in Faust,
        a stream made while the app runs over a topic nothing consumed yet
        joins the consumer's subscription, which rebalances the group
        (``app.topics``).
        """
        from .stream_kinds import IterableStream

        if isinstance(channel, str):
            raise InvalidArgument(
                f"app.stream({channel!r}) takes a channel or topic, not a name: "
                f"app.stream(app.topic({channel!r}))"
            )
        if isinstance(channel, Channel):
            return channel.stream(**kwargs)
        return IterableStream(channel, app=self, **kwargs)

    def agent(
        self, channel: Channel | str | None = None, *, name: str | None = None, **options: Any
    ) -> Callable[[Callable[..., Any]], Agent]:
        """Decorate ``async def f(stream)`` as a stream processor."""

        def decorate(fun: Callable[..., Any]) -> Agent:
            agent: Agent[Any] = Agent(fun, app=self, channel=channel, name=name, **options)
            if agent.name in self.agents:
                raise InvalidArgument(f"agent {agent.name!r} is defined twice; give one a name=")
            self.agents[agent.name] = agent
            return agent

        return decorate

    actor = agent

    def command(
        self, *options: Any, name: str | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Any]:
        """Make ``async def`` a ``detstream`` subcommand (``python proj.py NAME``).

        ``options`` are ``detstream.cli.main.option(...)`` / ``argument(...)``;
        the docstring is the help. See :mod:`detstream.commands`.
        """
        from .commands import make_command

        def decorate(f: Callable[..., Any]) -> Any:
            cmd = make_command(self, f, options, name=name, **kwargs)
            if cmd.name in self.commands:
                raise InvalidArgument(f"command {cmd.name!r} is defined twice; give one a name=")
            self.commands[str(cmd.name)] = cmd
            return cmd

        return decorate

    def service(self, service: Any) -> Any:
        """Start a ``mode.Service`` with the app (and stop it with the app).

        Decorating a Service class registers an instance of it and returns
        the class; given an instance, registers it and returns it. An
        instance added to a running app is started at once.
        """
        if isinstance(service, type):
            if not issubclass(service, Service):
                raise InvalidArgument(f"@app.service needs a mode.Service subclass, got {service!r}")
            self._add_service(service())
            return service
        if not isinstance(service, Service):
            raise InvalidArgument(
                f"app.service() needs a mode.Service class or instance, got {service!r}"
            )
        return self._add_service(service)

    def _add_service(self, service: Any) -> Any:
        if self._started.is_set() and not self.should_stop:
            self._background.append(asyncio.ensure_future(self.add_runtime_dependency(service)))
        else:
            self.add_dependency(service)
        return service

    def Table(self, name: str, **options: Any) -> Table:  # noqa: N802 - Faust's API
        """A distributed dict backed by a changelog topic."""
        table: Table[Any, Any] = Table(self, name, **options)
        self.tables.add(table)
        return table

    def GlobalTable(self, name: str, **options: Any) -> GlobalTable:  # noqa: N802 - Faust's API
        """A table every worker holds whole (reads see every key); see detstream.tables.global_table."""
        table = GlobalTable(self, name, **options)
        self.global_tables.add(table)
        return table

    def SetTable(self, name: str, **options: Any) -> SetTable:  # noqa: N802 - Faust's API
        """A table whose values are sets: ``table[k].add(x)``; see detstream.tables.set_table."""
        table = SetTable(self, name, **options)
        self.tables.add(table)
        return table

    def SetGlobalTable(self, name: str, **options: Any) -> SetGlobalTable:  # noqa: N802 - Faust's API
        """A SetTable every worker holds whole."""
        table = SetGlobalTable(self, name, **options)
        self.global_tables.add(table)
        return table

    def page(
        self, path: str, *, name: str | None = None, base: Any = None,
        cors_options: Mapping[str, Any] | None = None,
    ) -> Callable[[Any], Any]:
        """Serve ``async def view(web, request)`` or a ``web.View`` subclass at ``path``.

        ``cors_options`` ({origin or "*": ResourceOptions or dict}) lets pages of
        other origins call it (:mod:`detstream.web.cors`). See
        :mod:`detstream.web`; ``app.web.client()`` calls views in-process.
        """
        return self.web.page(path, name=name, base=base, cors_options=cors_options)

    def web_server(self, service: Any) -> Any:
        """Serve this app's web traffic with ``service`` instead of the aiohttp server of ``app.web``.

        ``service`` is a mode ``Service`` class (made by the worker when it
        starts) or instance, such as the one ``detstream.contrib.asgi.serve_asgi``
        registers. A worker with ``web_enabled`` then starts it once the app has
        started (its consumer group joined), instead of the server of
        ``@app.page`` views, and stops it before the app, so that requests in
        flight still reach a running app. Returns ``service`` (usable as a class
        decorator), as Faust's ``app.web_server``.
        """
        if not (isinstance(service, Service)
                or (isinstance(service, type) and issubclass(service, Service))):
            raise InvalidArgument(
                f"app.web_server() needs a mode.Service class or instance, got {service!r}"
            )
        self.web_server_service = service
        return service

    def table_route(
        self, table: _AnyTable, shard_param: str | None = None, *, query_param: str | None = None,
        match_info: str | None = None, exact_key: Any = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Route a view to the worker holding a key of ``table`` (under ``@app.page``).

        The key is ``request.match_info[match_info]``, ``request.query[query_param]``
        or ``exact_key``; the view runs on the worker that holds it, any other
        worker proxies the request there. See :mod:`detstream.web.router`.
        """
        from .web.router import route_view

        return route_view(self.router, table, shard_param, query_param=query_param,
                          match_info=match_info, exact_key=exact_key, kind="table")

    def topic_route(
        self, topic: Topic[Any], shard_param: str | None = None, *, query_param: str | None = None,
        match_info: str | None = None, exact_key: Any = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Route a view to the worker processing a key of ``topic`` (as ``table_route``)."""
        from .web.router import route_view

        return route_view(self.router, topic, shard_param, query_param=query_param,
                          match_info=match_info, exact_key=exact_key, kind="topic")

    # -- rebalances (Faust's overridable hooks; the conductor calls them) ----------
    def on_rebalance_start(self) -> None:
        """A rebalance begins: the revoke every rejoin starts with (or an assignment that
        came without one), before anything else of it is done.

        Sets ``rebalancing``, counts it in ``rebalancing_count`` and tells the
        sensors. Override it to act at that point, and call ``super()``, as in
        Faust: the flag, the count and the sensors depend on it.
        """
        self.rebalancing = True
        self.rebalancing_count += 1
        sensors = self.sensors
        self._rebalancing_sensor_state = (
            sensors.on_rebalance_start(self) if sensors.enabled else None
        )

    def on_rebalance_return(self) -> None:
        """The new assignment was taken (the rebalance listener returned; tables may still
        recover). Tells the sensors; override it and call ``super()``."""
        state = self._rebalancing_sensor_state
        if state is not None and self.sensors.enabled:
            self.sensors.on_rebalance_return(self, state)

    def on_rebalance_end(self) -> None:
        """The rebalance is over: its partitions are open to the agents (tables recovered,
        after ``on_rebalance_complete``). Clears ``rebalancing`` and tells the sensors;
        override it and call ``super()``.

        A rebalance replaced by the next one before it ended gets no end (the next
        one's start follows), nor does one under way when the worker stops.
        """
        self.rebalancing = False
        state, self._rebalancing_sensor_state = self._rebalancing_sensor_state, None
        if state is not None and self.sensors.enabled:
            self.sensors.on_rebalance_end(self, state)

    @property
    def monitor(self) -> Monitor:
        """Faust's statistics sensor (``detstream.monitor``), made and registered on first use.

        It counts from when it is registered: ``App(monitor=...)``, the first read of
        ``app.monitor``, or the start of an app with ``web_stats_enabled`` (or
        ``debug``), which serves it at ``/``. An app that never asks pays nothing.
        """
        if self._monitor is None:  # Faust's ``Monitor`` setting names the class
            monitor_class = faust_settings.resolve_class(self.conf.Monitor) or Monitor
            self.monitor = monitor_class()
        assert self._monitor is not None
        return self._monitor

    @monitor.setter
    def monitor(self, monitor: Monitor) -> None:
        if not isinstance(monitor, Sensor):
            raise InvalidArgument(
                f"app.monitor must be a detstream.Monitor (or another Sensor), got {monitor!r}"
            )
        if self._monitor is not None:
            self.sensors.discard(self._monitor)
        self._monitor = monitor
        self.sensors.add(monitor)

    @property
    def router(self) -> Router:
        """Where table keys and topic keys are processed, and routing web requests there."""
        router = self.__dict__.get("_router")
        if router is None:
            router = self.__dict__["_router"] = Router(self)
        return router

    @property
    def web(self) -> Web:
        """The app's web views (``detstream.web.Web``): pages, routing, in-process client."""
        web = self.__dict__.get("_web")
        if web is None:
            web = self.__dict__["_web"] = Web(self)
        return web

    @property
    def cache(self) -> CacheBackend:
        """The cache the ``cache`` setting names: view answers (detstream.web.cache), and for
        the app's own use (``await app.cache.get(key)``; a Redis cache's ``client``)."""
        cache = self.__dict__.get("_cache")
        if cache is None:
            from .web.cache_backends import backend_for_url

            cache = self.__dict__["_cache"] = backend_for_url(self, self.conf.cache)
        return cache

    @property
    def http_client(self) -> Any:
        """An aiohttp ``ClientSession`` (Faust's), made on first use and closed when the app stops.

        Its requests carry the headers of ``app.web.client_headers`` (LiveCheck's
        test headers). Under ``detstream sim`` its requests are refused, as
        every socket is.
        """
        client = self.__dict__.get("_http_client")
        if client is None:
            from .web.server import new_http_client

            client = self.__dict__["_http_client"] = new_http_client(self.web.client_headers)
        return client

    @http_client.setter
    def http_client(self, client: Any) -> None:
        self.__dict__["_http_client"] = client

    def LiveCheck(self, **options: Any) -> Any:  # noqa: N802 - Faust's API
        """A LiveCheck app testing this one end to end (``detstream.livecheck``).

        Options are LiveCheck's (``test_topic_name``, ``send_reports``, ...) and
        App settings overriding this app's for it (``web_port`` is 9999 by default).
        """
        from .livecheck import LiveCheck

        return LiveCheck.for_app(self, **options)

    async def send(
        self, channel: Channel | str, key: Any = None, value: Any = None, **kwargs: Any
    ) -> asyncio.Future[RecordMetadata] | None:
        """Send to a topic (by object or name) or channel.

        A topic returns the future of the broker's ack (as ``Topic.send``),
        an in-memory channel None.
        """
        target = self._topic_named(channel) if isinstance(channel, str) else channel
        return await target.send(key=key, value=value, **kwargs)

    def _topic_named(self, name: str) -> Topic:
        """The app's topic description for ``name`` (made once, not per send)."""
        for topic in self._topics:
            if tuple(topic.topics) == (name,):
                return topic
        return self.topic(name)

    def send_threadsafe(
        self, channel: Channel | str, key: Any = None, value: Any = None, **kwargs: Any
    ) -> concurrent.futures.Future[RecordMetadata | None]:
        """``app.send`` from another thread: returns a future of the broker's ack.

        The send runs on the app's event loop (``asyncio.run_coroutine_threadsafe``);
        the running app must not be in this thread. See :mod:`detstream.threadsafe`.
        """
        from .threadsafe import send_threadsafe

        return send_threadsafe(self, channel, key=key, value=value, **kwargs)

    def discover(self, *extra_modules: str) -> list[str]:
        """Import the ``autodiscover`` modules (and ``extra_modules``) so their decorators register.

        Runs once per module list; returns the modules imported now. See
        :mod:`detstream.autodiscover`.
        """
        from .autodiscover import discover

        return discover(self, *extra_modules)

    def partition_count(self, topic: str) -> int | None:
        """Partitions of a consumed topic or changelog, as found when the app started (None: unknown)."""
        return self._partition_counts.get(topic)

    def is_leader(self) -> bool:
        """True on the one worker holding the leader topic's partition."""
        return TP(self.leader_topic_name, 0) in self.conductor.assignment()

    @property
    def in_recovery(self) -> bool:
        """True while the tables of this worker's assignment are being recovered (Faust's flag)."""
        return self.tables.recovering

    async def commit(self, topics: Any = None) -> bool:
        """Commit the offsets of every event processed so far (Faust's ``app.commit``).

        Faust's ``topics`` narrows the commit to some topics; detstream commits
        every acked offset at once (under exactly-once, with the open
        transaction), so it is taken and all are committed. False if the
        commit was held back or refused (the worker's membership in doubt,
        or the group moved on).
        """
        return await self.conductor.commit()

    def worker_init(self) -> None:
        """What a worker does first (Faust's): autodiscovery, then ``on_worker_init``; once."""
        init_worker(self)

    def Worker(self, *services: Any, **options: Any) -> Any:  # noqa: N802 - Faust's factory
        """A ``detstream.Worker`` for this app (Faust's ``app.Worker(**kw)``)."""
        from .worker import Worker

        return Worker(self, *services, **options)

    # -- tasks, timers and crontabs (app_tasks.AppSources) ----------------------
    # Faust's ``@app.timer``/``@app.crontab`` deliberately replace mode's Service
    # class decorators of those names, with another signature.
    def task(  # type: ignore[override]
        self, fun: Callable[..., Any] | None = None, *, on_leader: bool = False, traced: bool = True,
    ) -> Any:
        """Run ``fun`` once the app is operational (``fun()`` or ``fun(app)``); see AppSources."""
        return self.sources.task(fun, on_leader=on_leader, traced=traced)

    def timer(  # type: ignore[override]
        self, interval: float | timedelta, *, on_leader: bool = False, name: str | None = None,
        traced: bool = True, max_drift_correction: float = 0.1,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the decorated function every ``interval`` seconds (first run after one interval)."""
        return self.sources.timer(interval, on_leader=on_leader, name=name, traced=traced,
                                  max_drift_correction=max_drift_correction)

    def crontab(  # type: ignore[override]
        self, cron_format: str, *, timezone: Any = None, on_leader: bool = False,
        name: str | None = None, traced: bool = True,
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Run the decorated function at the times of ``cron_format`` (5 fields, ``timezone``)."""
        return self.sources.crontab(cron_format, timezone=timezone, on_leader=on_leader, name=name,
                                    traced=traced)

    def source_names(self) -> list[str]:
        """Labels of the tasks, timers and crontabs this app runs (``timer:mod.fun``, ...)."""
        return self.sources.names()

    async def stop_sources(self) -> None:
        """Stop the app's own sources of work: cancel every task, timer and crontab.

        Agents, the consumer group, commits and the producer keep running, so
        what the sources sent is still processed. Once called, a later start
        of this app starts none of them. Idempotent.
        """
        await self.sources.stop()

    def task_failure(self) -> BaseException | None:
        """The error of an engine loop or background task of this app that died, if one did."""
        for task in [*self.conductor.tasks, *self._background]:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None

    def _spawn_background(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        """Run ``coro`` as a task of this app: cancelled when it stops, watched by the worker."""
        future = asyncio.ensure_future(coro)
        self._background.append(future)
        return future

    # -- registry used by the engine ------------------------------------------
    def _register_topic(self, topic: Topic) -> None:
        self._topics.append(topic)
        if self._producer is not None and topic.internal and not self.should_stop:
            self.declared(topic)  # made while running: it must exist before its first send

    def declared(self, topic: Topic) -> asyncio.Future[None]:
        """A future done once ``topic`` exists on the broker (declared once per app).

        A topic made after start (``group_by`` in a running agent) must exist
        before the first record is sent to it: on Kafka that send would
        auto-create it with the broker's default partition count and silently
        break co-partitioning.
        """
        key = topic.label
        future = self._declaring.get(key)
        if future is None:
            future = asyncio.ensure_future(self._declare_late(topic))
            self._declaring[key] = future
            self._background.append(future)
        return future

    async def _declare_late(self, topic: Topic) -> None:
        await topic.declare()
        self.conductor.resubscribe()

    def subscriber_queues(self, topic_name: str) -> list[SubscriberBuffer[Any]]:
        return [q for t in self._topics if t.matches(topic_name) for q in t.subscribers]

    def acking_topics(self) -> list[Topic]:
        return [t for t in self._topics if t.subscribers and (t.topics or t.pattern)]

    @property
    def client_name(self) -> str:
        """This app instance's name: in traces (the sim sets it per worker), as the
        consumer's client id, and in the transactional id under exactly-once, so it
        must differ between the workers of one app (see ``transactional_id``)."""
        return self.tracer.client_name

    @client_name.setter
    def client_name(self, name: str) -> None:
        self.tracer.client_name = name

    @property
    def trace_hook(self) -> TraceHook | None:
        """Called as ``hook(client_name, kind, **fields)`` with every traced step; set by the simulator."""
        return self.tracer.hook

    @trace_hook.setter
    def trace_hook(self, hook: TraceHook | None) -> None:
        self.tracer.hook = hook

    @property
    def trace_atoms_hook(self) -> AtomsHook | None:
        """Called as ``hook(client_name, kind, fields)`` with the hottest steps (their values
        immutable: see ``Tracer.record_atoms``); set by the simulator with ``trace_hook``."""
        return self.tracer.atoms_hook

    @trace_atoms_hook.setter
    def trace_atoms_hook(self, hook: AtomsHook | None) -> None:
        self.tracer.atoms_hook = hook

    # -- lifecycle -------------------------------------------------------------------
    async def on_start(self) -> None:
        conf = self.conf
        self.loop = asyncio.get_running_loop()  # app.loop: where other threads send to
        self.discover()  # a no-op when autodiscover is off or the worker already did it
        transport = self.transport
        self.admin = transport.create_admin(client_id=conf.broker_client_id)
        if self.exactly_once and not self.client_only:  # a client commits no offsets
            producer = transport.create_producer(
                client_id=conf.broker_client_id,
                transactional_id=self.transactional_id,
                transaction_timeout=float(conf.producer_transaction_timeout),
            )
            self._producer = ProducerBuffer(producer, transactional=True, stats=self.send_stats)
        else:
            self._producer = ProducerBuffer(
                transport.create_producer(client_id=conf.broker_client_id), stats=self.send_stats
            )
        if conf.web_stats_enabled and not self.client_only:
            _ = self.monitor  # served at `/`: counting from the start
        self._producer.on_failure = failure_handler(self)  # a refused send fails its event
        self._producer.sensors = self.sensors
        await self._producer.start()
        if self.client_only:  # start_client(): no group, no agents, tasks or timers
            await maybe_start_replies(self)
            return
        await self.global_tables.start()  # every global table read to its end before any event
        for agent in self.agents.values():
            await agent.start()
        for _ in range(3):
            await asyncio.sleep(0)  # actors run to their first await: group_by declares topics
        await self.admin.create_topic(self.leader_topic_name, partitions=1)
        for topic in list(self._topics):
            if topic.internal or topic.subscribers:  # Faust: what agents consume, and changelogs
                await topic.declare()
        await self._check_copartitioning()
        await self.conductor.start()
        await maybe_start_replies(self)
        self._spawn_background(self._start_sources_when_operational())

    async def _start_sources_when_operational(self) -> None:
        """Start tasks, timers and crontabs once the first assignment's tables are recovered.

        Faust starts them then ("once the app is fully operational"), so a task
        that reads a table at start sees it recovered, and a timer's first
        interval counts from there.
        """
        await self.conductor.operational.wait()
        self.sources.start(self._spawn_background)
        if self.on_startup_finished is not None:
            await self.on_startup_finished()

    async def _check_copartitioning(self) -> None:
        """Note the partition counts of consumed topics and changelogs; warn about a table
        whose changelog's count no consumed topic has.

        A table partition lives with the partition of the event that wrote it,
        so a table's changelog needs the partition count of the topic its
        agent reads (the assignor co-partitions topics of equal counts). Which
        agent writes which table shows only at the first write, which checks
        its own source (``Table._check_source``).
        """
        changelogs = {t.changelog_name: t for t in self.tables.tables.values()}
        sources = sorted(
            {name for t in self._topics if t.subscribers for name in t.topics}
            - set(changelogs) - {self.leader_topic_name}
        )
        counts: dict[str, int] = {}
        for name in sorted({*sources, *changelogs}):
            count = await self.admin.partitions_for(name)
            if count is not None:
                counts[name] = count
        self._partition_counts = counts
        known = [s for s in sources if s in counts]
        for name, table in sorted(changelogs.items()):
            count = counts.get(name)
            if count is None or table.use_partitioner or not known:
                continue
            if any(counts[s] == count for s in known):
                continue
            inputs = ", ".join(f"{s!r} has {counts[s]}" for s in known)
            logger.warning(
                "table %r: its changelog %r has %d partitions, but no topic an agent consumes "
                "has %d (%s). A table must be co-partitioned with the topic whose events write "
                "it (the same partition count), or its partitions are recovered on other "
                "workers than their events: give the table or the topic partitions=",
                table.name, name, count, count, inputs,
            )
            self.tracer.record("copartition-mismatch", table=table.name, changelog=name,
                               changelog_partitions=count, sources=known,
                               source_partitions=[counts[s] for s in known])

    #: loop time by which a graceful stop should be done, or None (no bound). ``detstream
    #: worker`` sets it from its shutdown timeout: past it the final commit and the
    #: producer's flush are given up and the clients closed at once (``stop_budget``).
    stop_deadline: float | None = None

    def stop_budget(self) -> float | None:
        """Seconds left before ``stop_deadline`` (0 when past), None when stopping is unbounded."""
        if self.stop_deadline is None or mutant_on(STOP_UNBOUNDED):
            return None
        return max(self.stop_deadline - asyncio.get_running_loop().time(), 0.0)

    async def on_stop(self) -> None:
        """Stop everything, last started first; a step that fails does not skip the others.

        With the broker unreachable the final commit and the producer's flush
        cannot finish: under a ``stop_deadline`` they are given up at it (their
        work is redone by the partitions' next owner, as after a crash) and
        every client is still closed. The first error is raised at the end.
        """
        for task in reversed(self._background):
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        self._background = []
        steps: list[tuple[str, Callable[[], Any]]] = [("the consumer", self.conductor.stop)]
        steps += [(f"agent {agent.name}", agent.stop) for agent in reversed(list(self.agents.values()))]
        steps.append(("an on_before_shutdown handler", self.on_before_shutdown.send))
        if self._producer is not None:
            steps.append(("the producer", self._stop_producer))
        steps.append(("global tables", self.global_tables.stop))
        stop_admin = getattr(self.admin, "stop", None)  # drivers holding a connection
        if stop_admin is not None:
            steps.append(("the admin client", stop_admin))
        http_client = self.__dict__.pop("_http_client", None)  # made on first use, if at all
        if http_client is not None:
            steps.append(("the HTTP client", http_client.close))
        cache = self.__dict__.get("_cache")  # made on first use; a closed one reconnects
        if cache is not None:
            steps.append(("the cache", cache.close))
        await stop_each(steps, logger)  # each driver client bounds its own close (stop_budget)

    async def give_up_stopping(self) -> None:
        """The final commit was given up (``EngineHost.give_up_stopping``): the deadline is now,
        and the producer closes at once, its pending sends failed and its requests discarded."""
        self.stop_deadline = asyncio.get_running_loop().time()
        if self._producer is not None:
            await self._producer.close()

    async def _stop_producer(self) -> None:
        """Flush and close the producer; past ``stop_deadline`` the flush is given up."""
        assert self._producer is not None
        if self._producer.closed:  # closed already when the stop gave up its final commit
            return
        budget = self.stop_budget()
        if budget is None:
            await self._producer.stop()
            return
        # At least a moment: a stop cancelled before it ran would not close the client at all.
        budget = max(budget, 1.0)
        try:  # the producer's own close then sees no time left, and closes at once
            await asyncio.wait_for(self._producer.stop(), budget)
        except asyncio.TimeoutError:
            self.tracer.record("stop-gave-up", step="producer-flush")
            logger.warning(
                "the producer could not deliver its pending records within %.1fs while stopping "
                "(is the broker reachable?): closed without them; their events are not committed "
                "and their partitions' next owner processes them again", budget,
            )
            client = getattr(self._producer, "_producer", None)  # closed already, normally
            if client is not None:
                await client.stop()

    async def start_client(self) -> None:
        """Start as a client only (scripts, ``detstream send``, RPC callers).

        The producer, and the reply consumer for ``agent.ask()``: no consumer
        group, no agents, tasks or timers. ``ask`` starts it by itself on an
        app that is not started. A client cannot later become a worker.
        """
        self.client_only = True
        await self.maybe_start()

    async def maybe_start_client(self) -> None:
        """Start as a client (``start_client``) unless the app is started already."""
        if not self._started.is_set():
            await self.start_client()

    def main(self) -> None:
        """Run the ``detstream`` CLI for this app (``python proj.py worker -l info``)."""
        from .cli.main import run_for_app
        from .errors import AutodiscoverError

        try:
            init_worker(self)  # as Faust's main(): autodiscover, then on_worker_init
        except AutodiscoverError as exc:  # a usage error, as a bad `-A` target is
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        run_for_app(self)
