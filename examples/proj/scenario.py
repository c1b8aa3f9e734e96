"""``detstream sim examples/proj``: the upstream systems feeding proj, and the checks.

A sign-up service registers the users first; a shop then sends their
orders. The checks prove the tables equal the fold of that input: every
name, every order counted once per user, every amount added once.
"""

from collections import Counter, defaultdict

from proj.orders.models import Order
from proj.users.models import User

USERS = [User(id=f"u{n}", name=name) for n, name in enumerate(
    ["Ann", "Bob", "Cy", "Dee", "Eve", "Finn", "Gus", "Hal"], start=1)]

ORDERS = [
    Order(id=f"o{n}", user_id=f"u{1 + (n * 5) % len(USERS)}", amount=10 + (n * 7) % 40)
    for n in range(1, 61)
]


def sim_scenario(sim):
    sim.topic("users", partitions=4)
    sim.topic("orders", partitions=4)
    sim.producer("users", [(u.id, u) for u in USERS], keyed=True, every=0.1, name="signups")
    sim.producer("orders", [(o.id, o) for o in ORDERS], keyed=True, every=0.2, start=3.0,
                 name="shop")

    @sim.check
    def names_are_registered(result):
        expected = {u["id"]: u["name"] for u in map(_fields, result.produced("users"))}
        assert result.table("user-names") == expected, result.table("user-names")

    @sim.check
    def orders_are_counted_once(result):
        orders = [_fields(o) for o in result.produced("orders")]
        expected_counts = dict(Counter(o["user_id"] for o in orders))
        expected_spent = defaultdict(int)
        for order in orders:
            expected_spent[order["user_id"]] += order["amount"]
        assert result.table("order-counts") == expected_counts
        assert result.table("spent") == dict(expected_spent)


def _fields(value):
    """A produced record as a dict (the clients keep what they sent: Records here)."""
    return value.asdict() if hasattr(value, "asdict") else dict(value)
