"""The simulated network between client processes and the cluster.

Every request a client sends pays a one-way latency drawn from the cluster's
seeded network stream (``{seed}/network``). A client process reaches the
cluster over its ``Link``: down once the process crashed, and subject to the
faults of its host's network (``LinkConditions``, shared by every
incarnation of a worker):

- ``delay``: for a period, every request takes extra latency;
- ``drop``: for a period, each message is lost with probability ``loss``
  (1: all of them, a network partition), and TCP carries it all the same
  (``Network.hold_for``): in a partition it waits in the kernel until the
  partition heals; in a lossy window each loss costs a retransmission
  timeout. A coin from the network stream decides whether the window caught
  the request (applied when it gets through) or its response (applied at
  once, answered late); ``ClusterConfig.lost_response_share`` is the chance
  of the latter. The client gets its answer late (trace and counter
  ``request-held``), unless the hold outlasts its request timeout: then it
  hears ``RequestTimedOutError`` (retriable) at the timeout, and a produce
  retried after a held response appends again, unless idempotent. A client
  that gave up closes the connection, and detstream's Kafka driver closes a
  connection with requests in flight as an abort, as it does every
  connection of a process that dies
  (``detstream.transport.kafka.abortive_close``): the kernel discards a held
  request, which never lands late, after the partition's new owner wrote
  (an orphaned connection closed the ordinary way would be retransmitted
  for a minute or two). So it is lost then (trace and counter
  ``request-discarded``). For a share of caught messages
  (``ClusterConfig.reset_share``) the connection closes instead: the client
  hears after a round trip (``ConnectionClosedError``) and retries at once,
  which is when a retried produce whose first attempt was applied meets
  deduplication. Fetches and long polls (join, sync) are held the same way
  (the sim driver's fetch: ``SimConsumer._held_for``). The wire
  (``sim.wire.network``) carries each message of a connection so too.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .kafka_errors import ConnectionClosedError, RequestTimedOutError

if TYPE_CHECKING:
    from .trace import Trace

T = TypeVar("T")


#: seconds before TCP sends a lost segment again (its retransmission timeout, 200 ms at least).
RETRANSMIT = (0.2, 1.0)


def _answer(result: T) -> Callable[[], T]:
    return lambda: result


def _raise(exc: Exception) -> Callable[[], Any]:
    def again() -> Any:
        raise exc
    return again


def _nothing() -> None:
    return None


class LinkConditions:
    """The faults of one host's network: delay and drop windows in virtual time."""

    def __init__(self) -> None:
        self.delay_until = 0.0
        self.extra_latency = 0.0
        self.drop_until = 0.0
        self.loss = 1.0
        #: until then the brokers refuse this host's produce requests (a ``refuse`` fault).
        self.refuse_until = 0.0
        #: until then the brokers refuse this host's fetches and offset commits (``deny_reads``).
        self.deny_reads_until = 0.0
        #: the host's consumers, woken when a ``deny_reads`` window opens (weakly: a crashed
        #: incarnation's go with it).
        self.fetchers: weakref.WeakSet[Any] = weakref.WeakSet()

    def delay(self, extra: float, until: float) -> None:
        self.extra_latency, self.delay_until = extra, until

    def drop(self, until: float, loss: float = 1.0) -> None:
        self.drop_until, self.loss = until, loss

    def refuse(self, until: float) -> None:
        self.refuse_until = until

    def deny_reads(self, until: float) -> None:
        """Refuse the host's fetches until ``until``; its fetches waiting for data hear it now.

        aiokafka's fetcher sends fetch requests without pause (each waits at
        most ``fetch_max_wait_ms``, 500 ms, at the broker), so the refusal
        reaches a consumer that is idle waiting for records too.
        """
        self.deny_reads_until = until
        for fetcher in sorted(self.fetchers, key=lambda f: f.fetcher_order):
            fetcher.wake_fetch()

    def denying_reads(self, now: float) -> bool:
        """Whether the brokers refuse this host's fetches and offset commits now (not retriable)."""
        return now < self.deny_reads_until

    def refusing(self, now: float) -> bool:
        """Whether the brokers refuse this host's produce requests now (not retriable)."""
        return now < self.refuse_until

    def extra(self, now: float) -> float:
        return self.extra_latency if now < self.delay_until else 0.0

    def dropping(self, now: float) -> bool:
        """Whether a drop window is open (each request is then lost with probability ``loss``)."""
        return now < self.drop_until

    @property
    def heals_at(self) -> float:
        """When the last fault window ends."""
        return max(self.delay_until, self.drop_until, self.refuse_until, self.deny_reads_until)


