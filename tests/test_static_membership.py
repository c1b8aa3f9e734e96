"""Static membership (KIP-345) on the simulator: what the group does, what the engine does.

The sim's group coordinator gives a member joining with a known group instance
id the old member's place (assignment, generation; no rebalance when the group
is stable), fences the old member id (``FencedInstanceIdError`` on its next
heartbeat, sync, join or commit), and expires a static member that does not
come back after its session timeout; a static member's stop does not leave the
group. The engine stops for good when fenced: it gives its partitions up at
once and the app crashes. ``SimOptions(static_membership=True)`` (``detstream
sim --static-membership``) names every worker's instance after its slot, so
chaos plans reach all of it: restarts rejoin in place, twins fence each other.
"""

from __future__ import annotations

import asyncio

import detstream
from detstream import mutants
from detstream.engine.conductor import INSTANCE_FENCING_IGNORED
from detstream.errors import FencedInstanceIdError
from sim.driver import SimTransport
from sim.runner import SimOptions, run
from sim.testing import simulate
from tests.unit.test_table_recovery import feed

RELAY = "tests/apps/awaiting_relay.py"
#: chaos seed 24 of awaiting_relay under static membership: a twin's zombie (w3) joins late
#: and takes the instance back from its replacement (w3'), which is told at its next commit.
FENCED_REPLACEMENT = SimOptions(seed=24, duration=20.0, faults="chaos", static_membership=True)


def _counting_app(cluster, name: str, instance: str):
    app = detstream.App(
        "static", broker="sim://", topic_partitions=2, consumer_group_instance_id=instance,
        table_changelog_cache_size=0,
    )
    app.client_name = name
    app.trace_hook = cluster.trace.record
    app.transport = SimTransport(cluster=cluster, name=name, app=app)
    words = app.topic("words", partitions=2, internal=True, value_type=str)
    seen: list[str] = []

    @app.agent(words)
    async def count(stream):
        async for word in stream:
            seen.append(word)

    return app, seen


def _two_processes_with_one_instance_id(ignore_fencing: bool = False):
    async def main(cluster):
        first, first_seen = _counting_app(cluster, "w1", "worker-1")
        await first.start()
        await asyncio.sleep(5)  # joined (the initial rebalance delay is 3 s)
        await feed(cluster, ["a", "b"])
        await asyncio.sleep(1)
        generation = first.conductor.consumer.generation
        second, second_seen = _counting_app(cluster, "w1b", "worker-1")
        await second.start()
        await asyncio.sleep(1)
        taken = (second.conductor.consumer.generation, sorted(map(str, second.conductor.assignment())))
        await asyncio.sleep(5)  # past the first one's next commit and heartbeat
        await feed(cluster, ["c", "d"])
        await asyncio.sleep(3)
        outcome = dict(
            generation=generation, taken=taken,
            first_crashed=first.crashed, reason=first.crash_reason,
            first_kept=sorted(map(str, first.conductor.assignment())),
            first_seen=list(first_seen), second_seen=list(second_seen),
            rebalances=[e.fields["generation"] for e in cluster.trace.of_kind("rebalance")],
            told=[(e.actor, e.fields["told"]) for e in cluster.trace.of_kind("instance-fenced")
                  if e.actor == "w1"],
        )
        await second.stop()
        if not first.crashed:
            await first.stop()
        return outcome

    with mutants.enabled(*([INSTANCE_FENCING_IGNORED] if ignore_fencing else [])):
        return simulate(main, seed=1)


def test_a_second_process_with_the_instance_id_takes_the_place_and_the_first_stops_for_good():
    out = _two_processes_with_one_instance_id()
    assert out["rebalances"] == [1]  # the second one took the place without a rebalance
    assert out["taken"][0] == out["generation"] == 1
    assert out["taken"][1] == ["static-__assignor-__leader[0]", "words[0]", "words[1]"]
    assert out["told"] and out["first_crashed"], out
    assert isinstance(out["reason"], FencedInstanceIdError) and out["reason"].instance == "worker-1"
    assert out["first_kept"] == []  # given up at once, before the crash
    assert sorted(out["first_seen"]) == ["a", "b"] and sorted(out["second_seen"]) == ["c", "d"]


def test_the_mutant_that_ignores_the_fencing_keeps_the_partitions():
    out = _two_processes_with_one_instance_id(ignore_fencing=True)
    assert out["told"] and not out["first_crashed"]
    assert out["first_kept"]  # it still believes it owns them


def test_a_restart_rejoins_in_place_and_a_stop_does_not_leave():
    report = run("examples/word_count.py", SimOptions(seed=1, duration=20.0, faults="chaos",
                                                       static_membership=True))
    assert report.ok, report.violations
    assert report.coverage["static-rejoin"] > 0 and report.coverage["static-leave-skipped"] > 0
    joins = list(report.trace.of_kind("member-join"))
    assert joins and all("instance" in e.fields for e in joins)
    assert not list(report.trace.of_kind("member-leave"))


def test_without_the_option_nobody_is_static():
    report = run("examples/word_count.py", SimOptions(seed=1, duration=20.0, faults="chaos"))
    assert not any("instance" in e.fields for e in report.trace.of_kind("member-join"))
    assert report.coverage["static-rejoin"] == report.coverage["static-leave-skipped"] == 0


def test_a_fenced_replacement_stops_and_processes_nothing_after_it_was_told():
    report = run(RELAY, FENCED_REPLACEMENT)
    assert report.ok, report.violations
    told = [e for e in report.trace.of_kind("instance-fenced") if e.actor == "w3'"]
    assert told, "the replacement was not fenced"
    crashed = [e for e in report.trace.of_kind("app-crashed") if e.actor == "w3'"]
    assert crashed and crashed[0].fields["error"] == "FencedInstanceIdError"
    replaced = [e.fields for e in report.trace.of_kind("member-replaced")]
    assert any(f["replaced"].endswith("w3'-5") and not f["rebalance"] for f in replaced), replaced


def test_the_sim_catches_the_engine_going_on_after_it_was_fenced():
    with mutants.enabled(INSTANCE_FENCING_IGNORED):
        report = run(RELAY, FENCED_REPLACEMENT)
    assert "no-delivery-after-fenced" in {v.check for v in report.violations}


def test_the_option_survives_a_trace_file_and_the_replay_line(tmp_path):
    from detstream.cli.sim import command_line
    from sim import explore

    options = SimOptions(seed=3, duration=5.0, faults="none", static_membership=True)
    report = run(RELAY, options)
    explore.write_trace(report, tmp_path / "run.trace")
    _, read, _ = explore.read_trace(tmp_path / "run.trace")
    assert read.static_membership
    assert command_line(RELAY, options).endswith("--faults none --static-membership")
    assert "--static-membership" not in command_line(RELAY, SimOptions(seed=3))
