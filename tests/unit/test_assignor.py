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


# -- standby replicas -----------------------------------------------------------------
from detstream.assignor import plan_group, standby_assignment  # noqa: E402
from detstream.assignor_wire import (  # noqa: E402
    SubscriptionInfo,
    decode_standbys,
    decode_subscription,
    encode_standbys,
    encode_subscription,
    plan_from_subscriptions,
)

LOG = "app-counts-changelog"


def _plan(members, *, replicas=1, partitions=6, held=None, owned=None, topics=("src", LOG)):
    subs = {m: frozenset(topics) for m in members}
    counts = {t: partitions for t in topics}
    return plan_group(
        members, subs, counts, changelogs={LOG}, replicas=replicas, held=held, owned=owned
    )


def _standby_counts(plan):
    return {m: len(p.standby) for m, p in plan.items()}


def test_standbys_never_on_the_active_worker_and_only_for_changelogs():
    plan = _plan(["a", "b", "c"], replicas=2)
    for share in plan.values():
        assert not share.active & share.standby
        assert all(tp.topic == LOG for tp in share.standby)
    copies = [tp for share in plan.values() for tp in share.standby]
    assert sorted(copies) == sorted(TP(LOG, i) for i in range(6) for _ in range(2))


def test_replicas_setting_is_the_number_of_copies_capped_by_the_other_workers():
    for replicas, expected in ((0, 0), (1, 1), (2, 2), (5, 2)):
        plan = _plan(["a", "b", "c"], replicas=replicas)
        for i in range(6):
            holders = [m for m, share in plan.items() if TP(LOG, i) in share.standby]
            assert len(holders) == expected == len(set(holders))


def test_one_worker_gets_no_standby():
    plan = _plan(["only"], replicas=3)
    assert plan["only"].standby == frozenset()
    assert len(plan["only"].active) == 12


def test_standbys_are_balanced():
    for members in (["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]):
        for partitions in (1, 4, 6, 7, 12):
            counts = _standby_counts(_plan(members, partitions=partitions))
            assert max(counts.values()) - min(counts.values()) <= 1, (members, partitions, counts)


def _warm(plan, held):
    """Changelog partitions (active or standby) placed on a worker whose store already has them."""
    return sum(
        1 for m, share in plan.items() for tp in share.standby | share.active
        if tp.topic == LOG and tp in held.get(m, ())
    )


def test_standbys_stick_to_the_worker_that_held_them():
    first = _plan(["a", "b", "c"])
    held = {m: set(p.active | p.standby) for m, p in first.items()}
    owned = {m: set(p.active) for m, p in first.items()}
    # the same group again: nothing moves
    assert _plan(["a", "b", "c"], held=held, owned=owned) == first
    # the group changes: at least as many copies land where the data is as without stickiness
    for members in (["a", "b", "c", "d"], ["a", "b"], ["a", "c", "e"]):
        sticky, blind = _plan(members, held=held), _plan(members)
        assert _warm(sticky, held) >= _warm(blind, held)
    # a worker leaves: the others keep every standby they had that is not now their active
    second = _plan(["a", "b"], held=held, owned=owned)
    for m in "ab":
        assert {tp for tp in first[m].standby if tp not in second[m].active} <= second[m].standby


def test_held_data_wins_over_load_order():
    members = ["a", "b", "c"]
    subs = {m: frozenset({LOG}) for m in members}
    active = {"a": {TP(LOG, 0)}, "b": set(), "c": set()}
    fresh = standby_assignment(members, active, subs, {LOG}, 1)
    assert fresh["b"] == {TP(LOG, 0)}  # the next worker after the owner
    sticky = standby_assignment(members, active, subs, {LOG}, 1, held={"c": {TP(LOG, 0)}})
    assert sticky["c"] == {TP(LOG, 0)} and not sticky["b"]


def test_only_subscribers_of_the_changelog_get_its_standbys():
    subs = {"a": frozenset({LOG}), "b": frozenset({LOG}), "c": frozenset({"other"})}
    plan = plan_group(["a", "b", "c"], subs, {LOG: 4, "other": 1}, changelogs={LOG}, replicas=2)
    assert plan["c"].standby == frozenset()
    assert len(plan["a"].standby) + len(plan["b"].standby) == 4


def test_wire_round_trip_and_foreign_bytes():
    info = SubscriptionInfo(frozenset({LOG}), 2, frozenset({TP(LOG, 1), TP(LOG, 3)}))
    assert decode_subscription(encode_subscription(info)) == info
    assert decode_standbys(encode_standbys({TP(LOG, 0), TP("x", 2)})) == {TP(LOG, 0), TP("x", 2)}
    for foreign in (b"", None, b"\x00\x01", b'{"v": 99, "standbys": {}}', b"[1]"):
        assert decode_standbys(foreign) == frozenset()
        assert decode_subscription(foreign) == SubscriptionInfo()
    assert encode_subscription(SubscriptionInfo()) == b"" and encode_standbys(()) == b""


def test_members_given_the_same_bytes_get_the_same_standbys_and_others_their_own():
    mine, theirs = encode_standbys({TP(LOG, 0)}), encode_standbys({TP(LOG, 1), TP(LOG, 2)})
    for _ in range(3):  # answers kept by their bytes are never another's
        assert decode_standbys(bytes(mine)) == {TP(LOG, 0)}
        assert decode_standbys(bytes(theirs)) == {TP(LOG, 1), TP(LOG, 2)}
        assert decode_standbys(bytearray(mine)) == {TP(LOG, 0)}


def test_leader_plans_from_what_members_sent():
    subs = {m: frozenset({"src", LOG}) for m in ("m1", "m2")}
    asking = encode_subscription(SubscriptionInfo(frozenset({LOG}), 1))
    plan = plan_from_subscriptions(subs, {"m1": asking, "m2": asking}, {"src": 2, LOG: 2})
    assert plan["m1"].standby == {TP(LOG, 1)} and plan["m2"].standby == {TP(LOG, 0)}
    # plain members (no user_data) get actives only
    plain = plan_from_subscriptions(subs, {}, {"src": 2, LOG: 2})
    assert all(not p.standby for p in plain.values())
    assert {m: set(p.active) for m, p in plain.items()} == copartitioned_assignment(
        ["m1", "m2"], subs, {"src": 2, LOG: 2}
    )


def test_a_partition_that_moves_goes_to_the_worker_with_its_standby():
    first = _plan(["a", "b", "c"])
    held = {m: set(p.active | p.standby) for m, p in first.items()}
    owned = {m: set(p.active) for m, p in first.items()}
    second = _plan(["a", "b"], held=held, owned=owned)  # c crashed
    for tp in first["c"].active:
        if tp.topic == LOG:
            new_owner = next(m for m in "ab" if tp in second[m].active)
            assert tp in first[new_owner].standby  # promoted: no full replay
    for m in "ab":
        assert first[m].active <= second[m].active  # survivors keep what they had


def test_without_history_the_assignment_is_round_robin():
    plan = _plan(["a", "b", "c"], partitions=7)
    assert sorted(tp.partition for tp in plan["a"].active if tp.topic == "src") == [0, 3, 6]
    assert sorted(tp.partition for tp in plan["b"].active if tp.topic == "src") == [1, 4]
