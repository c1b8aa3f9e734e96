"""``app.topics``: the topics a worker consumes for its streams (Faust's Conductor, as a set).

A worker subscribes its consumer to every topic some stream reads (an
agent's, a ``topic.stream()`` iterated in a task, a ``group_by``'s) plus its
tables' changelogs. Streams made when the app starts are in the first
subscription; a stream over a topic nobody consumed yet, made while the app
runs (``async for w in withdrawals.stream()`` in an ``@app.task``), joins the
subscription here: the topic is declared (created if missing, as at start)
and the consumer subscribes again, which rebalances the group, as in Faust.

``app.topics.add(topic)`` is Faust's way to say the same by hand; every
``Topic`` stream calls it, so user code rarely needs to. A topic that no
stream reads stays out of the consumer's subscription: its records would
have nowhere to go and their offsets would never be committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgument

if TYPE_CHECKING:
    from .app import App
    from .topic import Topic


class TopicSubscriptions:
    """``app.topics``: ``topic in app.topics`` (a Topic or a topic name), ``add``, iteration."""

    def __init__(self, app: App) -> None:
        self._app = app
        #: topics given to ``add`` (by hand, or by a stream over them), in order.
        self._added: list[Topic] = []

    def __repr__(self) -> str:
        return f"<TopicSubscriptions of {self._app!r}: {sorted(self.acking_topics)}>"

    def add(self, topic: Topic) -> None:
        """Consume ``topic`` for the streams that read it, subscribing now if the app runs."""
        from .topic import Topic

        if not isinstance(topic, Topic):
            raise InvalidArgument(f"app.topics.add() takes a topic (app.topic(...)), got {topic!r}")
        if topic.app is not self._app:
            raise InvalidArgument(f"app.topics.add(): {topic!r} belongs to {topic.app!r}, "
                                  f"not {self._app!r}")
        if not any(t is topic for t in self._added):
            self._added.append(topic)
        self._subscribe_if_running(topic)

    def discard(self, topic: Any) -> None:
        """Forget a topic given to ``add``; streams over it still consume it."""
        self._added = [t for t in self._added if t is not topic]

    def _consumed(self) -> list[Topic]:
        """Topics with streams, then the other added ones; each description once."""
        topics = list(self._app.acking_topics())
        topics += [t for t in self._added if not any(t is s for s in topics)]
        return topics

    def __iter__(self) -> Iterator[Topic]:
        return iter(self._consumed())

    def __len__(self) -> int:
        return len(self._consumed())

    def __contains__(self, item: Any) -> bool:
        """A Topic description given to ``add`` or read by a stream, or a topic name one covers."""
        consumed = self._consumed()
        if isinstance(item, str):
            return any(topic.matches(item) for topic in consumed if topic.subscribers)
        return any(topic is item for topic in consumed)

    @property
    def acking_topics(self) -> set[str]:
        """Names of the topics whose offsets the worker commits (those streams read)."""
        return {name for topic in self._app.acking_topics() for name in topic.topics}

    # -- a stream made while the app runs -------------------------------------------------
    def _subscribe_if_running(self, topic: Topic) -> None:
        """Subscribe the running worker to ``topic`` if a stream reads it and nothing did yet.

        The topic is declared first (``app.declared``: once per app, and the
        consumer subscribes again once it exists); if it was declared
        before, the consumer subscribes again now. Before the app runs, or
        for a client, the first subscription at start takes it.
        """
        app = self._app
        conductor = app.conductor
        if conductor.consumer is None or conductor.stopping or app.client_only or app.should_stop:
            return
        if not topic.subscribers:
            return
        if topic.pattern is not None:
            app.log.warning(
                "%r: a stream over a topic pattern made after the app started is not "
                "subscribed (patterns are matched at start): iterate it in an agent", topic,
            )
            return
        if set(topic.topics) <= self._names_consumed_without(topic):
            return
        declaring = app._declaring.get(topic.label)
        if declaring is None:
            app.declared(topic)  # then subscribes again, with this stream's buffer in place
        elif declaring.done():
            conductor.resubscribe()
        # else: declaring now; it subscribes again when done, this buffer included

    def _names_consumed_without(self, topic: Topic) -> set[str]:
        app = self._app
        names = {n for t in app.acking_topics() if t is not topic for n in t.topics}
        return names | app.conductor.pattern_matches | app.tables.changelog_topics | {
            app.leader_topic_name
        }