class Link:
    """A client process's connection to the cluster; down once the process crashed."""

    def __init__(self, name: str, conditions: LinkConditions | None = None) -> None:
        self.name = name
        self.up = True
        self.conditions = conditions or LinkConditions()
        #: until then the process cannot reach its group coordinator (a ``stall`` that holds
        #: the group's requests): its heartbeats, commits and TxnOffsetCommit wait.
        self.group_held_until = 0.0

    def check(self) -> None:
        if not self.up:
            raise ConnectionError(f"{self.name} has crashed: its requests never reach the cluster")

    def hold_group(self, until: float) -> None:
        """Cut the process off from its group coordinator until ``until`` (loop time)."""
        self.group_held_until = until

    async def reach_group(self, trace: Trace, what: str) -> None:
        """Wait, before sending ``what`` to the group coordinator, while the process is cut off.

        A process that lost touch with its group coordinator (aiokafka talks
        to it over a connection of its own) sends it nothing until the
        connection is back: a commit or a transaction's TxnOffsetCommit waits
        as a heartbeat does, so the transaction may outlive its timeout.
        """
        loop = asyncio.get_running_loop()
        if loop.time() >= self.group_held_until:
            return
        trace.record(self.name, "group-request-held", request=what)
        while loop.time() < self.group_held_until:
            await asyncio.sleep(self.group_held_until - loop.time())


