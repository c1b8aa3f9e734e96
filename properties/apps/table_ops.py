"""An app that applies keyed set/add/delete operations to a table, for the table properties.

``build(guarantee, store)`` makes a fresh App each call (one per simulated worker).
"""

from __future__ import annotations

from typing import Any

import detstream


class Op(detstream.Record):
    key: str
    action: str  # "set", "add" or "delete"
    amount: int = 0


def build(guarantee: str, store: str) -> Any:
    """The table-ops app with the given processing guarantee and table store."""
    app = detstream.App(
        f"table-ops-{guarantee.replace('_', '-')}-{store.split(':')[0]}",
        broker="sim://",
        store=store,
        topic_partitions=4,
        processing_guarantee=guarantee,
    )
    ops = app.topic("ops", key_type=str, value_type=Op)
    state = app.Table("state", default=int, key_type=str, value_type=int)

    @app.agent(ops)
    async def apply_ops(stream: Any) -> None:
        async for op in stream:
            if op.action == "set":
                state[op.key] = op.amount
            elif op.action == "add":
                state[op.key] += op.amount
            elif op.key in state:
                del state[op.key]

    return app


def fold(ops: list[dict[str, Any]]) -> dict[str, int]:
    """What the table must hold after ``ops`` were each applied once, in order."""
    table: dict[str, int] = {}
    for op in ops:
        if op["action"] == "set":
            table[op["key"]] = op["amount"]
        elif op["action"] == "add":
            table[op["key"]] = table.get(op["key"], 0) + op["amount"]
        else:
            table.pop(op["key"], None)
    return table
