"""The broker errors a Kafka client sees, as the simulated cluster raises them.

Names follow aiokafka (``aiokafka.errors``). *Retriable* errors are the ones
a Kafka client handles itself: it backs off ``retry_backoff_ms``, refreshes
its metadata (who leads a partition, which broker coordinates a group) and
sends the request again. The engine never sees them; the sim clients
(``sim.producer``, ``sim.driver``) retry them as aiokafka does. The fatal
ones reach the caller.
"""

from __future__ import annotations

from detstream.errors import ProducerSendError


class BrokerError(Exception):
    """Base of the errors a simulated broker answers with."""

    retriable = False


class RetriableError(BrokerError):
    """The request may succeed if sent again after a backoff and a metadata refresh."""

    retriable = True


class NotLeaderForPartitionError(RetriableError):
    """NOT_LEADER_FOR_PARTITION: the broker asked does not lead the partition (stale metadata)."""


class LeaderNotAvailableError(RetriableError):
    """LEADER_NOT_AVAILABLE: no live broker leads the partition right now."""


class BrokerNotAvailableError(RetriableError):
    """The broker the client's metadata names is down (aiokafka's ``KafkaConnectionError``)."""


class NodeNotReadyError(RetriableError):
    """The client has no connection to the broker it picked (aiokafka's ``NodeNotReadyError``).

    Raised at once, with nothing sent: an admin request goes to a random
    known broker, and a crashed broker stays known until the controller
    notices (``sim.brokers``).
    """


class RequestTimedOutError(RetriableError):
    """REQUEST_TIMED_OUT: no response within the request timeout (lost request or response).

    A lost *response* means the broker did apply the request: a produce sent
    again then appends the records twice, unless the producer is idempotent.
    """


class ConnectionClosedError(RetriableError):
    """The connection closed with the request in flight (aiokafka's ``KafkaConnectionError``).

    The client learns at once, not after the request timeout, and cannot
    tell whether the broker applied the request: a produce sent again then
    appends its records twice, unless the producer is idempotent.
    """


class CoordinatorNotAvailableError(RetriableError):
    """COORDINATOR_NOT_AVAILABLE: the group or transaction coordinator's broker is down."""


class NotCoordinatorError(RetriableError):
    """NOT_COORDINATOR: the broker asked no longer coordinates this group or transactional id."""


class OutOfOrderSequenceError(BrokerError, ProducerSendError):
    """OUT_OF_ORDER_SEQUENCE_NUMBER: an idempotent producer's batch skips sequence numbers.

    The broker refuses it rather than leave a gap (a lost batch) in the
    partition; the producer must reset its producer id.
    """


class InvalidProducerEpochError(BrokerError, ProducerSendError):
    """INVALID_PRODUCER_EPOCH: a batch from an older epoch of this producer id."""


class DeliveryTimeoutError(ProducerSendError):
    """A record was not acknowledged within the delivery timeout, retries included."""


class MessageSizeTooLargeError(BrokerError, ProducerSendError):
    """MESSAGE_TOO_LARGE (Kafka's ``RecordTooLargeException``): not retriable.

    A record larger than the producer's ``max_request_size`` is refused by
    the client before it is sent (aiokafka raises it from ``send``); a batch
    larger than the topic's ``max.message.bytes`` by the partition's leader.
    """


class UnknownTopicOrPartitionError(BrokerError, ProducerSendError):
    """UNKNOWN_TOPIC_OR_PARTITION: a send to a topic that does not exist, with auto-creation off."""


class TopicAuthorizationFailedError(BrokerError, ProducerSendError):
    """TOPIC_AUTHORIZATION_FAILED: the principal may not write the topic; not retriable.

    The ``refuse`` fault: for a while the brokers refuse a worker host's
    produce requests, as while an ACL is removed and put back.
    """


class ConsumerStoppedError(Exception):
    """A consumer's ``getmany`` once its stop began (aiokafka's ``ConsumerStoppedError``).

    Its other calls (commit, seek, offsets) still work until the stop ends.
    """


class ProducerClosedError(ProducerSendError):
    """The producer was closed with the record unsent (aiokafka's ``ProducerClosed``).

    A stop under a deadline (the broker unreachable) gives up what is still
    queued or in flight: those sends fail, nothing reports them acknowledged.
    """


class SenderDeadError(ProducerSendError):
    """A transactional producer's sender routine died: nothing it holds or gets is sent again.

    aiokafka 0.14 lets a connection lost during its FindCoordinator kill the
    routine (aio-libs/aiokafka#1151): its queued records fail, every later
    send fails with ``KafkaError``, and the transaction can be neither
    committed nor aborted. The Kafka driver reports all of it as
    ``ProducerSendError`` naming the cause, and so does this error.
    """
