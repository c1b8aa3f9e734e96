"""Under ``--driver aiokafka`` the write history marks what the broker acknowledged, as the sim
driver's producer does: the final read holds acknowledged writes to be readable (``final-read-lost``)
and counts an event's acknowledged write as its output when a zombie's copy was refused."""

from __future__ import annotations

from dataclasses import replace

from sim import zoo
from sim.runner import SimOptions, run


def test_acknowledged_writes_are_acked_and_a_redone_events_refused_copy_is_not_called_lost() -> None:
    """group_by_chain, chaos seed 20: w3 stalls with a transaction open; w1 redoes its events
    (t=67.7 s) and commits; w3's late flush is fenced. Its changelog writes were refused, and
    w1's acknowledged writes for the same events are their output: no output lost. Before the
    wire history marked acknowledged writes, no write counted as acked there, and the final
    read called the refused copies lost (``final-read-refused-committed``)."""
    workload = next(w for w in zoo.ZOO if w.name == "group_by_chain")
    options = replace(workload.options(SimOptions(seed=20, faults="chaos")), driver="aiokafka")
    report = run(workload.path, options)
    assert report.ok, [(v.check, v.message) for v in report.violations]
    appended = [w for w in report.cluster.history.writes if w.offsets]
    assert appended and all(w.acked for w in appended)
    assert any(w.refused == "ProducerFenced" for w in report.cluster.history.writes)
