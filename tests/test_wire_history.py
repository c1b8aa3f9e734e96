"""Under ``--driver aiokafka`` the write history marks what the broker acknowledged, as the sim
driver's producer does: the final read holds acknowledged writes to be readable (``final-read-lost``)
and counts an event's acknowledged write as its output when a zombie's copy was refused."""

from __future__ import annotations

from tests.pinned_run import run_pinned


def test_acknowledged_writes_are_acked_and_a_redone_events_refused_copy_is_not_called_lost() -> None:
    """group_by_chain, chaos seed 21: w2's twin takes its transactional id at 8.38 s while w2
    stalls with a transaction open; the zombie's repartition write for clicks[2]@31 is refused
    ``ProducerFenced``, and the twin redoes the event: its acknowledged write is the output, so
    no output is lost. Before the wire history marked acknowledged writes, no write counted as
    acked there, and the final read called such a refused copy lost
    (``final-read-refused-committed``). (Seed 20 reached it until session 32's producer moved
    the schedule: a late flush of a stalled member, fenced the same way.)"""
    outcome = run_pinned("group_by_chain", "chaos", 21)
    assert outcome["ok"], outcome["violations"]
    assert outcome["appended_all_acked"] and "ProducerFenced" in outcome["refused"]
