from detstream._types import TP
from detstream.assignor import copartitioned_assignment


def test_every_partition_assigned_exactly_once():
    members = ["a", "b", "c"]
    subs = {m: frozenset({"src", "log", "one"}) for m in members}
    result = copartitioned_assignment(members, subs, {"src": 8, "log": 8, "one": 1})
    all_tps = [tp for tps in result.values() for tp in tps]
    assert sorted(all_tps) == sorted(
        [TP("src", i) for i in range(8)] + [TP("log", i) for i in range(8)] + [TP("one", 0)]
    )


def test_copartitioned_topics_travel_together():
    members = ["a", "b", "c"]
    subs = {m: frozenset({"src", "changelog"}) for m in members}
    result = copartitioned_assignment(members, subs, {"src": 8, "changelog": 8})
    for tps in result.values():
        src = {tp.partition for tp in tps if tp.topic == "src"}
        log = {tp.partition for tp in tps if tp.topic == "changelog"}
        assert src == log


def test_only_subscribers_get_a_topic_and_unknown_topics_wait():
    subs = {"a": frozenset({"x", "missing"}), "b": frozenset({"y"})}
    result = copartitioned_assignment(["a", "b"], subs, {"x": 2, "y": 2})
    assert result == {"a": {TP("x", 0), TP("x", 1)}, "b": {TP("y", 0), TP("y", 1)}}


def test_deterministic():
    subs = {m: frozenset({"t"}) for m in ("m1", "m2")}
    assert copartitioned_assignment(["m1", "m2"], subs, {"t": 5}) == copartitioned_assignment(
        ["m1", "m2"], subs, {"t": 5}
    )
