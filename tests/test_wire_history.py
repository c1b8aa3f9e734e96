"""Under ``--driver aiokafka`` the write history marks what the broker acknowledged, as the sim
driver's producer does: the final read holds acknowledged writes to be readable (``final-read-lost``)
and counts an event's acknowledged write as its output when a zombie's copy was refused."""

from __future__ import annotations

from tests.pinned_run import run_pinned


def test_acknowledged_writes_are_acked_and_a_redone_events_refused_copy_is_not_called_lost() -> None:
    """group_by_chain, chaos seed 20: w3 stalls with a transaction open; w1 redoes its events
    (t=67.7 s) and commits; w3's late flush is fenced. Its changelog writes were refused, and
    w1's acknowledged writes for the same events are their output: no output lost. Before the
    wire history marked acknowledged writes, no write counted as acked there, and the final
    read called the refused copies lost (``final-read-refused-committed``)."""
    outcome = run_pinned("group_by_chain", "chaos", 20)
    assert outcome["ok"], outcome["violations"]
    assert outcome["appended_all_acked"] and "ProducerFenced" in outcome["refused"]
