"""Input for Faust's examples/withdrawals.py under `detstream sim` (its own input is a CLI command).

The example sums withdrawals per user in hour windows (and per country after
a group_by): a producer client sends withdrawals keyed by user, as its
``produce`` command does, and the check finds every amount in its user's
total (exactly, or more after a crash: at-least-once).
"""

USERS = [f"user_{i}" for i in range(12)]
COUNTRIES = [f"country_{i}" for i in range(3)]
WITHDRAWALS = [
    {"user": USERS[i % len(USERS)], "country": COUNTRIES[i % len(COUNTRIES)],
     "amount": float(10 * (i % 7 + 1)), "date": "2023-11-14T22:13:20+00:00"}
    for i in range(240)
]


def sim_scenario(sim):
    sim.topic("withdrawals", partitions=4)
    sim.producer("withdrawals", [(w["user"], w) for w in WITHDRAWALS], keyed=True, every=0.05,
                 name="produce")

    @sim.check
    def every_withdrawal_is_in_its_users_total(result):
        expected = {}
        for w in WITHDRAWALS:
            expected[w["user"]] = expected.get(w["user"], 0.0) + w["amount"]
        totals = {}
        for (user, _window), total in result.table("user_to_total").items():
            totals[user] = totals.get(user, 0.0) + total
        assert set(totals) == set(expected), totals
        for user, total in expected.items():
            if result.crashes:
                assert totals[user] >= total, (user, totals[user], total)
            else:
                assert totals[user] == total, (user, totals[user], total)
