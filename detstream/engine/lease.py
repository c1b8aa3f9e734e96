"""The lease of one partition's delivered messages: what a stream reports to per event.

Every message the conductor delivers carries the lease of its partition
(``events.Lease``). The lease keeps that partition's counters (events being
processed, events started and not yet acked) and knows whether the
partition is still this worker's in the generation it was fetched in. So a
stream's per-event calls (``begin``, ``done``) touch one object's
attributes: no lookup by partition, no call into the conductor. The
conductor keeps the leases up to date when its assignment changes (rare)
and reads the counters when it waits for idle partitions or quiesces a
commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from detstream._types import TP

if TYPE_CHECKING:
    from detstream.events import Message

    from .acks import OffsetTracker


class LeaseOwner(Protocol):
    """What a lease tells its conductor: only the waits, when someone waits."""

    #: ``wait_idle`` calls waiting now (only they need a wake-up when processing stops).
    idle_waits: int
    #: ``wait_for_progress`` calls waiting now (only they need a wake-up per ack).
    progress_waits: int

    def wake_idle(self) -> None:
        """A partition has no event being processed any more."""

    def wake_progress(self) -> None:
        """A message was acked."""

    async def may_start(self, message: Message) -> None:
        """Return once ``message`` may start (not while an exactly-once commit quiesces)."""


class PartitionLease:
    """One partition's messages: their currency, processing and unfinished counts, their acks.

    ``generation`` is the conductor's, and ``assigned`` whether the partition
    is in its assignment; a message is current when it was fetched in that
    generation and the partition is assigned (the conductor sets both at
    every assignment change, for every lease).
    """

    __slots__ = (
        "tp", "owner", "tracker", "tracer", "sensors", "generation", "assigned", "quiescing",
        "processing", "unfinished",
    )

    def __init__(
        self, tp: TP, owner: LeaseOwner, tracker: OffsetTracker, tracer: Any, sensors: Any,
        generation: int, *, assigned: bool, quiescing: bool,
    ) -> None:
        self.tp = tp
        self.owner = owner
        self.tracker = tracker
        self.tracer = tracer
        self.sensors = sensors
        self.generation = generation
        self.assigned = assigned
        #: True while no fresh message may start (an attribute: streams read it per message).
        self.quiescing = quiescing
        #: events of this partition a stream is processing now.
        self.processing = 0
        #: messages a stream started that are not fully acked yet (in this assignment).
        self.unfinished = 0

    def __repr__(self) -> str:
        return (f"<PartitionLease {self.tp} generation={self.generation} assigned={self.assigned} "
                f"processing={self.processing} unfinished={self.unfinished}>")

    async def may_start(self, message: Message) -> None:
        await self.owner.may_start(message)

    def is_current(self, message: Message) -> bool:
        """Whether ``message`` still belongs to this worker's current assignment."""
        return self.assigned and message.generation == self.generation

    def begin(self, message: Message) -> bool:
        """A stream begins ``message``, if it is still current; whether it was (one call for both)."""
        if not self.assigned or message.generation != self.generation:
            return False
        kind = "deliver"
        if not message.started:
            message.started = True
            self.unfinished += 1
        else:  # another stream of this worker (a second agent on the topic) started it first
            kind = "deliver-shared"
        self.processing += 1
        tracer = self.tracer
        if tracer.enabled:
            key = message.key
            if key is None or type(key) is bytes:
                tracer.record_atoms(kind, {"tp": message.tp, "offset": message.offset, "key": key})
            else:
                tracer.record(kind, tp=message.tp, offset=message.offset, key=key)
        return True

    def finished(self, message: Message) -> None:
        """A stream is done processing ``message`` (acked or not)."""
        self.done(message, False)

    def done(self, message: Message, ack: bool) -> None:
        """``finished``, then ``message.ack()`` if ``ack``: the end of every event, one call.

        A stream ends each event with both (unless it was made with
        ``noack``); the reference count is ``Message.ack``'s, repeated here
        to save two calls per event.
        """
        count = self.processing - 1
        if count > 0:
            self.processing = count
        else:
            self.processing = 0
            if self.owner.idle_waits:  # (no call per event while nobody waits)
                self.owner.wake_idle()
        if not ack or message.acked:
            return
        message.refcount -= 1
        if message.refcount > 0:
            return
        message.acked = True
        # ``self.acked(message)``, inline (once per event)
        if self.sensors.enabled:
            self.sensors.on_message_out(message.tp, message.offset, message)
        if message.generation == self.generation:
            # ``self.tracker.acked(tp, offset)``'s in-order case, inline (once per event): the
            # partition's oldest pending offset while no offset anywhere was acked out of
            # order moves the commit point past it; any other ack is the tracker's own
            tracker, tp, offset = self.tracker, message.tp, message.offset
            pending = tracker._pending.get(tp)
            if pending and pending[0] == offset and not tracker._acked:
                pending.popleft()
                tracker._committable[tp] = offset + 1
            else:
                tracker.acked(tp, offset)
            if message.started:
                self.unfinished -= 1
            if self.owner.progress_waits:  # (no call per event while nobody waits)
                self.owner.wake_progress()

    def acked(self, message: Message) -> None:
        """The last reference to ``message`` was acked: the offset may be committed.

        ``done`` repeats this for the end of an event (a call less per event).
        """
        sensors = self.sensors
        if sensors.enabled:
            sensors.on_message_out(message.tp, message.offset, message)
        if message.generation == self.generation:
            self.tracker.acked(message.tp, message.offset)
            if message.started:
                self.unfinished -= 1
            if self.owner.progress_waits:  # (no call per event while nobody waits)
                self.owner.wake_progress()
