"""Under ``--driver aiokafka`` a zombie's transactional offsets are refused by the group
coordinator, because the driver's TxnOffsetCommit (v3, KIP-447) names the member.

aiokafka 0.14 sends v0, which names none: a worker stalled past its expulsion committed its
open transaction when the stall ended, and the events the new owner had redone had their
output committed twice. The simulator found it on these schedules (chaos seed 20).
"""

from __future__ import annotations

import pytest

from tests.pinned_run import run_pinned


# take_batches: seed 30 since session 42's metadata waits moved seed 20's schedule
@pytest.mark.parametrize(("workload", "seed"), [("page_views", 20), ("take_batches", 30), ("proj", 20)])
def test_a_stalled_members_transactional_offsets_are_refused_after_its_expulsion(
    workload: str, seed: int,
) -> None:
    outcome = run_pinned(workload, "chaos", seed)
    assert outcome["ok"], outcome["violations"]
    assert "commit-rejected" in outcome["kinds"]  # the refusal was reached, not dodged


def test_a_refused_transaction_is_aborted_at_the_broker_not_joined_by_the_next_one() -> None:
    """long_recovery, chaos seed 9: three workers expelled while broker b2 was down are
    refused their transactional offsets at 16.1 s. aiokafka's abortable error forgot what
    the transaction had added at the broker, so the abort sent no EndTxn and each worker's
    next transaction joined the open one: its commit committed the refused transaction's
    changelog writes too, and four counts came out one over (``counts_equal_input``)."""
    outcome = run_pinned("long_recovery", "chaos", 9)
    assert outcome["ok"], outcome["violations"]
    assert {"commit-rejected", "txn-abort"} <= set(outcome["kinds"])
