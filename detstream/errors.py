"""Every exception detstream raises on purpose, in one hierarchy.

Names follow Faust (`faust.exceptions`) so ported code that catches them keeps
working::

    DetstreamError
     ├── ImproperlyConfigured          bad setting, bad URL, unknown driver
     │    ├── AutodiscoverError        an autodiscovered module is unknown or fails to import
     │    └── FixupError               a fixup could not prepare its framework (Django's setup)
     ├── InvalidArgument               a public function got a wrong value or type
     ├── TargetError                   a CLI target does not import / has no App
     ├── ValidationError               a Record failed validation
     ├── DecodeError                   bytes off the wire did not decode
     │    ├── KeyDecodeError
     │    ├── ValueDecodeError
     │    └── ChangelogDecodeError     a table changelog record did not decode (recovery stops)
     │         ├── ChangelogKeyDecodeError     (also a KeyDecodeError)
     │         └── ChangelogValueDecodeError   (also a ValueDecodeError)
     ├── CodecError                    unknown codec name, codec failed to encode
     │    └── UnpicklingRefused        a pickle codec refused a payload (also pickle.UnpicklingError)
     ├── TableWriteError               table written outside a stream / concurrently, or a
     │                                 key/value that would not come back from the changelog
     ├── PartitionsMismatch            co-partitioned topics differ in partitions
     ├── ProducerSendError             the broker refused a produced record
     ├── CommitFailedError             a commit was fenced (stale generation)
     │    └── FencedInstanceIdError    another process joined with this worker's group instance id
     ├── RebalanceListenerError        the worker could not take (or give up) an assignment
     ├── Skip                          raised by a processor to drop an event
     ├── SameNode                      a routed web request is for this worker (app.table_route)
     ├── NotReady                      asked of something not started yet
     │    └── ConsumerNotStarted
     ├── SecurityError                 (Faust's name, for its Secret/Sensitive field tags)
     └── ConsistencyError              (Faust's name; detstream never raises it)

    DetstreamWarning (FaustWarning)    a UserWarning
     ├── SecurityWarning
     └── AlreadyConfiguredWarning

Names Faust has and detstream never raises still exist, so that code
catching them (``except faust.exceptions.ConsistencyError``) imports.
"""

from __future__ import annotations

import pickle


class DetstreamError(Exception):
    """Base of every error detstream raises on purpose."""


#: Faust's name for the base class.
FaustError = DetstreamError


class ImproperlyConfigured(DetstreamError):
    """A setting, URL or driver name is wrong; the message says which and how to fix it."""


class AutodiscoverError(ImproperlyConfigured):
    """``App(autodiscover=...)`` names a module that is unknown or fails to import.

    ``module`` is the dotted name of that module (None for a malformed setting).
    """

    def __init__(self, message: str, *, module: str | None = None) -> None:
        super().__init__(message)
        self.module = module


class FixupError(ImproperlyConfigured):
    """An enabled fixup (``app.fixups``) failed to prepare its framework: Django's
    ``django.setup()`` on bad settings, say. The message names the fixup; the cause is chained."""


class InvalidArgument(DetstreamError, TypeError):
    """A public function got an argument of the wrong type or value."""


class TargetError(DetstreamError):
    """A CLI target (file, module or ``module:attr``) does not import or holds no App."""


