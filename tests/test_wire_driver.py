"""detstream's production driver (aiokafka) under simulation, on the simulated brokers' wire.

The first end-to-end step of issue 12: an App with ``broker="kafka://..."``
starts its aiokafka clients inside the sandbox; they create the app's topics,
join the consumer group, fetch, and commit at the simulated cluster (no
socket, no thread, virtual time), and the same seed gives the same trace.
"""

import asyncio

import pytest

import detstream
from sim.testing import simulate
from sim.wire.broker import serve_cluster
from sim.zoo import ROOT, ZOO, Workload


def _app():
    app = detstream.App("wire-e2e", broker="kafka://localhost:9092", topic_partitions=2)
    app.client_name = "w1"  # the process's name: an explicit client id, the same every run
    orders = app.topic("orders", value_type=str, partitions=2)
    seen: list[str] = []

    @app.agent(orders)
    async def take(stream):
        async for order in stream:
            seen.append(order)

    return app, orders, seen


async def _run(cluster):
    serve_cluster(asyncio.get_running_loop(), cluster, [("localhost", 9092)])
    app, orders, seen = _app()
    await app.start()
    try:
        for i in range(10):
            await orders.send(key=f"k{i}", value=f"order-{i}")
        for _ in range(60):
            if len(seen) >= 10:
                break
            await asyncio.sleep(1.0)
        await asyncio.sleep(5.0)  # a commit interval or two
    finally:
        await app.stop()
    committed = cluster.group("wire-e2e").committed
    created = {name: len(state.logs) for name, state in cluster.topics.items()}
    return sorted(seen), sum(committed.values()), created, cluster.trace.sha256()


def test_an_agent_on_the_aiokafka_driver_consumes_and_commits_at_the_simulated_cluster():
    seen, committed, created, sha = simulate(_run, seed=1)
    assert seen == sorted(f"order-{i}" for i in range(10))
    assert committed == 10  # every record's offset committed, over both partitions
    assert created["orders"] == 2  # the app's admin client created it (CreateTopics)
    assert simulate(_run, seed=1)[-1] == sha  # deterministic, aiokafka and all


def test_detstream_sim_driver_aiokafka_runs_an_at_least_once_project_without_faults():
    from sim.runner import SimOptions, run

    options = SimOptions(seed=1, duration=20.0, faults="none", driver="aiokafka")
    report = run("tests/apps/awaiting_relay.py", options)
    assert report.ok, report.violations  # every order's receipt, the final read, convergence
    assert report.coverage["rebalance"] >= 1  # three workers joined through aiokafka's coordinator


def test_an_exactly_once_project_runs_on_aiokafkas_transactions_and_repartitions():
    """group_by_chain: two group_by hops and two tables, each hop a transaction of aiokafka's
    (InitProducerId, AddPartitionsToTxn, TxnOffsetCommit, EndTxn, control batches), the same
    trace twice in one process."""
    from sim.runner import SimOptions, run

    options = SimOptions(seed=1, duration=15.0, faults="none", driver="aiokafka")
    report = run("sim/workloads/group_by_chain.py", options)
    assert report.ok, report.violations  # per-user and per-page counts exact, visits once each
    markers = [e for e in report.trace.of_kind("txn-commit")]
    assert len(markers) > 10  # the workers' transactions committed through the wire
    assert run("sim/workloads/group_by_chain.py", options).trace.sha256() == report.trace.sha256()


def test_exactly_once_word_count_survives_a_coordinator_failover_on_aiokafka():
    """Default seed 3: a broker crash moves the group coordinator; aiokafka read the new one's
    group-level OffsetFetch error as "nothing committed", every worker started its partitions
    over, and the counts came out two to three times the input. detstream.compat makes
    aiokafka retry instead (``heed_offset_fetch_errors``)."""
    from sim.runner import SimOptions, run

    options = SimOptions(seed=3, duration=20.0, faults="default", driver="aiokafka")
    report = run("examples/word_count.py", options)
    assert report.ok, report.violations
    kinds = {e.fields.get("fault") for e in report.trace.of_kind("fault")}
    assert {"crash", "broker_crash", "leader_move"} <= kinds  # the faults acted on the wire


