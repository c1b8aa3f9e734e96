"""The engine's Tracer: where a step goes, by ``record`` or by ``record_atoms``."""

from __future__ import annotations

from typing import Any

from detstream._types import TP
from detstream.tracing import Tracer
from sim.trace import Trace


def test_record_atoms_goes_through_record_without_an_atoms_hook() -> None:
    seen: list[tuple[str, str, dict[str, Any]]] = []
    tracer = Tracer("w1", lambda name, kind, **fields: seen.append((name, kind, fields)))
    tracer.record_atoms("deliver", {"tp": TP("t", 0), "offset": 3, "key": None})
    assert seen == [("w1", "deliver", {"tp": TP("t", 0), "offset": 3, "key": None})]


def test_an_atoms_hook_gets_the_fields_dict_under_the_client_name() -> None:
    plain: list[str] = []
    atoms: list[tuple[str, str, dict[str, Any]]] = []
    tracer = Tracer("w1", lambda name, kind, **fields: plain.append(kind))
    tracer.atoms_hook = lambda name, kind, fields: atoms.append((name, kind, fields))
    tracer.client_name = "w2"
    tracer.record_atoms("deliver", {"offset": 1})
    tracer.record("commit", offsets={})
    assert atoms == [("w2", "deliver", {"offset": 1})] and plain == ["commit"]


def test_a_new_hook_drops_the_atoms_hook_set_for_the_old_one() -> None:
    old: list[str] = []
    new: list[str] = []
    tracer = Tracer("w1", lambda name, kind, **fields: old.append(kind))
    tracer.atoms_hook = lambda name, kind, fields: old.append(kind)
    tracer.hook = lambda name, kind, **fields: new.append(kind)
    tracer.record_atoms("deliver", {"offset": 1})
    assert old == [] and new == ["deliver"]


def test_a_trace_renders_a_step_recorded_as_atoms_as_it_renders_the_same_step_recorded() -> None:
    by_record, by_atoms = Trace(lambda: 1.5), Trace(lambda: 1.5)
    by_record.record("w1", "deliver", tp=TP("words", 2), offset=7, key=b"k")
    by_atoms.record_atoms("w1", "deliver", {"tp": TP("words", 2), "offset": 7, "key": b"k"})
    assert list(by_record.lines) == list(by_atoms.lines)
    assert by_record.sha256() == by_atoms.sha256()
    assert [e.fields["offset"] for e in by_atoms.of_kind("deliver")] == [7]


def test_steps_of_one_partition_share_one_tp_object_either_way() -> None:
    trace = Trace(lambda: 0.0)
    trace.record("w1", "deliver", tp=TP("words", 2), offset=1)
    trace.record_atoms("w1", "deliver", {"tp": TP("words", 2), "offset": 2})
    first, second = (e.fields["tp"] for e in trace.of_kind("deliver"))
    assert first is second


def test_of_kinds_merges_the_kinds_in_trace_order() -> None:
    trace = Trace(lambda: 0.0)
    for index, kind in enumerate(["a", "b", "a", "c", "b"]):
        trace.record("w1", kind, n=index)
    assert [e.fields["n"] for e in trace.of_kinds("b", "a")] == [0, 1, 2, 4]
    assert trace.kind_counts() == {"a": 2, "b": 2, "c": 1}
