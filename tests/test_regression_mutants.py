"""Bugs found on real Kafka stay found: each regression mutant is caught by `detstream sim`.

A mutant (``detstream.mutants``) re-opens one fixed bug. For each, a sweep of
at most 50 chaos seeds of a project example must fail, and fail for that bug's
reason; the unmutated code passes the same seeds (the other tests here and
the example tests show that).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from detstream import mutants
from detstream.app import STOP_UNBOUNDED
from detstream.engine.committer import COMMIT_BEFORE_FLUSH
from detstream.engine.conductor import DELIVERY_BEFORE_RECOVERY
from detstream.engine.listener_guard import LISTENER_FAILURE_SWALLOWED
from detstream.engine.producer import FLUSH_BEFORE_SETTLING, SEND_FAILURE_IGNORED
from detstream.stream import ACK_BEFORE_PROCESSING
from detstream.tables.table import CHANGELOG_DECODE_UNCHECKED
from detstream.transport.any_broker import ADMIN_GIVES_UP
from sim.runner import SimOptions, run
from tests.unit import test_rebalance_listener

WORD_COUNT = "examples/word_count.py"


CHAOS = SimOptions(seed=0, duration=20.0, faults="chaos")


def caught_within_50_seeds(mutant: str, target: str = WORD_COUNT):
    """The first chaos seed (of 1..50) that fails with ``mutant`` on, and its report.

    The same seed must pass without the mutant: the failure is the bug's, not the run's.
    """
    with mutants.enabled(mutant):
        for seed in range(1, 51):
            report = run(target, replace(CHAOS, seed=seed))
            if not report.ok:
                break
        else:
            pytest.fail(f"the {mutant} mutant survived 50 chaos seeds of {target}")
    clean = run(target, replace(CHAOS, seed=seed))
    assert clean.ok, (seed, clean.violations)
    return seed, report


def test_delivery_before_recovery_is_caught_within_50_chaos_seeds():
    # Issue 9: on Kafka, records of a taken-over partition reached the agent before the
    # partition's table was recovered, and every key restarted at 1. The sim shows it
    # because its consumer, like aiokafka's, fetches for a while with a new assignment
    # before calling the listener, and offset lookups in the listener take time.
    seed, report = caught_within_50_seeds(DELIVERY_BEFORE_RECOVERY)
    checks = {v.check for v in report.violations}
    assert checks & {"opened-after-listener", "no-delivery-during-recovery", "counts_equal_input"}, (
        seed, checks,
    )


def test_send_failure_ignored_is_caught_within_50_chaos_seeds_of_word_count():
    # Issue 9: a send the broker refused was dropped unseen and its input committed. Under
    # chaos the sim's brokers refuse a worker host's produce requests for a while (the
    # `refuse` fault, an authorization failure): the engine must fail those events and
    # redo them. With the failure ignored, the table or the final read comes up short.
    seed, report = caught_within_50_seeds(SEND_FAILURE_IGNORED)
    assert report.coverage["send-refused"] > 0, seed


def test_flush_before_settling_is_caught_within_50_chaos_seeds():
    # Session 18: a flush that began after a send was refused, but before the send's
    # callback ran, did not wait for it, and its commit passed the event. The window is
    # two loop iterations wide; the sim reaches it because a client meets an error
    # response late and busy (timers such as the commit's run in between), and because a
    # commit request sent before the app crashed still reaches the broker.
    seed, report = caught_within_50_seeds(FLUSH_BEFORE_SETTLING, "tests/apps/refused_forward.py")
    assert "final-read-refused-committed" in {v.check for v in report.violations}, seed


AWAITING_RELAY = "tests/apps/awaiting_relay.py"


def test_ack_before_processing_is_caught_within_50_chaos_seeds():
    # Issue 11: acking an event when it is delivered, before the agent finished it, passed
    # 50 chaos seeds of word count unseen (its agents never await). An agent that awaits
    # per event leaves the window open: a commit passes the half-done event, a crash loses it.
    seed, report = caught_within_50_seeds(ACK_BEFORE_PROCESSING, AWAITING_RELAY)
    checks = {v.check for v in report.violations}
    assert checks & {"every_order_has_a_receipt", "final-read-unsent-committed"}, (seed, checks)


def test_commit_before_flush_is_caught_within_50_chaos_seeds():
    # Issue 11: an at-least-once commit sent before the producer flush passed word count
    # (exactly-once) unseen. The relay forwards without awaiting: its receipts sit in the
    # producer's buffer while the offsets go out, and a crash or a refusal loses them.
    seed, report = caught_within_50_seeds(COMMIT_BEFORE_FLUSH, AWAITING_RELAY)
    checks = {v.check for v in report.violations}
    assert checks & {"every_order_has_a_receipt", "final-read-unsent-committed",
                     "final-read-refused-committed"}, (seed, checks)


def test_changelog_decode_unchecked_is_caught_within_50_chaos_seeds():
    # Issue 9: a changelog record the table could not decode was applied as it was, and
    # every later event of its key failed. The scenario's older app version writes one;
    # under table_changelog_decode_errors="skip" recovery must leave it out.
    seed, report = caught_within_50_seeds(
        CHANGELOG_DECODE_UNCHECKED, "tests/scenarios/foreign_changelog_record.py"
    )
    assert {v.check for v in report.violations} & {"table-equals-changelog", "counts_are_exact"}


def test_listener_failure_swallowed_is_caught_within_50_chaos_seeds_of_word_count():
    # Issue 9: aiokafka logs and swallows a listener's exception, and the worker ran half
    # assigned (table recovery skipped). Under chaos a `refuse` fault armed for a worker's
    # next takeover denies the listener's offset lookups: the engine must crash the app,
    # never open the partitions.
    seed, report = caught_within_50_seeds(LISTENER_FAILURE_SWALLOWED)
    assert "opened-after-listener" in {v.check for v in report.violations}, seed
    assert report.coverage["listener-failed"] > 0, seed


def test_listener_failure_swallowed_is_caught_by_the_simulated_listener_test():
    # The same bug with a store that cannot open (the RocksDB lock of a shared --datadir).
    with mutants.enabled(LISTENER_FAILURE_SWALLOWED):
        with pytest.raises(AssertionError):
            test_rebalance_listener.test_a_failing_listener_step_crashes_the_app_naming_the_error()


def test_stop_unbounded_is_caught_within_50_chaos_seeds_of_word_count():
    # Issue 9: SIGTERM with the broker unreachable ended in a cancelled stop (exit 1, a raw
    # CancelledError, clients unclosed). Under chaos some graceful stops begin as the
    # worker's host loses the cluster for longer than the shutdown timeout: the stop must
    # give the broker up at its deadline and still finish in time.
    # A stall that holds the worker's group coordinator requests makes the cluster unreachable as well: a stop
    # during it waits on its final commit.
    seed, report = caught_within_50_seeds(STOP_UNBOUNDED)
    assert "graceful-stop" in {v.check for v in report.violations}, seed
    assert report.coverage["stop-unreachable"] + report.coverage["stall-holds-group"] > 0, seed


def test_admin_gives_up_on_a_down_broker_is_caught_within_50_chaos_seeds_of_word_count():
    # Found on the wire (word_count, chaos seed 2): aiokafka's admin sends a metadata request
    # to a random known broker and raises NodeNotReadyError while that one is down, and a
    # worker starting during a broker restart failed its start. The sim admin picks its
    # broker the same way; the engine's shared retry (transport.any_broker) must ask again.
    seed, report = caught_within_50_seeds(ADMIN_GIVES_UP)
    assert "no-crash-on-a-down-broker" in {v.check for v in report.violations}, seed
    assert report.coverage["admin-node-not-ready"] > 0, seed


def test_unknown_mutants_are_refused():
    with pytest.raises(ValueError, match="unknown mutant"):
        with mutants.enabled("no-such-bug"):
            pass
