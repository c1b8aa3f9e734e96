"""An app that relays keyed steps to an output topic, for the ordering properties.

``build(guarantee)`` makes a fresh App each call: the simulator imports an app
module once per worker, and each worker must own its App.
"""

from __future__ import annotations

from typing import Any

import detstream


class Step(detstream.Record):
    key: str
    seq: int


def build(guarantee: str) -> Any:
    """The relay app with ``processing_guarantee=guarantee``."""
    app = detstream.App(
        f"relay-{guarantee.replace('_', '-')}",
        broker="sim://",
        topic_partitions=4,
        processing_guarantee=guarantee,
    )
    steps = app.topic("steps", key_type=str, value_type=Step)
    relayed = app.topic("relayed", key_type=str, value_type=Step, partitions=4)

    @app.agent(steps)
    async def relay(stream: Any) -> None:
        async for key, step in stream.items():
            await relayed.send(key=key, value=step)

    return app
