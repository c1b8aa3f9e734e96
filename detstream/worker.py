"""The production worker: one App per process on a real broker (``detstream worker``).

A worker is the process around an App: it configures logging, prints a
banner saying what is about to run and where, starts the App, and turns
signals into a graceful stop (TERM, INT; USR1 logs every thread's and
task's stack; QUIT keeps its default, an immediate exit). The graceful stop
is the App's own ``stop()``, which finishes the events in hand, commits
their offsets and flushes the producer before leaving the consumer group,
so a deploy (TERM) neither loses nor needlessly reprocesses work. A second INT (Ctrl-C twice) exits at once;
repeated TERMs (process managers often send two) do not.

It also refuses to hang silently: while the broker is unreachable the driver
logs and retries, and once running the worker watches the App's engine tasks,
exiting with code 1 (instead of idling forever) when one of them dies.

Exit codes: 0 after a clean stop, 1 when the App failed to start, crashed,
or its graceful stop did not finish in time.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import logging.config
import os
import signal
import socket
import sys
from typing import Any, NoReturn, TextIO

from .autodiscover import init_worker
from .blocking import blocking_timeout, start_detector
from .debugging import CONSOLE_PORT, dump_stacks, start_console
from .futures import current_task_cancelling
from .stopping import SHUTDOWN_TIMEOUT, stop_deadline, stop_each
from .transport import aiokafka_logs

log = logging.getLogger(__name__)

LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOGLEVELS = ("debug", "info", "warning", "warn", "error", "critical")


class Worker:
    """Runs ``app`` in this process until TERM/INT (Faust's ``faust.Worker``).

    Example::

        Worker(app, loglevel="info").execute_from_commandline()

    ``Worker(app1, app2, ...)`` runs more apps (or any mode ``Service``) in the
    same process, as Faust's ``*services``: ``app1`` is the main app
    (``worker.app``, the one the web server and banner are about); the others
    start after it, in order, and stop before it, in reverse order. Each App
    gets its own autodiscovery, ``on_worker_init`` and worker name.
    """

    #: how often the running App's engine tasks are checked for a crash (seconds).
    watch_interval = 0.5

    def __init__(
        self,
        app: Any,
        *services: Any,
        loglevel: str = "warning",
        logfile: str | None = None,
        web_port: int | None = None,
        web_enabled: bool | None = None,
        web_bind: str | None = None,
        web_host: str | None = None,
        datadir: str | None = None,
        debug: bool | None = None,
        blocking_timeout: float | None = None,
        quiet: bool = False,
        shutdown_timeout: float = SHUTDOWN_TIMEOUT,
        console_port: int = CONSOLE_PORT,
        stdout: TextIO | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        daemon: bool = True,
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        if str(loglevel).lower() not in LOGLEVELS:
            raise ValueError(f"loglevel must be one of {', '.join(LOGLEVELS)}, got {loglevel!r}")
        self.app = app
        #: the other apps and services of this process, started after ``app`` (see above).
        self.services = _checked_services(app, services)
        #: the loop ``run()``/``stop_and_shutdown_loop()`` use (None: a new one / the current one).
        self.loop = loop
        #: ``await worker.start()`` returns only once the worker stopped (mode's default).
        self.daemon = daemon
        #: what ``run()`` returns, once the worker stopped: 0 clean, 1 failed or crashed.
        self.exit_code: int | None = None
        self._error: BaseException | None = None
        self.loglevel = "warning" if loglevel.lower() == "warn" else loglevel.lower()
        self.logfile = logfile
        self.web_port = web_port
        #: None: the app's ``web_enabled``/``web_bind``/``web_host`` settings decide.
        self.web_enabled, self.web_bind, self.web_host = web_enabled, web_bind, web_host
        self.web_server: Any = None
        #: the app's own web server (``app.web_server``, e.g. ``serve_asgi``), made at boot.
        self.app_web_server: Any = None
        #: None: the app's ``datadir``/``debug``/``blocking_timeout`` settings decide.
        self.datadir, self.debug, self.blocking_timeout = datadir, debug, blocking_timeout
        self.blocking_detector: Any = None
        #: aiomonitor's console port in debug mode, and its monitor once started.
        self.console_port = console_port
        self.console: Any = None
        self.quiet = quiet
        #: the directory to change to when the worker starts (Faust's ``workdir``; ``-W``).
        self.workdir = workdir
        if workdir is not None and not os.path.isdir(workdir):
            raise ValueError(f"workdir {os.fspath(workdir)!r} is not a directory: give an existing one")
        self.shutdown_timeout = shutdown_timeout
        self.stdout = stdout or sys.stdout
        self._stop_requested: asyncio.Event | None = None
        self._interrupts = 0
        self._start_task: asyncio.Future[None] | None = None
        self._stopped = False

    # -- process entry -------------------------------------------------------------
    def execute_from_commandline(self) -> NoReturn:
        """Run until stopped and exit the process with the worker's exit code."""
        sys.exit(self.run())

    def run(self) -> int:
        """Configure logging, run the worker on a fresh event loop; return the exit code."""
        self.setup_logging()
        if self.loop is None:
            return asyncio.run(self._main())
        try:
            return self.loop.run_until_complete(self._main())
        finally:
            _close_loop(self.loop)

    def stop_and_shutdown_loop(self) -> None:
        """Stop gracefully if still running, cancel what is left, close the loop.

        For the embedding pattern of the Faust guide (``Worker(app, loop=loop)``)::

            try:
                loop.run_until_complete(worker.start())
            finally:
                worker.stop_and_shutdown_loop()
        """
        loop = self.loop or asyncio.get_event_loop()
        if loop.is_running():
            raise RuntimeError(
                "stop_and_shutdown_loop() closes the loop, so it cannot run inside it: "
                "`await worker.stop()` there"
            )
        if not loop.is_closed():
            loop.run_until_complete(self.stop())
            _close_loop(loop)

    def setup_logging(self) -> None:
        handler: logging.Handler = (
            logging.FileHandler(self.logfile) if self.logfile else logging.StreamHandler(sys.stderr)
        )
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        logging.basicConfig(level=self.loglevel.upper(), handlers=[handler], force=True)
        apply_logging_settings(self.app.conf)
        aiokafka_logs.install()  # aiokafka's repeated errors rate-limited, start-up noise at DEBUG

    async def _main(self) -> int:
        loop = asyncio.get_running_loop()
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        handled = self._install_signal_handlers(loop)
        code = 0
        try:
            await self._boot()
            _freeze_startup_heap()  # this process is the worker's (execute_from_commandline)
            code = await self._watch()
        except Exception as exc:
            self._error = exc
            log.error("worker for app %r failed: %s: %s", self._app_id(), type(exc).__name__, exc,
                      exc_info=not _is_config_error(exc))
            self._say(f"error: {exc}")
            code = 1
        try:
            await asyncio.wait_for(self.stop(), self.shutdown_timeout)
        except asyncio.TimeoutError:
            log.error("graceful stop did not finish within %.0fs: exiting anyway",
                      self.shutdown_timeout)
            code = 1
        except Exception as exc:
            log.error("error while stopping: %r", exc, exc_info=True)
            code = 1
        except asyncio.CancelledError:
            if current_task_cancelling():
                raise  # this worker itself is being cancelled
            # a client library raised a cancellation that is not ours: an error, not a crash
            log.error("error while stopping: a stray CancelledError", exc_info=True)
            code = 1
        for signum in handled:
            loop.remove_signal_handler(signum)
        aiokafka_logs.AIOKAFKA_LOGS.flush()  # what was held back since its last summary
        if code == 0:
            self._say("stopped cleanly")
        self.exit_code = code
        return code

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[int]:
        """TERM/INT stop gracefully, where this loop can have signal handlers.

        Only the main thread's loop can, and not the simulator's (no real
        signals there): an embedded worker then stops by ``request_stop()``.
        """
        handled: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            handler = self._on_sigusr1 if signum == signal.SIGUSR1 else self._on_signal
            try:
                loop.add_signal_handler(signum, handler, signum)
            except Exception as exc:  # not the main thread, or a loop without signals
                log.debug("no handler for %s on this loop: %r", signal.Signals(signum).name, exc)
                break
            handled.append(signum)
        return handled

    def _on_sigusr1(self, signum: int) -> None:
        """USR1: log every thread's and task's stack (Faust's), and go on."""
        log.warning("USR1 received: the stacks of this worker's threads and tasks:\n%s",
                    dump_stacks(asyncio.get_running_loop()))

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGINT:
            self._interrupts += 1
        if self._interrupts > 1:
            log.warning("%s again: exiting now without a graceful stop", name)
            for stream in (sys.stderr, self.stdout):
                stream.flush()
            os._exit(1)
        if self._stop_requested is not None and self._stop_requested.is_set():
            log.warning("%s received: already stopping gracefully (INT again exits at once)", name)
            return
        log.warning("%s received: stopping gracefully (INT again exits at once)", name)
        self.request_stop()

    def request_stop(self) -> None:
        """Ask the running worker to stop gracefully (what TERM/INT do)."""
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        self._stop_requested.set()

    # -- lifecycle -----------------------------------------------------------------
    async def start(self) -> None:
        """Start the apps and services; as Faust's (mode's) Worker, run until stopped.

        With ``daemon=True`` (the default) this returns once the worker has
        stopped: after TERM/INT (handlers are installed when the loop allows),
        ``request_stop()``, or a crash; the stop is graceful, and
        ``exit_code`` says how it went. An error while starting is raised
        (after the graceful stop). With ``daemon=False`` it returns once the
        apps are started; stop them with ``await worker.stop()``.
        """
        if not self.daemon:
            await self._boot()
            return
        await self._main()
        if self._error is not None:
            raise self._error

    async def _boot(self) -> None:
        """Autodiscover and send ``on_worker_init``, print the banner, start the apps.

        Returns once the apps are started (consumer groups joined), or early
        when a stop was requested meanwhile (e.g. TERM while the broker is down).
        """
        if self._stop_requested is None:
            self._stop_requested = asyncio.Event()
        if self.workdir is not None:
            os.chdir(self.workdir)  # before autodiscovery and the datadir are looked up
        _set_process_title(self.app)
        for app in self.apps:
            init_worker(app)  # autodiscover, then on_worker_init (once per app)
        self.apply_options(self.app)
        self.blocking_detector = await start_detector(self.app.conf)
        if self.app.conf.debug:
            self.console = start_console(asyncio.get_running_loop(), self.console_port)
        for app in self.apps:
            app.transport  # noqa: B018 - a bad broker URL fails here, before the banner
            name_worker(app)
        self.app_web_server = app_web_server(self.app)
        self._say(*self.banner())
        await self._start_web()
        self._start_task = asyncio.ensure_future(self._start_all())
        stop_wait = asyncio.ensure_future(self._stop_requested.wait())
        try:
            await asyncio.wait({self._start_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop_wait.cancel()
        if self._start_task.done():
            self._start_task.result()
            assigned = len(self.app.conductor.assignment())
            self._say(f"ready: app {self._app_id()!r} running, {assigned} partitions assigned")

    @property
    def apps(self) -> list[Any]:
        """The main app, then the other Apps among ``services``."""
        from .app import App

        return [self.app, *(s for s in self.services if isinstance(s, App))]

    async def _start_all(self) -> None:
        """The main app first, its own web server (``app.web_server``), then each service in order
        (Faust: ``*services`` after the app)."""
        await self.app.start()
        if self.app_web_server is not None:
            await self.app_web_server.start()
        for service in self.services:
            await service.start()

    #: Worker options that, when given (not None), override the app's setting of that name.
    SETTING_OPTIONS = ("web_port", "web_enabled", "web_bind", "web_host", "datadir", "debug",
                       "blocking_timeout")

    def apply_options(self, app: Any) -> None:
        """Command-line options beat the app's settings, as in Faust (``--datadir``, ``--debug``...)."""
        for setting in self.SETTING_OPTIONS:
            if getattr(self, setting) is not None:
                setattr(app.conf, setting, getattr(self, setting))

    async def stop(self) -> None:
        """Stop the apps gracefully, the main one last (idempotent); a start in progress is abandoned."""
        if self._stopped:
            return
        self._stopped = True
        task = self._start_task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except BaseException:  # noqa: B036 - the start is abandoned, whatever it raised
                pass
        if self._stop_requested is not None:
            self._stop_requested.set()  # a daemon start() waiting in _watch() returns
        # Past this the final commit and the producer's flush are given up (the broker
        # may be unreachable) so that every client is still closed in time.
        deadline = stop_deadline(asyncio.get_running_loop().time(), self.shutdown_timeout)
        for app in self.apps:
            app.stop_deadline = deadline
        try:
            try:
                try:  # first: requests in flight finish on a running app
                    if self.app_web_server is not None:
                        await self.app_web_server.stop()
                finally:
                    await self._stop_services()
            finally:
                await self.app.stop()
        finally:
            if self.web_server is not None:
                await self.web_server.stop()
            if self.blocking_detector is not None:
                await self.blocking_detector.stop()
            if self.console is not None:
                self.console.close()

    async def _stop_services(self) -> None:
        """Stop the other apps and services, last started first; every one, whatever fails."""
        await stop_each(((repr(s), s.stop) for s in reversed(self.services)), log)

    async def _start_web(self) -> None:
        """Serve ``app.web`` on ``web_bind:web_port`` (see :func:`start_web_server`)."""
        self.web_server = await start_web_server(self.app)

    async def _watch(self) -> int:
        """Wait for a stop request; 1 if the App or one of its engine tasks dies first."""
        assert self._stop_requested is not None
        while not self._stop_requested.is_set():
            try:
                await asyncio.wait_for(self._stop_requested.wait(), self.watch_interval)
            except asyncio.TimeoutError:
                pass
            failure = self.failure()
            if failure is not None:
                log.error("app %r crashed: %r; stopping the worker", self._app_id(), failure,
                          exc_info=failure)
                self._say(f"crashed: {type(failure).__name__}: {failure}")
                return 1
        return 0

    def failure(self) -> BaseException | None:
        """Why a running App (or service) cannot go on, or None if all are healthy."""
        web = [self.app_web_server] if self.app_web_server is not None else []
        for service in [self.app, *web, *self.services]:
            if service.crashed:
                name = getattr(getattr(service, "conf", None), "id", None) or repr(service)
                return service.crash_reason or RuntimeError(f"{name!r} crashed")
        for app in self.apps:
            # The engine's fetch/commit loops and the app's tasks are plain asyncio
            # tasks: one that died would otherwise leave a worker idling forever.
            failure = app.task_failure()
            if failure is not None:
                return failure
        return None

    # -- banner ----------------------------------------------------------------------
    def banner(self) -> list[str]:
        """What is about to run and where: app, broker, store, agents, tables."""
        app, conf = self.app, self.app.conf
        transport = type(app.transport).__name__
        web = (f"http://{conf.web_host}:{conf.web_port}/ (listening on {conf.web_bind})"
               if conf.web_enabled else "disabled (--without-web or web_enabled=False)")
        if self.app_web_server is not None:
            web = f"{self.app_web_server.label} (app.web_server, once the app started)"
        lines = [
            f"detstream worker: app {conf.id!r}, pid {os.getpid()}",
            f"  broker     {conf.broker}  ({transport})",
            f"  store      {conf.store}",
            f"  guarantee  {conf.processing_guarantee}"
            + (f" (transactional id {app.transactional_id})" if app.exactly_once else ""),
            f"  web        {web}",
            f"  loglevel   {self.loglevel}" + (f" -> {self.logfile}" if self.logfile else ""),
            f"  datadir    {conf.datadir}",
            f"  debug      {_debug_line(conf)}",
            f"  agents     {len(app.agents)}",
        ]
        for name, agent in app.agents.items():
            source = getattr(agent.channel, "label", "(channel)")
            sinks = [getattr(s, "label", getattr(s, "name", repr(s))) for s in agent.sinks]
            arrow = f" -> {', '.join(sinks)}" if sinks else ""
            lines.append(f"    {name}: {source}{arrow}")
        lines.append(f"  tables     {len(app.tables.tables)}")
        for name, table in app.tables.tables.items():
            lines.append(f"    {name}: changelog {table.changelog_name}, store {table.store_url}")
        for service in self.services:
            conf = getattr(service, "conf", None)
            what = (f"app {conf.id!r} on {conf.broker_url}, {len(service.agents)} agents"
                    if conf is not None else repr(service))
            lines.append(f"  also       {what}")
        return lines

    def _say(self, *lines: str) -> None:
        if self.quiet:
            return
        for line in lines:
            print(line, file=self.stdout)
        self.stdout.flush()

    def _app_id(self) -> str:
        try:
            return str(self.app.conf.id)
        except Exception:
            return repr(self.app)


async def start_web_server(app: Any) -> Any:
    """Serve ``app.web`` on ``web_bind:web_port``; None when ``web_enabled`` is off or the app
    has a web server of its own (``app.web_server``).

    Started before the app, so that ``/health/`` and ``/ready/`` answer while
    it starts. The caller stops it (``await server.stop()``) after the app.
    """
    conf = app.conf
    if not conf.web_enabled or app.web_server_service is not None:
        return None
    from .web.server import WebServer

    server = WebServer(app, bind=conf.web_bind, port=conf.web_port, host=conf.web_host)
    await server.start()  # port in use: WebServerError naming --web-port
    return server


def app_web_server(app: Any) -> Any:
    """The service of ``app.web_server`` to start after the app (made from its class), or
    None: none registered, or ``web_enabled`` off (``--without-web``)."""
    service = app.web_server_service
    if service is None or not app.conf.web_enabled:
        return None
    return service() if isinstance(service, type) else service


def name_worker(app: Any) -> None:
    """Give the App of this worker process a name of its own on Kafka: ``{host}-{pid}``.

    ``client_name`` defaults to the app id, the same in every process; under
    exactly-once it is part of the transactional id (``App.transactional_id``),
    so two workers with one name would fence each other. An app that set
    ``client_name`` itself (say, to a pod name that survives restarts) keeps it.
    The simulator names its workers itself, deterministically.
    """
    scheme = app.conf.broker_url.partition("://")[0].lower()
    if app.client_name == app.conf.id and scheme in ("kafka", "aiokafka"):
        app.client_name = f"{socket.gethostname()}-{os.getpid()}"


def _debug_line(conf: Any) -> str:
    timeout = blocking_timeout(conf)
    if timeout is None:
        return "off"
    return f"on, blocking detector timeout {timeout:g}s"


def _checked_services(app: Any, services: tuple[Any, ...]) -> list[Any]:
    """Faust's ``*services``: Apps or other mode Services, each once, none the main app."""
    from mode import Service

    from .errors import InvalidArgument

    checked: list[Any] = []
    for service in services:
        if not isinstance(service, Service):
            raise InvalidArgument(
                f"Worker(app, *services): services must be detstream Apps or mode Services, "
                f"got {type(service).__name__} {service!r}"
            )
        if service is app or service in checked:
            raise InvalidArgument(f"Worker(app, *services): {service!r} is given twice")
        checked.append(service)
    return checked


def apply_logging_settings(conf: Any) -> None:
    """The app's ``logging_config`` (dictConfig), then its ``loghandlers`` on the root logger.

    As Faust's worker: after the worker's own handler, so a project's
    Sentry or file handler (``faust.contrib.sentry.setup`` appends one to
    ``loghandlers``) sees what the worker logs.
    """
    if conf.logging_config:
        logging.config.dictConfig(dict(conf.logging_config))
    root = logging.getLogger()
    for handler in conf.loghandlers or ():
        if handler not in root.handlers:
            root.addHandler(handler)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks left on ``loop``, finish async generators, close it (as asyncio.run)."""
    leftovers = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _is_config_error(exc: BaseException) -> bool:
    from .errors import ImproperlyConfigured

    return isinstance(exc, ImproperlyConfigured)


#: allocations between two young collections (CPython's default: 700), and how many young
#: collections make a middle one, and middle ones a full one.
GC_THRESHOLDS = (20_000, 20, 10)


def _set_process_title(app: Any) -> None:
    """``detstream worker: <app id>`` in ps and top, when setproctitle is installed (as Faust)."""
    try:
        from setproctitle import setproctitle  # type: ignore[import-not-found]
    except ImportError:
        return
    setproctitle(f"detstream worker: {app.conf.id}")


def _freeze_startup_heap() -> None:
    """Move what start-up made (imported modules, the apps' definitions) out of the collector's sight.

    It lives as long as the process, yet every full collection would walk it
    again while the worker runs (a third of a word count's CPU went to
    collections on Kafka). Collected once first, so no garbage is frozen.

    Then collect less often: a worker's objects (events, records, futures)
    die young by reference counting and are hardly ever cyclic, but at
    CPython's default thresholds thousands of events in flight survive two
    young collections and are walked again by every full one, which frees
    nothing. With these, word count on Kafka spends 0.03 s collecting
    instead of 1.1 s of 7 CPU seconds; cyclic garbage waits at most 20,000
    allocations longer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
