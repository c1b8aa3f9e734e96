"""Input for Faust's examples/tabletest.py under `detstream sim` (its own input is a CLI command).

The example is itself a consistency check: per key it expects the values
0, 1, 2, ... in order and freezes the worker (``time.sleep(3600)``, refused by
the simulator) on a gap. The client sends that sequence for four keys, as its
``produce`` command does; the check wants each key's count to be the sum.
"""

ITERATIONS = 200
KEYS = [str(j) for j in range(4)]


def sim_scenario(sim):
    sim.topic("countstopic", partitions=4)
    records = [(key, i) for i in range(ITERATIONS) for key in KEYS]
    sim.producer("countstopic", records, keyed=True, every=0.02, name="produce")

    @sim.check
    def every_count_added(result):
        counts = result.table("counts")
        expected = sum(range(ITERATIONS))
        assert set(counts) == set(KEYS), counts
        if result.crashes:
            assert all(v >= expected for v in counts.values()), counts
        else:
            assert all(v == expected for v in counts.values()), counts
