"""Properties of standby placement, over generated groups (members, topics, replicas, history)."""

from hypothesis import given
from hypothesis import strategies as st

from detstream._types import TP
from detstream.assignor import plan_group

CHANGELOGS = ["app-a-changelog", "app-b-changelog"]
SOURCES = ["src", "other"]


@st.composite
def groups(draw, uniform=False):
    """Members, their subscriptions, partition counts, replicas, and what each held before."""
    names = draw(st.lists(st.sampled_from("mnopqrstuv"), min_size=1, max_size=7, unique=True))
    topics = CHANGELOGS[:1] + SOURCES[:1] if uniform else CHANGELOGS + SOURCES
    counts = {t: draw(st.integers(1, 12)) for t in topics}
    if uniform:
        subs = {m: frozenset(topics) for m in names}
    else:
        subs = {m: frozenset(draw(st.sets(st.sampled_from(topics), min_size=1))) for m in names}
    replicas = draw(st.integers(0, 4))
    every = [TP(t, p) for t in CHANGELOGS if t in counts for p in range(counts[t])]
    held = {m: set(draw(st.lists(st.sampled_from(every), max_size=8))) for m in names} if every else {}
    return names, subs, counts, replicas, held


def _plan(group, held=None, owned=None):
    names, subs, counts, replicas, drawn_held = group
    return plan_group(
        names, subs, counts, changelogs=CHANGELOGS, replicas=replicas,
        held=drawn_held if held is None else held, owned=owned,
    )


@given(groups())
def test_every_changelog_partition_gets_its_copies_elsewhere(group):
    names, subs, counts, replicas, _ = group
    plan = _plan(group)
    owners = {tp: m for m, share in plan.items() for tp in share.active}
    for share in plan.values():
        assert not share.active & share.standby  # never a copy on the active worker
        assert all(tp.topic in CHANGELOGS for tp in share.standby)
    for tp, owner in owners.items():
        if tp.topic not in CHANGELOGS:
            continue
        eligible = [m for m in names if m != owner and tp.topic in subs[m]]
        holders = [m for m, share in plan.items() if tp in share.standby]
        assert sorted(holders) == sorted(set(holders))
        assert set(holders) <= set(eligible)
        assert len(holders) == min(replicas, len(eligible))  # one worker: none


@given(groups())
def test_no_standby_could_move_to_a_worker_with_two_fewer(group):
    names, subs, *_ = group
    plan = _plan(group)
    load = {m: len(share.standby) for m, share in plan.items()}
    for giver, share in plan.items():
        for tp in share.standby:
            for taker in names:
                movable = (
                    tp.topic in subs[taker] and tp not in plan[taker].standby
                    and tp not in plan[taker].active
                )
                assert not (movable and load[giver] - load[taker] >= 2), (giver, taker, tp, load)


@given(groups(uniform=True))
def test_one_table_on_identical_workers_is_balanced_within_one(group):
    plan = _plan(group)
    load = [len(share.standby) for share in plan.values()]
    assert max(load) - min(load) <= 1


@given(groups())
def test_a_stable_group_keeps_its_standbys(group):
    first = _plan(group)
    held = {m: set(share.active | share.standby) for m, share in first.items()}
    owned = {m: set(share.active) for m, share in first.items()}
    assert _plan(group, held=held, owned=owned) == first


@given(groups(uniform=True), st.data())
def test_a_member_leaving_moves_only_its_own_partitions(group, data):
    names, subs, counts, replicas, held = group
    first = _plan(group)
    gone = data.draw(st.sampled_from(names))
    rest = [m for m in names if m != gone]
    if not rest:
        return
    owned = {m: set(share.active) for m, share in first.items()}
    second = _plan((rest, subs, counts, replicas, held), owned=owned)
    for member in rest:
        assert first[member].active <= second[member].active


@given(groups(uniform=True))
def test_a_member_joining_takes_only_its_share(group):
    names, subs, counts, replicas, held = group
    first = _plan(group)
    owned = {m: set(share.active) for m, share in first.items()}
    joined = [*names, "z"]
    second = _plan((joined, {**subs, "z": subs[names[0]]}, counts, replicas, held), owned=owned)
    moved = sum(len(first[m].active - second[m].active) for m in names)
    # what the newcomer now processes came from the others, and nothing else moved
    assert moved == len(second["z"].active)
    group_sizes = {count for count in counts.values()}
    assert len(second["z"].active) <= sum(-(-c // len(joined)) for c in group_sizes) * len(counts)


@given(groups(), st.randoms(use_true_random=False))
def test_member_order_does_not_matter(group, rnd):
    names, subs, counts, replicas, held = group
    shuffled = list(names)
    rnd.shuffle(shuffled)
    assert _plan((shuffled, subs, counts, replicas, held)) == _plan(group)
