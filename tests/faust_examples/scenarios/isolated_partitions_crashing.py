"""Input for Faust's examples/advanced/isolated_partitions_crashing.py under `detstream sim`.

Its agent runs one actor per partition (``isolated_partitions=True``) and
counts withdrawals per user; the client sends ten per user, keyed by user, as
its ``produce`` command does.
"""

def sim_scenario(sim):
    users = [f"user_{i}" for i in range(20)]
    records = [(u, {"user": u, "country": "country_0", "amount": 1.0 * i})
               for i, u in enumerate(users * 10)]
    sim.topic("withdrawals129", partitions=4)
    sim.producer("withdrawals129", records, keyed=True, every=0.05, name="bank")

    @sim.check
    def every_withdrawal_counted(result):
        table = result.table("withdrawal-counts")
        assert set(table) == set(users)
        if not result.crashes:
            assert all(n == 10 for n in table.values()), table
        else:
            assert all(n >= 10 for n in table.values()), table