class ValidationError(DetstreamError, ValueError):
    """A Record failed validation (``validation=True`` or ``validate_or_raise()``)."""

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class DecodeError(DetstreamError):
    """A message key or value did not decode; names where it came from."""

    def __init__(
        self,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        where = ""
        if topic is not None:
            where = f" (topic={topic!r} partition={partition} offset={offset})"
        super().__init__(f"{reason}{where}")
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset


class KeyDecodeError(DecodeError):
    """The message key did not decode."""


class ValueDecodeError(DecodeError):
    """The message value did not decode."""


class ChangelogDecodeError(DecodeError):
    """A table changelog record did not decode: recovery stops rather than rebuild a wrong table.

    Raised as :class:`ChangelogKeyDecodeError` or :class:`ChangelogValueDecodeError`,
    which are also KeyDecodeError and ValueDecodeError.
    """

    def __init__(
        self, message: str, *, table: str, topic: str, partition: int, offset: int,
        key: object, reason: str,
    ) -> None:
        DetstreamError.__init__(self, message)
        self.reason = reason
        self.table = table
        self.topic = topic
        self.partition = partition
        self.offset = offset
        #: the decoded key, or the raw key bytes when the key is what did not decode.
        self.key = key


class ChangelogKeyDecodeError(ChangelogDecodeError, KeyDecodeError):
    """A table changelog record's key did not decode."""


class ChangelogValueDecodeError(ChangelogDecodeError, ValueDecodeError):
    """A table changelog record's value did not decode."""


class CodecError(DetstreamError):
    """A codec is unknown or could not encode a value."""


class UnpicklingRefused(CodecError, pickle.UnpicklingError):
    """A pickle codec refused a payload (a class off its allowlist, a scanner's finding) or
    could not read it; ``except pickle.UnpicklingError`` catches it, as in Faust."""


class TableWriteError(DetstreamError, RuntimeError):
    """A table was written where that would lose the changelog's meaning."""


class PartitionsMismatch(DetstreamError):
    """Topics that must be co-partitioned have different partition counts."""


class ProducerSendError(DetstreamError):
    """The broker refused a produced record."""


class CommitFailedError(DetstreamError):
    """An offset commit was rejected, e.g. by a newer group generation."""


class MembershipInDoubtError(DetstreamError):
    """At least once, a commit's writes were still unacknowledged when the membership went in doubt.

    The group may give the partitions to another member half a session
    later, and nothing fences an at-least-once write: one landing after the
    new owner's would undo its writes. The app crashes so that the process
    ends and its connections abort, taking the writes with them; the
    partitions' next owner redoes the uncommitted work.
    """


class FencedInstanceIdError(CommitFailedError):
    """Another consumer joined the group with this one's group instance id (static membership).

    The group coordinator gave it this member's place: this consumer may
    neither commit nor fetch any more (Kafka's FENCED_INSTANCE_ID, fatal as
    in Java's consumer). ``instance`` is the ``consumer_group_instance_id``,
    ``group`` the group. Two processes running with one instance id would
    take it from each other; the app stops instead.
    """

    def __init__(self, message: str, *, group: str, instance: str) -> None:
        super().__init__(message)
        self.group = group
        self.instance = instance


class RebalanceListenerError(DetstreamError):
    """The rebalance listener failed: the worker could not take (or give up) its assignment.

    ``step`` is ``on_partitions_assigned`` or ``on_partitions_revoked``,
    ``tps`` the partitions it was about; the original exception is the
    ``__cause__``. The app crashes with it rather than run half set up.
    """

    def __init__(self, message: str, *, step: str, tps: frozenset[object] = frozenset()) -> None:
        super().__init__(message)
        self.step = step
        self.tps = tps


class ProducerFencedError(DetstreamError):
    """A newer producer with the same transactional id exists (or the coordinator
    aborted this one's transaction on timeout): this producer may never write again.

    Under exactly-once this means another instance of this worker took over,
    so the app crashes instead of writing as a zombie.
    """


class Skip(DetstreamError):
    """Raised inside a stream processor to drop the current event."""


class SameNode(DetstreamError):
    """A routed request (``app.table_route``/``topic_route``) is for this worker itself.

    Raised by ``app.router.route_req`` when the key's partition is this
    worker's; the route decorators catch it and run the view locally.
    """


class NotReady(DetstreamError):
    """Something was asked of a part of the app that has not started yet."""


class ConsumerNotStarted(NotReady):
    """The app's consumer is not started (the app is not running, or is a client)."""


class SecurityError(DetstreamError):
    """A tagged field's value was used as text, or read where it may not be (detstream.tags)."""


class ConsistencyError(DetstreamError):
    """Faust's error for a table store ahead of its changelog (detstream never raises it).

    detstream does not persist offsets past what the changelog holds; see
    docs/faust-differences.md.
    """


class DetstreamWarning(UserWarning):
    """Base of the warnings detstream issues."""


#: Faust's name for the warning base class.
FaustWarning = DetstreamWarning


class SecurityWarning(DetstreamWarning):
    """A security setting is weaker than it looks."""


class AlreadyConfiguredWarning(DetstreamWarning):
    """A setting was changed after the app's settings were read."""
