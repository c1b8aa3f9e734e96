"""What a refused send does to the app: the event whose output it was has failed.

A send is refused for good when the producer or the broker will never take
the record: larger than ``producer_max_request_size`` (aiokafka's
``MessageSizeTooLargeError``, Kafka's ``RecordTooLargeException``), an
unknown topic, an authorization failure, the delivery timeout. Kafka's
clients fail only the send's future, and an agent rarely awaits it (``await
topic.send()`` returns before the broker answers, as in Faust), so the event
would be acked, its offset committed, and its output silently lost.

The policy (docs/production.md, "A send the broker refuses"):

1. the failure is logged at once, naming the record's topic (and partition
   when known) and the input event (topic, partition, offset), and traced
   as ``send-failed``;
2. no offset is committed any more (``Conductor.commit``), and under
   exactly-once the open transaction aborts instead of committing
   (``ProducerBuffer.commit_transaction``);
3. the agent's ``on_error`` is called with the ``SendFailed`` error, once per
   failed event;
4. the app crashes: ``detstream worker`` exits with status 1 and the group
   gives the partitions to the other workers (or to this one, restarted),
   which redo every event since the last commit, the failed one included.

Crashing rather than restarting the actor (what mode's supervisors do for an
agent exception): the actor has moved on to later events by the time the
broker answers, and restarting it would cut short, and ack, the event it is
on now; and only a new assignment redoes the failed event. This is Kafka
Streams' default for a production error (the stream thread dies). A record
that can never be sent (a poison output) therefore crash-loops its
partition, loudly, until the program is fixed: that is a bug in the program,
not something to skip silently. A send made outside any event (a timer, a
task, ``app.send`` from a script) fails only its own future, and is logged.
"""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from detstream.events import Message

    from .host import EngineHost
    from .producer import SendFailed

#: tasks reporting a failure (kept referenced until they finish).
_REPORTING: set[asyncio.Task[None]] = set()


def failure_handler(app: EngineHost) -> Callable[[SendFailed], None]:
    """The ``ProducerBuffer.on_failure`` of ``app``: log and trace now, then fail the event."""
    reported: weakref.WeakSet[Message] = weakref.WeakSet()

    def on_failure(failure: SendFailed) -> None:
        cause = type(failure.__cause__).__name__
        if failure.origin is None:
            app.tracer.record("send-failed", topic=failure.topic, error=cause)
            app.log.error("%s (sent outside any event: only its future fails)", failure)
            return
        agent = getattr(failure.agent, "name", "-")
        app.tracer.record("send-failed", topic=failure.topic, tp=failure.tp, offset=failure.offset,
                          agent=agent, error=cause)
        app.log.error(
            "%s: agent %s failed on that event; no offset is committed any more and the app "
            "stops, so that the event is redone from the last commit", failure, agent,
        )
        if failure.origin in reported:
            return
        reported.add(failure.origin)
        task = asyncio.ensure_future(_fail_event(app, failure))
        _REPORTING.add(task)
        task.add_done_callback(_REPORTING.discard)

    return on_failure


async def _fail_event(app: EngineHost, failure: SendFailed) -> None:
    """The agent's error path for a failed event: ``on_error``, then the app's crash."""
    agent: Any = failure.agent
    on_error = getattr(agent, "on_error", None)
    if on_error is not None:
        try:
            result = on_error(agent, failure)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # the crash below must happen whatever on_error does
            app.log.error("on_error of agent %s raised %r", agent.name, exc)
    if not app.crashed:
        await app.crash(failure)
