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
