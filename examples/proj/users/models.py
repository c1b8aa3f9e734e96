"""The records of the users part."""

import detstream as faust


class User(faust.Record):
    """A registration, keyed by ``id`` on the ``users`` topic."""

    id: str
    name: str


class Spend(faust.Record):
    """What a user spent on one order; sent by ``proj.orders`` keyed by ``user_id``."""

    user_id: str
    order_id: str
    amount: int