class Network:
    """Latency and request fates for one cluster, from its seeded network stream."""

    def __init__(
        self, trace: Trace, rng: random.Random, *, latency: tuple[float, float],
        request_timeout: float, stats: Counter[str], lost_response_share: float = 0.5,
        reset_share: float = 0.0,
        listener_lag: tuple[float, float] = (0.0, 0.0),
        errors: random.Random | None = None, error_pause: float = 0.0,
    ) -> None:
        self.trace = trace
        self._rng = rng
        self._errors = errors
        self._error_pause = error_pause
        self._latency = latency
        self.request_timeout = request_timeout
        self._stats = stats
        self._lost_response_share = lost_response_share
        self._reset_share = reset_share
        self._listener_lag = listener_lag

    @property
    def max_latency(self) -> float:
        """The longest a request takes on a link no fault touches."""
        return self._latency[1]

    def latency(self) -> float:
        low, high = self._latency
        return self._rng.uniform(low, high)

    def listener_lag(self) -> float:
        """How long a consumer fetches with a new assignment before calling its listener.

        Often zero; else up to ``ClusterConfig.listener_lag``. Real clients
        install an assignment, go on fetching, and call the listener after
        awaits of their own: the engine must not take the listener as the
        first thing that happens to a new assignment.
        """
        share, longest = self._listener_lag
        if not longest or self._rng.random() >= share:
            return 0.0
        return self._rng.uniform(0.0, longest)

    def chance(self, share: float) -> bool:
        """A coin from the network stream that comes up with probability ``share``."""
        return bool(share) and self._rng.random() < share

    def uniform(self, low: float, high: float) -> float:
        """A duration from the network stream."""
        return self._rng.uniform(low, high)

    def loses(self, link: Link, sent: float) -> bool:
        """Whether a drop fault loses a request ``link`` sends at ``sent`` (drawn from the stream)."""
        conditions = link.conditions
        if not conditions.dropping(sent):
            return False
        return conditions.loss >= 1.0 or self._rng.random() < conditions.loss

    async def request(self, link: Link, what: str, apply: Callable[[], T]) -> T:
        """One request over ``link``: ``apply()`` runs at the broker, its result comes back.

        Raises ``ConnectionError`` once the process crashed. A drop window
        that catches the request (or, as the stream's coin decides, its
        response) holds it as TCP would (``_held``): the client gets its
        answer late, or ``RequestTimedOutError`` if the hold outlasts the
        request timeout (then ``apply`` ran only if it was the response
        that was held).
        """
        loop = asyncio.get_running_loop()
        sent = loop.time()
        delay = self.latency() + link.conditions.extra(sent)
        on_the_wire = link.up  # a dead process sends nothing
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            # on the wire, it arrives whether its sender was killed, closed or stopped waiting
            if on_the_wire:
                loop.call_at(sent + delay, self._orphan, link, what, sent, apply, not link.up)
            raise
        if not link.up:
            if on_the_wire:
                self._orphan(link, what, sent, apply)
            link.check()
        if not self.loses(link, sent):
            try:
                return apply()
            except Exception:
                await self._meet_error(link)
                raise
        if self._rng.random() < self._lost_response_share:  # the window caught the response
            try:
                answer: Callable[[], T] = _answer(apply())
            except Exception as exc:
                answer = _raise(exc)
            return await self._held(link, what, sent, answer, applied=True)
        return await self._held(link, what, sent, apply, applied=False)

    async def _held(
        self, link: Link, what: str, sent: float, then: Callable[[], T], *, applied: bool
    ) -> T:
        """A request (``applied`` False) or its response (True) caught by a drop window: TCP
        holds it until it gets through, retransmitted (``hold_for``).

        If that is before the client's request timeout, the request is
        applied then (or the answer arrives then): late, not lost. Else the
        client gives up first: it closes the connection, as an abort (the
        Kafka driver's close of a connection with requests in flight), and
        a held request is discarded with it, never to land late. For a
        share of losses (``reset_share``) the connection is reset instead.
        """
        loop = asyncio.get_running_loop()
        if self._reset_share and self._rng.random() < self._reset_share:
            raise await self._reset(link, what, applied=applied)
        through = loop.time() + self.hold_for(link, loop.time())
        if through >= sent + self.request_timeout:
            error = await self._timed_out(link, what, sent, applied=applied)
            if not applied:
                self._stats["request-discarded"] += 1  # the client's close aborts the connection
                self.trace.record(link.name, "request-discarded", request=what)
            raise error
        self.note_held(link, what, applied=applied)
        await asyncio.sleep(through - loop.time())
        link.check()  # died meanwhile: its connections were aborted, what they held discarded
        try:
            return then()
        except Exception:
            await self._meet_error(link)
            raise

    def note_held(self, link: Link, what: str, *, applied: bool = False) -> None:
        """Record a message a drop window held (callers that wait it out themselves)."""
        self._stats["request-held"] += 1
        self.trace.record(link.name, "request-held", request=what, applied=applied)

    def hold_for(self, link: Link, now: float) -> float:
        """How long TCP takes to carry a message a drop window of ``link`` lost at ``now``.

        In a partition (``loss`` 1) until it heals, then a latency; in a
        lossy window, a retransmission timeout per loss (each retransmission
        lost again with the window's ``loss``, while the window lasts), as
        ``sim.wire.network`` carries a message on the wire.
        """
        conditions = link.conditions
        extra = 0.0
        while True:
            if conditions.loss >= 1.0:
                extra = conditions.drop_until - now + self.latency()
            else:
                extra += self._rng.uniform(*RETRANSMIT)
            if not self.loses(link, now + extra):
                return extra

    def _orphan(
        self, link: Link, what: str, sent: float, apply: Callable[[], object], crashed: bool = True
    ) -> None:
        """A request whose sender died, or stopped waiting for it, reaches the broker all the same.

        A kill -9 does not take back what the process wrote to its socket
        and the network carried: the broker applies it (an offset commit, a
        produce, a transaction's end), and only the response is lost. So a
        crash loses what a client had not sent yet, never what it had; but
        what a partition held in the kernel is discarded with the process's
        connections (the Kafka driver aborts them). The same holds for a
        live client that closed, or gave up waiting (a stop's budget, a
        timeout): its request was sent (``crashed`` False: trace and counter
        ``request-abandoned``; a JoinGroup so sent makes a member the group
        waits for).
        """
        if self.loses(link, sent):
            return
        kind = "request-after-crash" if crashed else "request-abandoned"
        self._stats[kind] += 1
        self.trace.record(link.name, kind, request=what)
        try:
            apply()
        except Exception:  # the answer goes to a dead process
            pass

    async def _meet_error(self, link: Link) -> None:
        """How the client meets an error response: chosen adversarially from the seed.

        Error paths are where engine bugs live, and a real client is not as
        prompt as a single hop: aiokafka passes a response through its
        connection, its sender task and the batch's futures, and the
        process may be busy (a long iteration, a GC pause) when it arrives.
        So the response may reach the caller up to two loop iterations
        late, and half the time the loop is first busy for up to
        ``error_pause`` seconds: the timers that came due meanwhile (a
        commit, a heartbeat) run between the error's arrival and its
        handling, in every order those choices allow. Virtual time and the
        other streams are unchanged when there is no error.
        """
        rng = self._errors
        if rng is None:
            return
        if rng.random() < 0.5:
            pause = getattr(asyncio.get_running_loop(), "pause", None)
            if pause is not None:
                pause(rng.uniform(0.0, self._error_pause))
                self._stats["error-met-busy"] += 1
        for _ in range(rng.randrange(3)):
            await asyncio.sleep(0)
        link.check()

    async def arrive(self, link: Link, what: str) -> None:
        """The way in of a long poll: latency, and a drop window's hold (``_held``): late, or a
        timeout if the hold outlasts the request timeout."""
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await asyncio.sleep(self.latency() + link.conditions.extra(sent))
        link.check()
        if self.loses(link, sent):
            await self._held(link, what, sent, _nothing, applied=False)

    def lost(self, link: Link, what: str, *, applied: bool = False, reset: bool = False) -> None:
        """Record a request a drop fault lost (callers that wait for the timeout themselves)."""
        self._stats["request-dropped"] += 1
        if reset:
            self._stats["connection-reset"] += 1
            self.trace.record(link.name, "request-dropped", request=what, applied=applied, reset=True)
        else:
            self.trace.record(link.name, "request-dropped", request=what, applied=applied)

    async def _reset(self, link: Link, what: str, *, applied: bool) -> ConnectionClosedError:
        """Record the loss as a closed connection; the client hears of it a hop later."""
        self.lost(link, what, applied=applied, reset=True)
        await asyncio.sleep(self.latency())
        link.check()
        return ConnectionClosedError(f"{what} from {link.name}: connection closed with the request in flight")

    async def _timed_out(
        self, link: Link, what: str, sent: float, *, applied: bool
    ) -> RequestTimedOutError:
        """Record the loss, wait out the request timeout; the error the client then sees."""
        self.lost(link, what, applied=applied)
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, sent + self.request_timeout - loop.time()))
        link.check()
        return RequestTimedOutError(f"{what} from {link.name}: no response in {self.request_timeout:g}s")
