"""``on_worker_init`` fires for each simulated worker process, as `detstream worker` sends it."""

import textwrap

from sim.faults import Fault, FaultPlan
from sim.runner import SimOptions, run

PROJECT = textwrap.dedent('''
    from pathlib import Path

    import detstream

    app = detstream.App("init-app", broker="kafka://localhost:9092", topic_partitions=2)
    words = app.topic("words", value_type=str, partitions=2)

    @app.on_worker_init.connect
    def on_worker_init(app, **kwargs):
        # each incarnation imports this module afresh: the record must outlive it
        with open(Path(__file__).with_name("inits.txt"), "a") as log:
            log.write(f"{app.client_name} {app.conf.datadir is not None}\\n")

    @app.agent(words)
    async def consume(stream):
        async for _ in stream:
            pass

    def sim_scenario(sim):
        sim.topic("words", partitions=2)
        sim.producer("words", ["a", "b", "c"] * 10)
''')


def test_on_worker_init_is_sent_once_per_simulated_worker_process(tmp_path):
    target = tmp_path / "init_app.py"
    target.write_text(PROJECT)
    plan = FaultPlan("file", ("crash",), (Fault(4.0, "crash", "w2", 3.0),))
    report = run(str(target), SimOptions(seed=1, workers=3, duration=12.0, plan=plan))
    assert report.ok, report.violations
    inits = (tmp_path / "inits.txt").read_text().splitlines()
    # w1..w3 at start, and w2 again when its process restarts after the crash
    assert inits == ["w1 True", "w2 True", "w3 True", "w2 True"]