def test_the_same_seed_gives_the_same_trace_in_another_process_on_aiokafka():
    """aiokafka iterates sets of futures and tasks (hashed by address unless the loop orders
    them) and of broker tuples (hashed with hash(None), an address before Python 3.12)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "detstream", "sim", "examples/word_count.py", "--driver", "aiokafka",
               "--faults", "default", "--seed", "2", "--duration", "20s"]

    def sha() -> str:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        return next(line for line in out.splitlines() if line.startswith("trace sha256="))

    assert sha() == sha()


def test_the_production_drivers_sends_reach_the_write_history_behind_the_final_read():
    """Under the wire the final read sees the workers' sends: offsets of what was
    acknowledged, the refusal of what was not (here a record over producer_max_request_size)."""
    from sim.wire.cluster import WireCluster

    async def main(cluster):
        cluster.create_topic("receipts", 1, by="operator")
        wire = WireCluster(cluster)
        app = detstream.App("wire-history", broker="kafka://localhost:9092", producer_max_request_size=1000)
        app.client_name = "w1"
        app.transport = wire.transport_for(app)
        receipts = app.topic("receipts", value_type=str, partitions=1)
        await app.start()
        try:
            await receipts.send(value="small")
            await receipts.send(value="x" * 5000)  # refused: its future fails, and the history says so
            await asyncio.sleep(1.0)
        finally:
            await app.stop()
        return [(w.tp.topic, w.value[-6:], w.offsets, w.refused) for w in cluster.history.writes]

    writes = simulate(main, seed=3)
    assert ("receipts", b'small"', (0,), None) in writes  # a str value goes out as JSON text
    assert ("receipts", b'xxxxx"', (), "MessageSizeTooLargeError") in writes


@pytest.mark.parametrize(
    "workload,faults", [(w, f) for w in ZOO for f in ("default", "chaos")],
    ids=lambda value: value.name if isinstance(value, Workload) else value,
)
def test_every_zoo_workload_passes_a_fault_seed_on_aiokafka(workload, faults):
    """The zoo on the production driver under default and chaos faults (seed 1; sweeps of
    more seeds are ``detstream sim --zoo --seeds A..B --driver aiokafka``)."""
    from sim.runner import SimOptions, run

    options = workload.options(SimOptions(seed=1, faults=faults, driver="aiokafka"))
    report = run(str(ROOT / workload.path), options)
    assert report.ok, report.violations


@pytest.mark.parametrize("faults", ["none", "default", "chaos"])
@pytest.mark.parametrize(
    "target", ["examples/word_count.py", "examples/page_views.py", "examples/proj",
               "tests/scenarios/app_sources.py"],
)
def test_the_examples_pass_every_fault_profile_on_aiokafka(target, faults):
    """The examples (and an app whose timers, tasks and crontabs feed it until the end) on the
    production driver, seed 1 of each profile."""
    from sim.runner import SimOptions, run

    report = run(target, SimOptions(seed=1, faults=faults, driver="aiokafka"))
    assert report.ok, report.violations


def test_a_refused_send_ignored_by_the_engine_is_caught_on_aiokafka():
    """Found bugs stay found on the production driver: with ``send-failure-ignored`` on, the
    records aiokafka refuses as too large (``refused_output``) are lost and the final read
    says so; the same seed passes without the mutant."""
    from detstream import mutants
    from detstream.engine.producer import SEND_FAILURE_IGNORED
    from sim.runner import SimOptions, run

    options = SimOptions(seed=1, faults="none", driver="aiokafka")
    with mutants.enabled(SEND_FAILURE_IGNORED):
        report = run("tests/apps/refused_output.py", options)
    assert "final-read-refused-committed" in {v.check for v in report.violations}
    assert run("tests/apps/refused_output.py", options).ok


def test_delivery_before_recovery_is_caught_on_aiokafka_with_chaos_faults():
    """Issue 9's exactly_once table loss, found on real Kafka: with the fix reverted, aiokafka's
    own fetcher delivers a taken-over partition before its table is recovered, and the wire
    run fails for that reason at the first chaos seed (every one of seeds 1..30 did by hand)."""
    from dataclasses import replace

    from detstream import mutants
    from detstream.engine.conductor import DELIVERY_BEFORE_RECOVERY
    from sim.runner import SimOptions, run

    options = SimOptions(seed=1, duration=20.0, faults="chaos", driver="aiokafka")
    with mutants.enabled(DELIVERY_BEFORE_RECOVERY):
        report = run("examples/word_count.py", options)
    checks = {v.check for v in report.violations}
    assert checks & {"opened-after-listener", "no-delivery-during-recovery", "table-equals-changelog"}, checks
    assert run("examples/word_count.py", replace(options)).ok


def test_a_transactional_producer_aiokafka_gave_up_on_crashes_the_app_with_the_reason():
    """windowed_hopping, chaos seed 2: a connection closed during the transactional producer's
    FindCoordinator, and aiokafka's sender routine died for good (aio-libs/aiokafka#1151).
    The commit then failed on an assert inside aiokafka; now it names the cause, the app
    crashes, its restart redoes the transaction and every check passes."""
    from sim.runner import SimOptions, run

    options = SimOptions(seed=2, duration=15.0, faults="chaos", driver="aiokafka")
    report = run("tests/scenarios/windowed_hopping.py", options)
    assert report.ok, report.violations
    crashes = [e.fields["error"] for e in report.trace.of_kind("app-crashed")]
    # the send that met the dead sender fails as ProducerSendError, or its SendFailed subclass
    assert {"ProducerSendError", "SendFailed"} & set(crashes) and "AssertionError" not in crashes, crashes


@pytest.mark.parametrize("target,seed,duration,error", [
    # a worker starting while a broker restarts: aiokafka's NodeNotReadyError failed the start
    ("examples/word_count.py", 2, 20.0, "NodeNotReadyError"),
    # a graceful stop racing the rebalance listener: the stopping consumer looked never started
    ("examples/word_count.py", 3, 20.0, "ImproperlyConfigured"),
    ("examples/proj", 1, 20.0, "ImproperlyConfigured"),
    # a restarting worker declaring its topics as the controller crashed: the connection
    # closed mid-CreateTopics and the start failed (now asked again: to_the_controller)
    ("sim/workloads/global_lookup.py", 31, 20.0, "KafkaConnectionError"),
    # an exactly-once worker starting as a broker crashed: aiokafka raised the connection
    # lost during its producer's FindCoordinator as a plain KafkaError, and the start failed
    ("tests/scenarios/windowed_lists.py", 31, 15.0, "KafkaError"),
])
def test_production_only_engine_errors_found_on_the_wire_stay_fixed(target, seed, duration, error):
    """Found by bench/wire_reach.py: trace kinds only the wire reached, each a production bug."""
    from sim.runner import SimOptions, run

    report = run(target, SimOptions(seed=seed, duration=duration, faults="chaos", driver="aiokafka"))
    assert report.ok, report.violations
    errors = {e.fields.get("error") for e in report.trace.events if e.kind in ("engine-error", "app-crashed")}
    assert error not in errors, errors


def test_a_stop_leaves_no_offset_request_of_a_failed_lookup_running():
    """standby_takeover, chaos seed 14 on the wire (bench/wire_reach.py --seeds 11..22): w3's
    standby reader looked offsets up on two brokers while one was down; aiokafka's lookup
    failed on it and left its request to the other broker running (w3's host was cut off),
    and w3's graceful stop returned with it still running (``stopped-app-idle``)."""
    from sim.runner import SimOptions, run

    options = SimOptions(seed=14, duration=15.0, faults="chaos", driver="aiokafka")
    report = run("tests/scenarios/standby_takeover.py", options)
    assert report.ok, report.violations
    assert not list(report.trace.of_kind("exit-killed"))


def test_a_transaction_that_wrote_nothing_to_a_partition_leaves_no_record_there():
    """windowed_hopping, chaos seed 57 on the wire (bench/wire_reach.py --seeds 53..66): a
    transaction added a partition and its produce was refused (w3's refuse fault), so its
    abort's marker was the partition's first transactional entry; the simulated log handed
    the marker out as a record and a check reading the topic raised on it."""
    from sim.runner import SimOptions, run

    options = SimOptions(seed=57, duration=15.0, faults="chaos", driver="aiokafka")
    report = run("tests/scenarios/windowed_hopping.py", options)
    assert report.ok, report.violations


def test_a_run_whose_faults_block_every_tick_is_not_a_false_alarm():
    """timer_producer, chaos seed 3 on the wire: a broker down, then w1's sends refused, w2 off
    for 65 s and w3 crashed: no tick was ever acknowledged, so none can be lost. The workload's
    check called the empty log a failure; only a run without faults must tick."""
    from sim.runner import SimOptions, run

    report = run("sim/workloads/timer_producer.py", SimOptions(seed=3, duration=20.0, faults="chaos", driver="aiokafka"))
    assert report.ok, report.violations
    ticks = report.cluster.topics["ticks"].logs
    assert not any(log.end_offset for log in ticks)
