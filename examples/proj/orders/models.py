"""The records of the orders part."""

import detstream as faust


class Order(faust.Record):
    """An order, as an upstream shop sends it to the ``orders`` topic (not keyed by user)."""

    id: str
    user_id: str
    amount: int
