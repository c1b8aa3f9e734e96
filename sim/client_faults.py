"""Faults of the client library, drawn from the seed: what aiokafka does beyond Kafka's protocol.

The sim driver stands in for aiokafka. Where aiokafka (0.14) has been seen to
do something a well-behaved client would not, under the wire mode
(``detstream sim --driver aiokafka``), the sim driver does it too, for a
share of the cases drawn here, so that a green run says something about the
engine's answer to it (docs/transport-contract.md, "Not yet produced by the
sim"). Each decision draws from a stream of its own, and only when its
situation arises: a run that never meets one draws nothing, and no other
decision of the run shifts.

- ``stall_holds_group`` (stream ``stalls``, one draw per stall): a worker that
  lost touch with its group coordinator sends it nothing, commits and
  TxnOffsetCommit included, until the stall ends. Its open transaction can
  then outlive ``transaction.timeout.ms`` and be aborted by the coordinator.
- ``sender_dies`` (stream ``client-faults``, one draw per reset connection
  or outage of the coordinator's broker that a transactional producer's
  coordinator request meets):
  aiokafka's sender routine dies when the connection of its FindCoordinator
  closes (aio-libs/aiokafka#1151), and the producer can send, commit or
  abort nothing any more.
- ``revoke_before_refusal`` (stream ``refusals``, one draw per commit the
  group refuses for its member or generation): aiokafka forgets the
  membership in the commit's answer and its coordinator task rejoins on the
  same step, calling the revoke listener with the old assignment, while the
  commit raises ``CommitFailedError`` to its caller. Which the engine meets
  first is not fixed: with this draw the revoke has begun before the commit
  raises (``--driver aiokafka`` met it so, standby_takeover chaos seed 3117).
"""

from __future__ import annotations

import random

__all__ = ["ClientFaults"]

#: of the stalls, the share that also holds the worker's coordinator requests.
STALL_HOLD_SHARE = 0.5
#: of the lost lookups of a transactional producer's coordinator (a reset connection, or an
#: outage of its broker, drawn once per outage), the share that kills the producer's sender.
#: Low enough that the common path (retries outlast the outage) stays common.
SENDER_DEATH_SHARE = 0.25
#: of the commits the group refuses for their member or generation, the share whose rejoin
#: (the revoke listener) begins before the commit raises to the engine.
REVOKE_FIRST_SHARE = 0.5


class ClientFaults:
    """The run's client-library faults; a stream of None never draws the fault."""

    def __init__(
        self, *, stalls: random.Random | None = None, senders: random.Random | None = None,
        refusals: random.Random | None = None,
        stall_hold_share: float = STALL_HOLD_SHARE, sender_death_share: float = SENDER_DEATH_SHARE,
        revoke_first_share: float = REVOKE_FIRST_SHARE,
    ) -> None:
        self._stalls = stalls
        self._senders = senders
        self._refusals = refusals
        self.stall_hold_share = stall_hold_share
        self.sender_death_share = sender_death_share
        self.revoke_first_share = revoke_first_share

    def stall_holds_group(self) -> bool:
        """Whether a stall beginning now also holds the worker's group coordinator requests."""
        return _draw(self._stalls, self.stall_hold_share)

    def sender_dies(self) -> bool:
        """Whether a transactional producer's sender dies on the coordinator lookup just lost."""
        return _draw(self._senders, self.sender_death_share)


    def revoke_before_refusal(self) -> bool:
        """Whether the rejoin after a refused commit reaches the engine before the refusal does."""
        return _draw(self._refusals, self.revoke_first_share)


def _draw(rng: random.Random | None, share: float) -> bool:
    return rng is not None and rng.random() < share
