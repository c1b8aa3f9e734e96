"""Properties of commit bookkeeping and assignment, over generated histories."""

from hypothesis import given
from hypothesis import strategies as st

from detstream._types import TP
from detstream.assignor import copartitioned_assignment
from detstream.engine.acks import OffsetTracker

TP0 = TP("t", 0)


@given(
    offsets=st.lists(st.integers(0, 1000), min_size=1, max_size=60, unique=True).map(sorted),
    data=st.data(),
)
def test_commit_point_never_passes_an_unacked_message(offsets, data):
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.delivered(TP0, offset)
    acked = data.draw(st.permutations(offsets).flatmap(lambda p: st.just(p[: len(p) // 2 + 1])))
    committed = 0
    for offset in acked:
        tracker.acked(TP0, offset)
        committed = tracker.to_commit().get(TP0, committed)
        unacked = [o for o in offsets if o not in set(acked[: acked.index(offset) + 1])]
        # everything below the commit point is acked: a crash loses nothing
        assert all(o >= committed for o in unacked)
    if set(acked) == set(offsets):
        assert committed == offsets[-1] + 1


@given(
    members=st.lists(st.text("abcdef", min_size=1, max_size=4), min_size=1, max_size=6, unique=True),
    counts=st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), st.integers(1, 12), min_size=1),
)
def test_assignment_is_a_partition_of_all_partitions(members, counts):
    members = sorted(members)
    subs = {m: frozenset(counts) for m in members}
    result = copartitioned_assignment(members, subs, counts)
    assigned = [tp for tps in result.values() for tp in tps]
    assert len(assigned) == len(set(assigned)) == sum(counts.values())
    sizes = [len(tps) for tps in result.values()]
    # balanced: per topic every member gets floor or ceil of its share
    for topic in counts:
        per = [sum(1 for tp in result[m] if tp.topic == topic) for m in members]
        assert max(per) - min(per) <= 1
    assert sum(sizes) == len(assigned)
