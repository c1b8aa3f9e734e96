"""A partition's lease: what a stream's per-event calls do to its counters and the commit point."""

from detstream._types import TP
from detstream.engine.acks import OffsetTracker
from detstream.engine.lease import PartitionLease
from detstream.events import Message
from detstream.tracing import Tracer

TP0 = TP("t", 0)


class Owner:
    """A conductor as the lease sees it: counts its wake-ups."""

    def __init__(self) -> None:
        self.idle_waits = 0
        self.progress_waits = 0
        self.woken: list[str] = []

    def wake_idle(self) -> None:
        self.woken.append("idle")

    def wake_progress(self) -> None:
        self.woken.append("progress")

    async def may_start(self, message: Message) -> None:
        return None


class Sensors:
    enabled = False


def lease_of(generation: int = 5, *, assigned: bool = True, steps: list | None = None):
    owner, tracker = Owner(), OffsetTracker()
    tracer = Tracer("w1", None if steps is None else lambda *step, **fields: steps.append(step))
    lease = PartitionLease(TP0, owner, tracker, tracer, Sensors(), generation,
                           assigned=assigned, quiescing=False)
    return lease, owner, tracker


def delivered(lease: PartitionLease, tracker: OffsetTracker, offset: int, *, generation: int = 5,
              refcount: int = 1) -> Message:
    tracker.delivered(TP0, offset)
    return Message("t", 0, offset, 0.0, None, b"v", (), generation, refcount, False, False, lease, TP0)


def test_an_event_begun_and_done_is_acked_and_committable():
    steps: list = []
    lease, owner, tracker = lease_of(steps=steps)
    message = delivered(lease, tracker, 7)
    assert lease.begin(message)
    assert (lease.processing, lease.unfinished) == (1, 1)
    assert steps == [("w1", "deliver")]
    lease.done(message, True)
    assert message.acked and (lease.processing, lease.unfinished) == (0, 0)
    assert tracker.to_commit() == {TP0: 8}
    assert owner.woken == []  # nobody waited: no wake-up per event


def test_a_message_of_another_generation_or_a_partition_given_up_does_not_begin():
    lease, _, tracker = lease_of(generation=6)
    stale = delivered(lease, tracker, 0, generation=5)
    assert not lease.is_current(stale) and not lease.begin(stale)
    fresh = delivered(lease, tracker, 1, generation=6)
    assert lease.is_current(fresh)
    lease.assigned = False  # the conductor's revoke
    assert not lease.is_current(fresh) and not lease.begin(fresh)
    assert (lease.processing, lease.unfinished) == (0, 0)


def test_a_shared_message_is_acked_once_every_stream_is_done():
    steps: list = []
    lease, _, tracker = lease_of(steps=steps)
    message = delivered(lease, tracker, 0, refcount=2)
    assert lease.begin(message) and lease.begin(message)
    assert [kind for _, kind in steps] == ["deliver", "deliver-shared"]
    lease.done(message, True)
    assert not message.acked and tracker.to_commit() == {}
    lease.done(message, True)
    assert message.acked and tracker.to_commit() == {TP0: 1}
    assert (lease.processing, lease.unfinished) == (0, 0)


def test_done_without_ack_leaves_the_message_unfinished():
    lease, _, tracker = lease_of()
    message = delivered(lease, tracker, 0)
    lease.begin(message)
    lease.done(message, False)  # a noack stream: acked by hand later
    assert lease.processing == 0 and lease.unfinished == 1 and not message.acked
    message.ack()
    assert lease.unfinished == 0 and tracker.to_commit() == {TP0: 1}


def test_waiters_are_woken_when_processing_stops_and_at_each_ack():
    lease, owner, tracker = lease_of()
    message = delivered(lease, tracker, 0)
    lease.begin(message)
    owner.idle_waits = owner.progress_waits = 1
    lease.done(message, True)
    assert owner.woken == ["idle", "progress"]


def test_an_ack_from_an_earlier_generation_does_not_move_the_commit_point():
    lease, _, tracker = lease_of(generation=5)
    message = delivered(lease, tracker, 0)
    lease.begin(message)
    lease.generation = 6  # a new assignment came meanwhile
    lease.done(message, True)
    assert message.acked and tracker.to_commit() == {}


def test_acks_out_of_order_through_done_move_the_commit_point_as_the_tracker_does():
    # ``done`` moves the commit point itself for an in-order ack, and leaves any other
    # ack to the tracker: both interleaved give the tracker's commit points
    lease, _, tracker = lease_of()
    other = TP("t", 1)
    messages = [delivered(lease, tracker, offset) for offset in range(5)]
    tracker.delivered(other, 0)
    for message in messages:
        lease.begin(message)
    commits = []
    for offset in (0, 2, 1, 4):
        lease.done(messages[offset], True)
        commits.append(tracker.to_commit())
    tracker.acked(other, 0)  # in order, while offset 4 of TP0 waits for 3
    lease.done(messages[3], True)
    commits.append(tracker.to_commit())
    assert commits == [{TP0: 1}, {TP0: 1}, {TP0: 3}, {TP0: 3}, {TP0: 5, other: 1}]
    assert tracker.in_flight(TP0) == 0 and lease.unfinished == 0
