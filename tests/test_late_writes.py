"""A gone process's write that lands late is named, not called lost (at-least-once's hole).

The production driver under the simulator found it: a worker stopped while
its host was cut off leaves a produce request in the network, which lands
after the partition's new owner wrote the key (docs/production.md,
Guarantees). Exactly-once fences it; at-least-once cannot.
"""

from __future__ import annotations

from tests.pinned_run import run_pinned


def test_a_gone_processs_late_changelog_write_is_named_not_called_lost() -> None:
    """timer_producer, default seed 9, production driver: w3's stop gives up while its host is
    cut off; the changelog record it sent for its last tick (11) is held by the network and
    lands at 73.7 s, after w1 wrote 80 for the key. At-least-once cannot fence that (docs/
    production.md, Guarantees): the workload's count check allows exactly the keys whose last
    record is older than their last landed write (``RunResult.overtaken_keys``)."""
    outcome = run_pinned("timer_producer", "default", 9,
                         topics=("timer-producer-tick_counts-changelog", "ticks"))
    assert outcome["ok"], outcome["violations"]
    assert outcome["overtaken"] == {
        "timer-producer-tick_counts-changelog": ['"464ef17d2f51"', '"86f5aea9932a"'], "ticks": []}


def test_the_sim_driver_holds_a_produce_sent_into_a_partition_until_it_heals() -> None:
    """standby_takeover, default seed 3, sim driver: w2's host is cut off from 3.5 s; its
    stop gives up at 45.5 s with changelog records in the network, which land at 71.8 s, after
    the new owner wrote those keys. Until session 30 the sim driver lost such a request for
    good (only the production driver on the wire showed the late write); the count check
    allows exactly the overtaken keys."""
    outcome = run_pinned("standby_takeover", "default", 3, driver="sim",
                         topics=("standby-counts-changelog",))
    assert outcome["ok"], outcome["violations"]
    assert "request-late" in outcome["kinds"]
    assert outcome["overtaken"]["standby-counts-changelog"]  # the check had keys to allow
