"""A gone process's write cannot land late: its connections are aborted, the kernel discards it.

The production driver under the simulator found the hole: a worker stopped while its host
was cut off left a produce request in the network, which the kernel retransmitted after the
process was gone and which landed after the partition's new owner wrote the key, so the
changelog ended with the older value (at-least-once cannot fence it; Kafka's own clients
leave the same hole). The Kafka driver now closes a connection with requests in flight as an
abort, and every connection of a dying process aborts (``abortive_close``); the simulated
network discards what such a connection held, on the wire and in the sim driver alike.
"""

from __future__ import annotations

from tests.pinned_run import run_pinned


def test_a_gone_processs_changelog_write_held_by_a_cut_is_discarded_not_landed_late() -> None:
    """timer_producer, default seed 9, production driver: w3's stop gives up while its host is
    cut off. The changelog record it sent for its last tick (11) used to land at 73.7 s, after
    w1 wrote 80 for the key (a count of 11 where 80 ticks were counted); its aborted connection
    discards it now, and every key's last record is the last one known to land."""
    outcome = run_pinned("timer_producer", "default", 9,
                         topics=("timer-producer-tick_counts-changelog", "ticks"))
    assert outcome["ok"], outcome["violations"]
    assert "request-discarded" in outcome["kinds"]  # the schedule still reaches the held request
    assert outcome["overtaken"] == {"timer-producer-tick_counts-changelog": [], "ticks": []}


def test_the_sim_driver_discards_a_produce_held_by_a_cut_once_its_client_gave_up() -> None:
    """standby_takeover, default seed 3, sim driver: w2's host is cut off from 3.5 s to 71.8 s;
    its produce requests held by the cut are discarded when their client gives up on them (the
    connection aborted), so nothing lands over the new owner's counts."""
    outcome = run_pinned("standby_takeover", "default", 3, driver="sim",
                         topics=("standby-counts-changelog",))
    assert outcome["ok"], outcome["violations"]
    assert "request-discarded" in outcome["kinds"]
    assert outcome["overtaken"] == {"standby-counts-changelog": []}
