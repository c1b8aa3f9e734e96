"""A member the group expelled gives its partitions up at the revoke without flushing its tables.

``--driver aiokafka`` found it (standby_takeover, chaos seed 3117, session 36): a worker
stalled past its session timeout, its commits held, kept table writes cached. When the stall
ended its held commit was refused; aiokafka forgot the membership in that answer and its
coordinator task rejoined at once, calling the revoke listener before the commit raised to
the engine. The revoke flushed the cached writes (stale counts) into changelogs the new
owner had recovered from and written since: ``table-equals-changelog`` failed on the new
owner. Kafka's Java consumer calls ``onPartitionsLost`` there; the engine now asks the
consumer (``Consumer.expelled``) and loses the partitions instead (trace ``expelled``).

The sim driver met the ordering too once it behaved as aiokafka does (a refused commit
rejoins at once; which of the two reaches the engine first is drawn per refusal), and
``no-changelog-write-after-refusal`` sees the stale flush whatever the values it wrote
(tests/test_planted_mutants.py pins the ``expelled-revoke-flushes`` mutant there).
"""

from __future__ import annotations

from tests.pinned_run import run_pinned


def test_the_production_driver_loses_an_expelled_members_partitions_at_the_revoke() -> None:
    outcome = run_pinned("standby_takeover", "chaos", 3117)
    assert outcome["ok"], outcome["violations"]
    assert {"commit-rejected", "expelled"} <= set(outcome["kinds"])  # reached, not dodged


def test_the_sim_driver_reaches_the_revoke_before_the_refusal() -> None:
    outcome = run_pinned("standby_takeover", "chaos", 21, driver="sim")
    assert outcome["ok"], outcome["violations"]
    assert {"expulsion-learned", "expelled"} <= set(outcome["kinds"])
