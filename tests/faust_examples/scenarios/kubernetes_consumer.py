"""Input for Faust's examples/kubernetes/consumer/consumer.py under `detstream sim`.

Its input comes from a separate plain-aiokafka producer script: here a client
sends scores keyed "score", as that script does. The consumer regroups them
by ``index % 2`` and counts per group (and in one "totals" key, which the two
groups' partitions both write: a key in two partitions, see
docs/faust-differences.md).
"""

SCORES = [{"index": i, "value": i % 10} for i in range(150)]


def sim_scenario(sim):
    sim.topic("test", partitions=4)
    sim.producer("test", [("score", score) for score in SCORES], keyed=True, every=0.05,
                 name="producer")

    @sim.check
    def every_score_counted_in_its_group(result):
        table = result.table("totals")
        groups = table.get("partition: 0", 0) + table.get("partition: 1", 0)
        if result.crashes:
            assert groups >= len(SCORES), table
        else:
            assert groups == len(SCORES), table
